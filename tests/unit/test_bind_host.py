"""The metrics and health servers listen where `telemetry.metrics_host` / `telemetry.health_host` say.

127.0.0.2 is another loopback address of this host: a server bound to 127.0.0.1 must refuse it, one bound to
every interface (the default, for pods) must accept it.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from zoomguard.telemetry.bundle import build_telemetry
from zoomguard.telemetry.metrics import LiveState, build_metrics
from zoomguard.telemetry.settings import TelemetrySettings


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_defaults_listen_on_every_interface() -> None:
    settings = TelemetrySettings()
    assert (settings.metrics_host, settings.health_host) == ("0.0.0.0", "0.0.0.0")


@pytest.mark.parametrize(("host", "other_loopback_reachable"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_health_server_binds_its_host(host: str, other_loopback_reachable: bool) -> None:
    telemetry = build_telemetry(TelemetrySettings(health_port=0, health_host=host))
    try:
        port = telemetry.health_port
        assert port
        response = httpx.get(f"http://127.0.0.1:{port}/live", timeout=5)
        assert response.status_code == 200 and response.json()["ok"]
        assert _reachable("127.0.0.2", port) is other_loopback_reachable
    finally:
        telemetry.close()


@pytest.mark.parametrize(("host", "other_loopback_reachable"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_metrics_server_binds_its_host(host: str, other_loopback_reachable: bool) -> None:
    _, export = build_metrics(TelemetrySettings(metrics_port=0, metrics_host=host), LiveState())
    try:
        address, port = export.server.server_address[:2]
        assert address == host
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200 and "zoomguard_in_flight" in response.text
        assert _reachable("127.0.0.2", port) is other_loopback_reachable
    finally:
        export.shutdown()


def test_health_server_on_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    telemetry = build_telemetry(TelemetrySettings(health_port=0, health_host="::1"))
    try:
        response = httpx.get(f"http://[::1]:{telemetry.health_port}/live", timeout=5)
        assert response.status_code == 200
        assert not _reachable("127.0.0.1", telemetry.health_port or 0)
    finally:
        telemetry.close()

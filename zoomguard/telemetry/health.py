"""Liveness and readiness over HTTP, for Kubernetes probes and load balancers.

live: the worker's event loop is turning. ready: the engine is loaded and answering, the broker is being
polled, and the consumer is not stuck with a full window (paused) for too long.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field

from zoomguard.telemetry.settings import TelemetrySettings


@dataclass
class HealthState:
    settings: TelemetrySettings
    engine_loaded: bool = False
    engine_down_since: float | None = None
    last_poll: float | None = None
    last_loop_tick: float = field(default_factory=time.monotonic)
    paused_since: float | None = None
    assigned_partitions: int = 0
    stopping: bool = False

    def engine_failed(self) -> None:
        if self.engine_down_since is None:
            self.engine_down_since = time.monotonic()

    def engine_answered(self) -> None:
        self.engine_down_since = None

    def polled(self, paused: bool, assigned: int) -> None:
        now = time.monotonic()
        self.last_poll = self.last_loop_tick = now
        self.assigned_partitions = assigned
        if not paused:
            self.paused_since = None
        elif self.paused_since is None:
            self.paused_since = now

    def live(self) -> tuple[bool, list[str]]:
        stalled = time.monotonic() - self.last_loop_tick > max(60.0, 2 * self.settings.ready_max_poll_gap_s)
        return (not stalled, ["event loop stalled"] if stalled else [])

    def ready(self) -> tuple[bool, list[str]]:
        now = time.monotonic()
        problems = []
        if self.stopping:
            problems.append("stopping")
        if not self.engine_loaded:
            problems.append("engine not loaded")
        if self.engine_down_since is not None:
            problems.append(f"engine unavailable for {now - self.engine_down_since:.0f}s")
        if self.last_poll is None or now - self.last_poll > self.settings.ready_max_poll_gap_s:
            problems.append("broker not polled recently")
        if self.paused_since is not None and now - self.paused_since > self.settings.ready_max_paused_s:
            problems.append(f"paused (window full) for {now - self.paused_since:.0f}s")
        return (not problems, problems)


class HealthServer:
    """GET /live and /ready: 200 or 503 with a JSON body naming the problems."""

    def __init__(self, state: HealthState, port: int, host: str = "0.0.0.0"):
        checks = {"/live": state.live, "/ready": state.ready}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = checks.get(self.path.split("?")[0])
                if check is None:
                    self.send_error(404)
                    return
                ok, problems = check()
                body = json.dumps({"ok": ok, "problems": problems}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = _server_for(host, port)((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _server_for(host: str, port: int) -> type[http.server.ThreadingHTTPServer]:
    """The server class for this address: ThreadingHTTPServer is IPv4 only, so "::" or an IPv6 address needs
    AF_INET6 (what prometheus_client does for the metrics server too)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    if family == socket.AF_INET:
        return http.server.ThreadingHTTPServer
    return type("ThreadingHTTPServer6", (http.server.ThreadingHTTPServer,), {"address_family": family})

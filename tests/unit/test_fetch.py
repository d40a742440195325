"""URL fetching policy: SSRF refusals, redirects re-checked, size limits, retries (HTTP faked, no network)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from zoomguard.media.fetch import FetchError, ForbiddenURLError, URLFetcher
from zoomguard.media.settings import FetchSettings

PUBLIC = "93.184.216.34"


def _resolver(table: dict[str, str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return [ipaddress.ip_address(a) for a in table[host].split(",")]

    return resolve


def _fetcher(handler, table: dict[str, str] | None = None, **settings: object) -> tuple[URLFetcher, list[float]]:  # type: ignore[no-untyped-def]
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False)
    fetcher = URLFetcher(
        FetchSettings(**settings),  # type: ignore[arg-type]
        client=client,
        resolver=_resolver(table or {"images.example": PUBLIC}),
        sleep=sleep,
    )
    return fetcher, sleeps


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"image-bytes")


def test_connects_to_the_checked_address_with_the_original_host() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok(request)

    fetcher, _ = _fetcher(handler)
    body, attempts = asyncio.run(fetcher.fetch("https://images.example/a.jpg?sig=secret"))
    assert (body, attempts) == (b"image-bytes", 1)
    assert seen[0].url.host == PUBLIC  # no second DNS lookup by the HTTP client (no rebinding)
    assert seen[0].headers["host"] == "images.example"
    assert seen[0].extensions["sni_hostname"] == "images.example"
    assert seen[0].url.query == b"sig=secret"


@pytest.mark.parametrize(
    ("url", "table"),
    [
        ("http://127.0.0.1/x", {}),
        ("http://localhost/x", {"localhost": "127.0.0.1"}),
        ("http://10.0.0.5/x", {}),
        ("http://192.168.1.1/x", {}),
        ("http://172.16.0.1/x", {}),
        ("http://169.254.169.254/latest/meta-data", {}),
        ("http://[::1]/x", {}),
        ("http://[fd00::1]/x", {}),
        ("http://[::ffff:127.0.0.1]/x", {}),
        ("http://0.0.0.0/x", {}),
        ("http://mixed.example/x", {"mixed.example": f"{PUBLIC},10.0.0.1"}),  # any private answer refuses
        ("http://images.example:22/x", {"images.example": PUBLIC}),  # odd port
        ("http://user:pw@images.example/x", {"images.example": PUBLIC}),  # credentials
        ("file:///etc/passwd", {}),
        ("gopher://images.example/x", {"images.example": PUBLIC}),
    ],
)
def test_forbidden_targets_are_refused_before_any_request(url: str, table: dict[str, str]) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return _ok(request)

    literal = {h: h for h in ("127.0.0.1", "10.0.0.5", "192.168.1.1", "172.16.0.1", "169.254.169.254", "0.0.0.0")}
    literal.update({"::1": "::1", "fd00::1": "fd00::1", "::ffff:127.0.0.1": "::ffff:127.0.0.1"})
    fetcher, _ = _fetcher(handler, {**literal, **table})
    with pytest.raises(ForbiddenURLError):
        asyncio.run(fetcher.fetch(url))
    assert requests == []


def test_redirects_are_rechecked_at_every_hop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    fetcher, _ = _fetcher(handler, {"images.example": PUBLIC, "169.254.169.254": "169.254.169.254"})
    with pytest.raises(ForbiddenURLError, match="non-public"):
        asyncio.run(fetcher.fetch("http://images.example/a.jpg"))


def test_allowed_network_and_port_are_honoured() -> None:
    fetcher, _ = _fetcher(_ok, {"cdn.internal": "10.1.2.3"}, allowed_networks=["10.1.0.0/16"], allowed_ports=[8080])
    assert asyncio.run(fetcher.fetch("http://cdn.internal:8080/a.png"))[0] == b"image-bytes"


def test_too_many_redirects() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    fetcher, _ = _fetcher(handler, max_redirects=3)
    with pytest.raises(FetchError, match="more than 3 redirects"):
        asyncio.run(fetcher.fetch("http://images.example/a"))


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(200, stream=httpx.ByteStream(b"x" * 5000)), "sent more than"),  # no Content-Length
        (httpx.Response(200, content=b"x", headers={"Content-Length": "999999"}), "declares"),
    ],
)
def test_size_limits(response: httpx.Response, match: str) -> None:
    fetcher, _ = _fetcher(lambda request: response, max_bytes=1024)
    with pytest.raises(FetchError, match=match):
        asyncio.run(fetcher.fetch("http://images.example/big"))


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    answers = iter([httpx.Response(503), httpx.ConnectError("reset"), httpx.Response(200, content=b"ok")])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fetcher, sleeps = _fetcher(handler, attempts=4, backoff_s=1.0)
    assert asyncio.run(fetcher.fetch("http://images.example/a")) == (b"ok", 3)
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0


def test_persistent_transient_failure_becomes_bad_input_with_attempts() -> None:
    fetcher, sleeps = _fetcher(lambda request: httpx.Response(500), attempts=3, backoff_s=0.01)
    with pytest.raises(FetchError, match="after 3 attempts") as info:
        asyncio.run(fetcher.fetch("http://images.example/a?token=secret"))
    assert info.value.attempts == 3
    assert "secret" not in str(info.value)  # query strings (signed URLs) never reach messages or logs
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_errors_are_not_retried(status: int) -> None:
    fetcher, sleeps = _fetcher(lambda request: httpx.Response(status))
    with pytest.raises(FetchError, match=f"HTTP {status}") as info:
        asyncio.run(fetcher.fetch("http://images.example/a"))
    assert info.value.attempts == 1 and sleeps == []


def test_unresolvable_host_is_retried_then_fails() -> None:
    fetcher, sleeps = _fetcher(_ok, {}, attempts=2, backoff_s=0.01)
    with pytest.raises(FetchError, match="cannot resolve"):
        asyncio.run(fetcher.fetch("http://nowhere.example/a"))
    assert len(sleeps) == 1

"""The URL policy as tables: what an untrusted event may make the worker fetch, decided without I/O."""

from __future__ import annotations

import ipaddress

import pytest

from zoomguard.media.url_policy import (
    ForbiddenURLError,
    TransientFetchError,
    address_permitted,
    backoff_delay,
    check_addresses,
    check_url,
    host_header,
    safe_url,
    with_address,
)

ip = ipaddress.ip_address
INTERNAL = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("url", "ports", "expected"),
    [
        ("https://cdn.example.com/a.png", [], ("cdn.example.com", 443)),
        ("http://cdn.example.com/a.png", [], ("cdn.example.com", 80)),
        ("http://cdn.example.com:8080/a.png", [8080], ("cdn.example.com", 8080)),
    ],
)
def test_allowed_urls(url: str, ports: list[int], expected: tuple[str, int]) -> None:
    assert check_url(url, ports) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://x/", "only http and https"),
        ("//no-scheme/a.png", "no scheme"),
        ("https://user:pw@cdn.example.com/a.png", "credentials"),
        ("https:///a.png", "no host"),
        ("http://cdn.example.com:6379/", "port 6379"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(ForbiddenURLError, match=message):
        check_url(url, [])


@pytest.mark.parametrize(
    ("address", "allowed", "permitted"),
    [
        ("93.184.216.34", [], True),
        ("2606:2800:220:1:248:1893:25c8:1946", [], True),
        ("127.0.0.1", [], False),
        ("10.1.2.3", [], False),
        ("10.1.2.3", INTERNAL, True),
        ("169.254.169.254", [], False),  # cloud metadata
        ("::1", [], False),
        ("::ffff:127.0.0.1", [], False),  # IPv4-mapped loopback is judged as IPv4
        ("::ffff:10.1.2.3", INTERNAL, True),
        ("224.0.0.1", [], False),
        ("100.64.0.1", [], False),  # carrier-grade NAT is not global
    ],
)
def test_addresses(address: str, allowed: list[ipaddress.IPv4Network], permitted: bool) -> None:
    assert address_permitted(ip(address), allowed) is permitted


def test_one_private_answer_refuses_the_host() -> None:
    with pytest.raises(ForbiddenURLError, match="non-public address"):
        check_addresses("https://x/a", "x", 443, [ip("93.184.216.34"), ip("10.0.0.1")], [])
    with pytest.raises(TransientFetchError, match="no address"):
        check_addresses("https://x/a", "x", 443, [], [])


def test_dialled_url_is_the_checked_address_and_logs_drop_the_query() -> None:
    target = check_addresses("https://cdn.example.com:8443/a.png?sig=secret", "cdn.example.com", 8443, [ip("::2")], [])
    assert with_address(target) == "https://[::2]:8443/a.png?sig=secret"
    assert host_header(target) == "cdn.example.com:8443"
    assert safe_url(target.url) == "https://cdn.example.com:8443/a.png"


@pytest.mark.parametrize(
    ("attempt", "jitter", "delay"), [(1, 0.5, 0.5), (2, 0.5, 1.0), (3, 0.0, 1.0), (3, 0.999, 2.998)]
)
def test_backoff_doubles_with_jitter(attempt: int, jitter: float, delay: float) -> None:
    assert backoff_delay(0.5, attempt, jitter) == pytest.approx(delay)

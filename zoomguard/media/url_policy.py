"""Which URLs and addresses an untrusted event may make zoomguard fetch: pure decisions, no I/O.

`media.fetch` resolves and connects; everything it decides (scheme, credentials, port, the resolved
addresses, the URL actually dialled, what may be logged, the retry delay) is decided here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from zoomguard.errors import BadInputError, UnavailableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenURLError(BadInputError):
    """A URL that points (or redirects) somewhere zoomguard must not connect to."""

    kind = "forbidden_url"


class FetchError(BadInputError):
    """A URL that cannot give an image: 4xx, too large, too many redirects, or still failing after retries."""

    kind = "fetch_failed"

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class TransientFetchError(UnavailableError):
    """One failed attempt that may succeed later (timeout, connection reset, 5xx, 429)."""

    kind = "fetch_transient"


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: IPAddress


def check_url(url: str, allowed_ports: Sequence[int]) -> tuple[str, int]:
    """(host, port) of an http(s) URL without credentials on an allowed port; ForbiddenURLError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ForbiddenURLError(f"only http and https URLs are fetched, not {parts.scheme or 'no scheme'!r}")
    if parts.username or parts.password:
        raise ForbiddenURLError("URLs with credentials are refused")
    host = parts.hostname
    if not host:
        raise ForbiddenURLError("URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if port not in (80, 443, *allowed_ports):
        raise ForbiddenURLError(f"port {port} is not allowed (fetch.allowed_ports)")
    return host, port


def check_addresses(
    url: str, host: str, port: int, addresses: Sequence[IPAddress], allowed: Sequence[Network]
) -> Target:
    """The target to dial: every address the host resolved to must be permitted, else the URL is refused."""
    if not addresses:
        raise TransientFetchError(f"{host} resolved to no address")
    for address in addresses:
        if not address_permitted(address, allowed):
            raise ForbiddenURLError(f"{host} resolves to a non-public address ({address})")
    return Target(url=url, host=host, port=port, address=addresses[0])


def address_permitted(address: IPAddress, allowed: Sequence[Network]) -> bool:
    """Public unicast, or inside an allowed network; an IPv4-mapped IPv6 address is judged as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def backoff_delay(first_s: float, attempt: int, jitter: float) -> float:
    """Delay after failed `attempt` (1-based): doubling from `first_s`, times a jitter factor in [0.5, 1.5)."""
    return first_s * (2 ** (attempt - 1)) * (0.5 + jitter)


def with_address(target: Target) -> str:
    """The URL with its host replaced by the checked address (the Host header keeps the name)."""
    parts = urlsplit(target.url)
    host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    netloc = f"{host}:{target.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def host_header(target: Target) -> str:
    default = 443 if target.url.startswith("https") else 80
    return target.host if target.port == default else f"{target.host}:{target.port}"


def safe_url(url: str) -> str:
    """The URL without its query string: signed URLs carry secrets there, and they must not reach logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

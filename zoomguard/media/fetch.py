"""Fetching image URLs from untrusted events without becoming a proxy into the private network.

Every hop (the URL and each redirect) is resolved here, every address it resolves to must be public
(or inside an explicitly allowed network), and the connection goes to the address that was checked,
not to a second DNS answer (no rebinding). Size and time are bounded; transient failures are retried
with backoff; permanent ones are bad input.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from zoomguard.errors import BadInputError, UnavailableError
from zoomguard.media.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


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
class _Target:
    url: str
    host: str
    port: int
    address: IPAddress


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class URLFetcher:
    def __init__(
        self,
        settings: FetchSettings,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver = system_resolver,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._settings = settings
        self._allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.allowed_networks]
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.total_timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,  # never route untrusted URLs through an environment proxy
        )
        self._resolver = resolver
        self._sleep = sleep

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> tuple[bytes, int]:
        """(body, attempts). Retries transient failures; raises BadInputError subclasses when it gives up."""
        attempts = self._settings.attempts
        for attempt in range(1, attempts + 1):
            try:
                body = await asyncio.wait_for(self._fetch_once(url), self._settings.total_timeout_s)
                return body, attempt
            except (TransientFetchError, TimeoutError) as exc:
                if attempt == attempts:
                    raise FetchError(f"still failing after {attempts} attempts: {_describe(exc)}", attempts) from exc
                delay = self._settings.backoff_s * (2 ** (attempt - 1))
                await self._sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def _fetch_once(self, url: str) -> bytes:
        current = url
        for _ in range(self._settings.max_redirects + 1):
            target = await self._check(current)
            try:
                async with self._client.stream(
                    "GET",
                    _with_address(target),
                    headers={"Host": _host_header(target), "User-Agent": self._settings.user_agent},
                    extensions={"sni_hostname": target.host},
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"redirect without Location from {_safe(current)}")
                        current = urljoin(current, location)
                        continue
                    if response.status_code in _TRANSIENT_STATUS:
                        raise TransientFetchError(f"HTTP {response.status_code} from {_safe(current)}")
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code} from {_safe(current)}")
                    return await self._read_bounded(response, current)
            except httpx.TimeoutException as exc:
                raise TransientFetchError(f"timeout fetching {_safe(current)}") from exc
            except httpx.TransportError as exc:
                raise TransientFetchError(f"{type(exc).__name__} fetching {_safe(current)}") from exc
        raise FetchError(f"more than {self._settings.max_redirects} redirects from {_safe(url)}")

    async def _read_bounded(self, response: httpx.Response, url: str) -> bytes:
        limit = self._settings.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{_safe(url)} declares {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FetchError(f"{_safe(url)} sent more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _check(self, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ForbiddenURLError(f"only http and https URLs are fetched, not {parts.scheme or 'no scheme'!r}")
        if parts.username or parts.password:
            raise ForbiddenURLError("URLs with credentials are refused")
        host = parts.hostname
        if not host:
            raise ForbiddenURLError("URL has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if port not in (80, 443, *self._settings.allowed_ports):
            raise ForbiddenURLError(f"port {port} is not allowed (fetch.allowed_ports)")
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise TransientFetchError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise TransientFetchError(f"{host} resolved to no address")
        for address in addresses:
            if not self._permitted(address):
                raise ForbiddenURLError(f"{host} resolves to a non-public address ({address})")
        return _Target(url=url, host=host, port=port, address=addresses[0])

    def _permitted(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self._allowed):
            return True
        return address.is_global and not address.is_multicast


def _with_address(target: _Target) -> str:
    """The URL with its host replaced by the checked address (the Host header keeps the name)."""
    parts = urlsplit(target.url)
    host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    netloc = f"{host}:{target.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def _host_header(target: _Target) -> str:
    default = 443 if target.url.startswith("https") else 80
    return target.host if target.port == default else f"{target.host}:{target.port}"


def _safe(url: str) -> str:
    """The URL without its query string: signed URLs carry secrets there, and they must not reach logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

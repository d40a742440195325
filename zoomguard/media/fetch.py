"""Fetching image URLs from untrusted events without becoming a proxy into the private network.

Every hop (the URL and each redirect) is resolved here and checked by `media.url_policy` (public addresses
only, unless inside an explicitly allowed network), and the connection goes to the address that was
checked, not to a second DNS answer (no rebinding). Size and time are bounded; transient failures are
retried with backoff; permanent ones are bad input.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin

import httpx

from zoomguard.media.settings import FetchSettings
from zoomguard.media.url_policy import (
    FetchError,
    ForbiddenURLError,
    IPAddress,
    Target,
    TransientFetchError,
    backoff_delay,
    check_addresses,
    check_url,
    describe,
    host_header,
    safe_url,
    with_address,
)

__all__ = ["FetchError", "ForbiddenURLError", "TransientFetchError", "URLFetcher", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


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
                    raise FetchError(f"still failing after {attempts} attempts: {describe(exc)}", attempts) from exc
                await self._sleep(backoff_delay(self._settings.backoff_s, attempt, random.random()))
        raise AssertionError("unreachable")

    async def _fetch_once(self, url: str) -> bytes:
        current = url
        for _ in range(self._settings.max_redirects + 1):
            target = await self._check(current)
            try:
                async with self._client.stream(
                    "GET",
                    with_address(target),
                    headers={"Host": host_header(target), "User-Agent": self._settings.user_agent},
                    extensions={"sni_hostname": target.host},
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"redirect without Location from {safe_url(current)}")
                        current = urljoin(current, location)
                        continue
                    if response.status_code in _TRANSIENT_STATUS:
                        raise TransientFetchError(f"HTTP {response.status_code} from {safe_url(current)}")
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code} from {safe_url(current)}")
                    return await self._read_bounded(response, current)
            except httpx.TimeoutException as exc:
                raise TransientFetchError(f"timeout fetching {safe_url(current)}") from exc
            except httpx.TransportError as exc:
                raise TransientFetchError(f"{type(exc).__name__} fetching {safe_url(current)}") from exc
        raise FetchError(f"more than {self._settings.max_redirects} redirects from {safe_url(url)}")

    async def _read_bounded(self, response: httpx.Response, url: str) -> bytes:
        limit = self._settings.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{safe_url(url)} declares {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FetchError(f"{safe_url(url)} sent more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _check(self, url: str) -> Target:
        host, port = check_url(url, self._settings.allowed_ports)
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise TransientFetchError(f"cannot resolve {host}: {exc}") from exc
        return check_addresses(url, host, port, addresses, self._allowed)

"""Follow the known-content bank's compacted topic: every worker holds the whole bank, and keeps it current.

Why a separate reader, like the model-update follower: every worker must see every entry, so it reads the topic
by assignment, with no consumer group. On start it reads the topic up to where it ended then (a restarted or
new worker decides copies the way running ones do from its first event); then it follows, so a reviewer's
decision reaches running workers within a poll. A record that is not a bank entry is skipped and counted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from zoomguard.kafka.follow import sleep_or_stop
from zoomguard.known.memory import KnownBank

log = structlog.get_logger("zoomguard.known")

_RETRY_S = 2.0


class BankSource(Protocol):
    """The bank topic's records as (key, value), each partition in offset order
    (`zoomguard.kafka.follow.TopicFollower` in the worker)."""

    async def read_keyed(self) -> list[tuple[bytes | None, bytes | None]]: ...

    async def caught_up(self) -> bool: ...

    async def close(self) -> None: ...


class BankFollower:
    def __init__(self, source: BankSource, bank: KnownBank, *, catchup_s: float):
        self._source = source
        self._bank = bank
        self._catchup_s = catchup_s
        self.applied = 0

    async def catch_up(self) -> bool:
        """Load what the topic held when the worker started (up to catchup_s). False: started on a partial bank
        (logged); the follow goes on loading it."""
        deadline = time.monotonic() + self._catchup_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            try:
                self._apply(await self._source.read_keyed())
                if await self._source.caught_up():
                    self._bank.loaded()
                    log.info(
                        "bank loaded",
                        entries=len(self._bank),
                        skipped=self._bank.skipped,
                        refused=self._bank.refused,
                        seconds=round(time.monotonic() - started, 2),
                    )
                    return True
            except Exception as exc:  # broker trouble: start on what was read, and follow later
                log.warning("cannot read the bank yet", error=str(exc))
                return False
        log.warning("bank not loaded within catchup_s; following it from here", entries=len(self._bank))
        return False

    async def follow(self, stop: asyncio.Event) -> None:
        """Apply each new record as it arrives, until `stop` is set. Never raises for a bad record."""
        while not stop.is_set():
            try:
                self._apply(await self._source.read_keyed())
            except Exception as exc:
                log.warning("reading the bank failed, retrying", error=str(exc), retry_in_s=_RETRY_S)
                await sleep_or_stop(stop, _RETRY_S)

    def _apply(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            self._bank.apply(key, value)
        self.applied += len(records)

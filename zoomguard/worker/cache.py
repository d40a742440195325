"""A bounded verdict cache keyed by image sha256: a repost of the same image costs no GPU."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from zoomguard.schemas.detection import Detection


class VerdictCache:
    """Least-recently-used, at most `capacity` entries (0 disables). Keyed by sha256 and model version,
    so a promoted model never serves its predecessor's verdicts."""

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], Detection] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[Detection]] = {}
        self.hits = 0
        self.misses = 0

    async def get_or_detect(
        self, sha256: str, model_version: str, detect: Callable[[], Awaitable[Detection]]
    ) -> tuple[Detection, bool]:
        """(detection, served_from_cache). Concurrent requests for the same image share one detection
        (a burst of reposts costs one GPU pass); a failed detection is not cached and fails every waiter."""
        key = (sha256, model_version)
        found = self.get(sha256, model_version)
        if found is not None:
            return found, True
        pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending), True
        future: asyncio.Future[Detection] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            detection = await detect()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must see it as unhandled
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(detection)
        self.put(detection)
        return detection, False

    def get(self, sha256: str, model_version: str) -> Detection | None:
        key = (sha256, model_version)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, detection: Detection) -> None:
        if self._capacity <= 0:
            return
        key = (detection.image.sha256, detection.model.version)
        self._entries[key] = detection
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget_near(self, pdq: str, max_distance: int) -> int:
        """Drop the verdicts of images within `max_distance` of `pdq`: a bank entry was added, corrected or
        removed, so a repost of those bytes must be decided again, not served its old verdict. Returns how many."""
        target = int(pdq, 16)
        stale = [
            key
            for key, detection in self._entries.items()
            if detection.image.pdq is not None and (int(detection.image.pdq, 16) ^ target).bit_count() <= max_distance
        ]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def __len__(self) -> int:
        return len(self._entries)

"""A bounded verdict cache keyed by image sha256: a repost of the same image costs no GPU."""

from __future__ import annotations

from collections import OrderedDict

from zoomguard.schemas.detection import Detection


class VerdictCache:
    """Least-recently-used, at most `capacity` entries (0 disables). Keyed by sha256 and model version,
    so a promoted model never serves its predecessor's verdicts."""

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], Detection] = OrderedDict()
        self.hits = 0
        self.misses = 0

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

    def __len__(self) -> int:
        return len(self._entries)

"""Every evidence reader the settings enable, as one function over the raw bytes (the cascade's first stage)."""

from __future__ import annotations

from collections.abc import Callable

from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.schemas.evidence import EvidenceItem

Reader = Callable[[bytes], list[EvidenceItem]]


def build_reader(settings: EvidenceSettings) -> Reader | None:
    """None when evidence is off; otherwise the enabled readers, run in turn, each never raising."""
    if not settings.enabled:
        return None
    readers: list[Reader] = []

    def read(data: bytes) -> list[EvidenceItem]:
        found: list[EvidenceItem] = []
        for reader in readers:
            found.extend(item for item in reader(data) if item not in found)
        return found

    return read

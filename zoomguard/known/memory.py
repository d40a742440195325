"""The bank as one worker holds it: what each entry decides, and its hash indexed; changed record by record.

Pure (no Kafka): the worker's follower feeds it the records of the bank's topic in order, and the cascade asks
it about each upload's hash. A record that cannot be applied is skipped and counted, never fatal: the bank is
written by people's tools as well as by zoomguard, and one bad record must not stop every worker. Per entry it
keeps only what a verdict cites (a few short strings, not the whole record): a million entries stay in the
hundreds of MB.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from zoomguard.errors import BadInputError
from zoomguard.known.bank import BankEntry, decode_record
from zoomguard.known.hashing import PdqHash
from zoomguard.known.index import HashIndex
from zoomguard.known.settings import KnownContentSettings

log = structlog.get_logger("zoomguard.known")


@dataclass(frozen=True, slots=True)
class Known:
    """What a match on this entry decides and cites."""

    entry_id: str
    label: str
    source: str
    decided_by: str | None
    decided_at: str  # ISO 8601, as the record had it

    @classmethod
    def of(cls, entry: BankEntry) -> Known:
        return cls(
            entry_id=entry.entry_id,
            label=sys.intern(entry.label),
            source=sys.intern(entry.source),
            decided_by=sys.intern(entry.decided_by) if entry.decided_by else None,
            decided_at=entry.decided_at.isoformat(),
        )


@dataclass(frozen=True)
class Match:
    known: Known
    distance: int


class KnownBank:
    """Entries and their HashIndex. Records come from the follower and lookups from the cascade's threads, so
    one lock guards both (a lookup at a million entries takes about a millisecond)."""

    def __init__(self, settings: KnownContentSettings, on_change: Callable[[str], None] | None = None):
        self._settings = settings
        self._entries: dict[str, Known] = {}
        self._index = HashIndex(max_entries=settings.max_entries)
        self._lock = threading.Lock()
        self._on_change = on_change
        self.skipped = 0  # records that are not bank entries
        self.refused = 0  # entries beyond max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def watch(self, on_change: Callable[[str], None]) -> None:
        """Call `on_change(pdq)` with the hash of every entry added, changed or removed (cache invalidation)."""
        self._on_change = on_change

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic: an entry (new, or replacing the one with its id) or a tombstone."""
        try:
            change = decode_record(key, value)
        except BadInputError as exc:
            self.skipped += 1
            log.warning("bank record skipped", reason=str(exc))
            return
        changed: list[str] = []
        with self._lock:
            old = self._index.hash_of(change.entry_id)
            if old is not None:
                del self._entries[change.entry_id]
                self._index.remove(change.entry_id)
                changed.append(old)
            if isinstance(change, BankEntry) and self._indexable(change):
                if self._index.add(change.entry_id, change.pdq):
                    self._entries[change.entry_id] = Known.of(change)
                    changed.append(change.pdq)
                else:
                    self.refused += 1
                    log.error("bank full: entry refused", entry_id=change.entry_id, max_entries=self._index.max_entries)
        if self._on_change is not None:
            for pdq in changed:  # outside the lock: the worker's cache drops its verdicts near these hashes
                self._on_change(pdq)

    def loaded(self) -> None:
        """After the start-up read: build the index's tables now, not on the first upload's lookup."""
        with self._lock:
            self._index.rebuild()

    def _indexable(self, entry: BankEntry) -> bool:
        """An entry too flat to mean anything never matches, so it is not indexed (an import may not say)."""
        return entry.quality is None or entry.quality >= self._settings.min_quality

    def match(self, pdq: PdqHash) -> Match | None:
        """The closest entry within max_distance of the upload's hash (or its dihedral variants), if any."""
        if pdq.quality < self._settings.min_quality:
            return None
        hashes = pdq.variants if self._settings.dihedral else (pdq.hex,)
        with self._lock:
            found = self._index.nearest(hashes, self._settings.max_distance)
            if found is None:
                return None
            entry_id, distance = found
            return Match(self._entries[entry_id], distance)

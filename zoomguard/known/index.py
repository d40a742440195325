"""An in-memory, exact Hamming index of PDQ hashes: the bank as one worker sees it.

Why multi-index hashing rather than a scan: a scan of a million hashes reads 32 MB per query (5-8 ms in numpy
at best, 3.5 ms with FAISS' IndexBinaryFlat on the 2-core development machine), while a match within 31 bits
must agree, by the pigeonhole principle, within 1 bit on at least one of the hash's 16 16-bit chunks (16 chunks
x 2 bits > 31). So per chunk a table from each 16-bit value to the entries holding it yields a few thousand
candidates, and only those are compared in full: 0.7-1.2 ms at a million entries (benchmarks/README.md). The
answer is exact: every candidate's distance is computed on all 256 bits, and nothing within max_distance is
missed. Wider thresholds use 2-bit neighbourhoods per chunk (up to 47 bits), and beyond that a full scan.

The tables are built in one pass and not updated in place. Entries added or replaced since the last build are
kept in a small "recent" set that every query scans in full, and removed entries are masked, so adds, replaces
and removals cost microseconds; the tables are rebuilt (0.6 s per million) by the first query that finds
the recent set larger than a thirty-second of the bank, or when the caller asks (`rebuild`), e.g. once after
reading the topic to its end at start-up.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from zoomguard.known.hashing import PDQ_BITS, normalise_pdq

_WORDS = PDQ_BITS // 64  # a hash is stored as 4 uint64
_CHUNKS = 16  # and searched as 16 chunks of 16 bits
_CHUNK_VALUES = 1 << 16
_MAX_CHUNK_RADIUS = 2  # max_distance up to 47; above it every query is a scan (candidates would be most entries)
_RECENT_MIN = 16_384  # below this many recent entries a scan costs less than a rebuild
_RECENT_SHARE = 32  # rebuild when the recent set exceeds this fraction (1/n) of the bank
_SCAN_ROWS = 1 << 16  # rows per block of a full scan: its temporaries stay in cache
_NO_MATCH = PDQ_BITS + 1


def _popcount_table() -> np.ndarray:
    return np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _distances(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Hamming distance of each row (n, 4 uint64) to the query (4 uint64), as uint16. Adding the four
        columns is about twice as fast as numpy's sum over an axis of length 4."""
        counts = np.bitwise_count(rows ^ query)
        total = counts[:, 0].astype(np.uint16)
        for word in range(1, _WORDS):
            total += counts[:, word]
        return total

else:  # pragma: no cover - numpy 1.26
    _BYTE_BITS = _popcount_table()

    def _distances(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        xor = np.ascontiguousarray(rows ^ query).view(np.uint8)
        return _BYTE_BITS[xor].sum(axis=1, dtype=np.uint16)


def _flip_masks(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most `radius` bits set: the chunk values within `radius` of a query's."""
    masks = [0]
    for bits in range(1, radius + 1):
        masks.extend(sum(1 << bit for bit in chosen) for chosen in combinations(range(16), bits))
    return np.array(masks, dtype=np.int64)


_FLIPS = tuple(_flip_masks(radius) for radius in range(_MAX_CHUNK_RADIUS + 1))


def pack(pdq_hex: str) -> np.ndarray:
    """A PDQ hash in hex -> 4 uint64 (byte order is irrelevant to Hamming distance, only consistent)."""
    return np.frombuffer(bytes.fromhex(pdq_hex), dtype=np.uint64)


class HashIndex:
    """Bank entries by id, each with one PDQ hash; `nearest` finds the closest within a distance.

    Not thread-safe: one owner applies the bank's records and answers lookups (a lock around it, if shared).
    """

    def __init__(self, max_entries: int = 5_000_000, capacity: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.max_entries = max_entries
        capacity = max(16, min(capacity, max_entries))
        self._bits = np.zeros((capacity, _WORDS), dtype=np.uint64)
        self._alive = np.zeros(capacity, dtype=bool)
        self._ids: list[str | None] = []  # slot -> entry id (None: free)
        self._slots: dict[str, int] = {}
        self._free: list[int] = []
        self._id_bytes = 0  # the entry id strings' own size, for memory_bytes
        # multi-index tables over slots [0, _built): _order[c*_built:(c+1)*_built] lists slots by chunk c's
        # value; _starts[c*65537 + v] is where value v's run begins in _order (offset included)
        self._built = 0
        self._order = np.zeros(0, dtype=np.int32)
        self._starts = np.zeros(0, dtype=np.int64)
        self._recent: set[int] = set()  # slots written since the tables were built
        self._recent_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._slots

    def hash_of(self, entry_id: str) -> str | None:
        slot = self._slots.get(entry_id)
        return None if slot is None else self._bits[slot].tobytes().hex()

    def add(self, entry_id: str, pdq_hex: str) -> bool:
        """Add an entry or replace the hash of an existing one. False (nothing changed) when the index is full
        and the id is new: the caller counts it, the bank is never silently truncated."""
        packed = pack(normalise_pdq(pdq_hex))
        slot = self._slots.get(entry_id)
        if slot is None:
            if len(self._slots) >= self.max_entries:
                return False
            slot = self._free.pop() if self._free else self._new_slot()
            self._slots[entry_id] = slot
            self._ids[slot] = entry_id
            self._id_bytes += sys.getsizeof(entry_id)
        self._bits[slot] = packed
        self._alive[slot] = True
        self._touch(slot)
        return True

    def remove(self, entry_id: str) -> bool:
        """Forget an entry (a tombstone); False when it was not there. Its slot is reused by a later add."""
        slot = self._slots.pop(entry_id, None)
        if slot is None:
            return False
        self._ids[slot] = None
        self._id_bytes -= sys.getsizeof(entry_id)
        self._alive[slot] = False
        self._free.append(slot)
        if slot in self._recent:
            self._recent.discard(slot)
            self._recent_rows = None
        return True

    def nearest(self, hashes: str | Sequence[str], max_distance: int) -> tuple[str, int] | None:
        """The entry closest to any of the hashes (one hash, or an upload's 8 dihedral hashes) if its distance
        is at most max_distance, else None. Ties go to the smallest entry id, so every worker answers alike."""
        if not 0 <= max_distance <= PDQ_BITS:
            raise ValueError(f"max_distance must be 0..{PDQ_BITS}, got {max_distance}")
        queries = [pack(normalise_pdq(text)) for text in ([hashes] if isinstance(hashes, str) else hashes)]
        if not self._slots or not queries:
            return None
        radius = max_distance // _CHUNKS
        if radius <= _MAX_CHUNK_RADIUS and len(self._recent) > max(_RECENT_MIN, len(self._slots) // _RECENT_SHARE):
            self.rebuild()
        best_distance, best_slots = _NO_MATCH, np.zeros(0, dtype=np.int64)
        for query in queries:
            if radius > _MAX_CHUNK_RADIUS:
                slots, distances = self._scan(query, max_distance)
            else:
                slots, distances = self._candidates(query, radius)
                within = distances <= max_distance
                slots, distances = slots[within], distances[within]
            if not len(distances):
                continue
            low = int(distances.min())
            if low < best_distance:
                best_distance, best_slots = low, slots[distances == low]
            elif low == best_distance:
                best_slots = np.concatenate([best_slots, slots[distances == low]])
        if best_distance == _NO_MATCH:
            return None
        winner = min(str(self._ids[int(slot)]) for slot in np.unique(best_slots))
        return winner, best_distance

    def rebuild(self) -> None:
        """Build the chunk tables over every slot (0.6 s per million); recent entries become table entries."""
        size = len(self._ids)
        chunks = self._bits[:size].view(np.uint16)  # (size, 16)
        order = np.empty((_CHUNKS, size), dtype=np.int32)
        starts = np.empty((_CHUNKS, _CHUNK_VALUES + 1), dtype=np.int64)
        for chunk in range(_CHUNKS):
            values = chunks[:, chunk]
            order[chunk] = np.argsort(values, kind="stable")
            starts[chunk, 0] = 0
            np.cumsum(np.bincount(values, minlength=_CHUNK_VALUES), out=starts[chunk, 1:])
            starts[chunk] += chunk * size
        self._order, self._starts, self._built = order.reshape(-1), starts.reshape(-1), size
        self._recent.clear()
        self._recent_rows = None

    def memory_bytes(self) -> int:
        """What the index holds: the arrays, the id table and the id strings (an estimate of the dict's own
        overhead by sys.getsizeof, which counts its hash table but not the strings)."""
        arrays = self._bits.nbytes + self._alive.nbytes + self._order.nbytes + self._starts.nbytes
        tables = sys.getsizeof(self._slots) + sys.getsizeof(self._ids) + sys.getsizeof(self._free)
        return arrays + tables + self._id_bytes

    def _new_slot(self) -> int:
        slot = len(self._ids)
        if slot == len(self._bits):
            grown = min(max(2 * slot, 16), max(self.max_entries, slot + 1))
            self._bits = np.concatenate([self._bits, np.zeros((grown - slot, _WORDS), dtype=np.uint64)])
            self._alive = np.concatenate([self._alive, np.zeros(grown - slot, dtype=bool)])
        self._ids.append(None)
        return slot

    def _touch(self, slot: int) -> None:
        self._recent.add(slot)
        self._recent_rows = None

    def _candidates(self, query: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots whose chunk tables put them within `radius` bits on some chunk, plus the recent ones; with
        their exact distances (a slot may appear more than once)."""
        parts = [self._recent_slots()]
        if self._built:
            chunk_values = query.view(np.uint16).astype(np.int64)
            keys = ((chunk_values[:, None] ^ _FLIPS[radius][None, :]) + self._chunk_base()[:, None]).ravel()
            low, high = self._starts[keys], self._starts[keys + 1]
            lengths = high - low
            ends = np.cumsum(lengths)
            total = int(ends[-1])
            positions = np.arange(total, dtype=np.int64) + np.repeat(low - (ends - lengths), lengths)
            parts.append(self._order[positions].astype(np.int64))
        slots = np.concatenate(parts)
        slots = slots[self._alive[slots]]
        return slots, _distances(self._bits[slots], query)

    def _chunk_base(self) -> np.ndarray:
        return np.arange(_CHUNKS, dtype=np.int64) * (_CHUNK_VALUES + 1)

    def _recent_slots(self) -> np.ndarray:
        if self._recent_rows is None:
            self._recent_rows = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
        return self._recent_rows

    def _scan(self, query: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """Live slots within max_distance, by a scan block by block (for a max_distance too wide for the chunk
        tables: their candidates would be most of the bank)."""
        size = len(self._ids)
        found_slots, found = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.uint16)]
        for start in range(0, size, _SCAN_ROWS):
            stop = min(size, start + _SCAN_ROWS)
            distances = _distances(self._bits[start:stop], query)
            hits = np.flatnonzero((distances <= max_distance) & self._alive[start:stop])
            if len(hits):
                found_slots.append(hits + start)
                found.append(distances[hits])
        return np.concatenate(found_slots), np.concatenate(found)

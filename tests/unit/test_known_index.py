"""The Hamming index: add, replace, remove, nearest at the threshold's edges, and its chunk tables checked
against a plain scan after adds, replacements and removals (the tables must never miss a match)."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from zoomguard.known.hashing import hamming
from zoomguard.known.index import HashIndex

ZERO = "0" * 64


def flipped(pdq: str, bits: int, first: int = 0) -> str:
    """`pdq` with `bits` bits flipped, from bit `first` on (bit 0 = the most significant)."""
    value = int(pdq, 16)
    for bit in range(first, first + bits):
        value ^= 1 << (255 - bit)
    return f"{value:064x}"


def spread(pdq: str, bits: int) -> str:
    """Flip `bits` bits spread over the hash (one per 16-bit chunk first): the hardest case for chunk tables."""
    value = int(pdq, 16)
    for k in range(bits):
        value ^= 1 << ((k % 16) * 16 + k // 16)
    return f"{value:064x}"


def random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def test_an_empty_index_finds_nothing() -> None:
    index = HashIndex()
    assert len(index) == 0 and index.nearest(ZERO, 31) is None and index.nearest([], 31) is None


@pytest.fixture(scope="module")
def crowd() -> HashIndex:
    """20,000 random entries: enough for chunk tables; their distances to any query are ~128 +- 8."""
    index = HashIndex()
    rng = random.Random(20_000)
    for n in range(20_000):
        index.add(f"other:{n}", random_hash(rng))
    return index


@pytest.mark.parametrize(
    ("distance", "max_distance", "found"),
    [
        (0, 0, True),
        (1, 0, False),
        (31, 31, True),  # exactly at the threshold: a match
        (32, 31, False),  # one past it: none
        (30, 31, True),
        (47, 47, True),
        (48, 47, False),
        (48, 48, True),  # from 48 on, a scan instead of the chunk tables
        (64, 64, True),
    ],
)
@pytest.mark.parametrize("where", ["contiguous", "spread"])
@pytest.mark.parametrize("crowded", [False, True], ids=["alone", "in chunk tables"])
def test_the_threshold_is_inclusive(
    distance: int, max_distance: int, found: bool, where: str, crowded: bool, crowd: HashIndex
) -> None:
    index = crowd if crowded else HashIndex()
    target = random_hash(random.Random(distance))
    index.add("target", target)
    index.rebuild()
    try:
        query = flipped(target, distance) if where == "contiguous" else spread(target, distance)
        assert hamming(query, target) == distance
        answer = index.nearest(query, max_distance)
    finally:
        index.remove("target")
    if found:
        assert answer == ("target", distance)
    else:
        assert answer is None or answer[0] != "target"


def test_replacing_an_entry_moves_it() -> None:
    index = HashIndex()
    index.add("review:e1", ZERO)
    assert index.add("review:e1", "f" * 64)  # a later decision for the same event
    assert len(index) == 1 and index.hash_of("review:e1") == "f" * 64
    assert index.nearest(ZERO, 31) is None
    assert index.nearest(flipped("f" * 64, 5), 31) == ("review:e1", 5)


def test_removal_is_a_tombstone_and_the_slot_is_reused() -> None:
    index = HashIndex()
    index.add("a", ZERO)
    index.add("b", "f" * 64)
    assert index.remove("a") and not index.remove("a") and not index.remove("never")
    assert "a" not in index and len(index) == 1
    assert index.nearest(ZERO, 31) is None
    index.add("c", flipped(ZERO, 100))  # takes a's slot
    assert index.nearest(ZERO, 31) is None
    assert index.nearest(flipped(ZERO, 98), 31) == ("c", 2)
    index.add("a", ZERO)
    assert index.nearest(ZERO, 31) == ("a", 0)


def test_ties_go_to_the_smallest_id() -> None:
    index = HashIndex()
    for entry_id in ("m", "b", "z"):
        index.add(entry_id, flipped(ZERO, 3))
    assert index.nearest(ZERO, 31) == ("b", 3)


def test_the_nearest_of_several_variants_wins() -> None:
    """An upload's 8 dihedral hashes: the one closest to any entry decides."""
    index = HashIndex()
    index.add("near", flipped("f" * 64, 4))
    index.add("far", flipped(ZERO, 20))
    assert index.nearest([ZERO, "f" * 64], 31) == ("near", 4)
    assert index.nearest([ZERO, "f" * 64], 3) is None


def test_a_full_index_refuses_new_ids_but_still_replaces() -> None:
    index = HashIndex(max_entries=2)
    assert index.add("a", ZERO) and index.add("b", "f" * 64)
    assert not index.add("c", ZERO) and "c" not in index
    assert index.add("a", flipped(ZERO, 40))
    index.remove("b")
    assert index.add("c", ZERO)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda index: index.add("a", "0" * 63), "64 hex digits"),
        (lambda index: index.add("a", "z" * 64), "64 hex digits"),
        (lambda index: index.nearest("0" * 65, 31), "64 hex digits"),
        (lambda index: index.nearest(ZERO, -1), "max_distance"),
        (lambda index: index.nearest(ZERO, 257), "max_distance"),
    ],
)
def test_bad_arguments_are_refused(call: Callable[[HashIndex], object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        call(HashIndex())


def test_chunk_tables_agree_with_a_scan_through_changes() -> None:
    """24,000 entries, then replacements, removals and new entries after the build: every answer, for
    queries near entries and random ones, equals a scan's over the current entries."""
    rng = random.Random(7)
    index = HashIndex()
    entries = {f"e{n}": random_hash(rng) for n in range(24_000)}
    for entry_id, pdq in entries.items():
        index.add(entry_id, pdq)
    before = index.memory_bytes()
    index.nearest(ZERO, 31)  # the first lookup builds the tables (24,000 recent entries)
    assert index.memory_bytes() > before
    replaced_old, removed_old = entries["e7"], entries["e3"]
    for n in range(0, 24_000, 7):
        entries[f"e{n}"] = random_hash(rng)
        index.add(f"e{n}", entries[f"e{n}"])
    for n in range(3, 24_000, 11):
        entries.pop(f"e{n}", None)
        index.remove(f"e{n}")
    for n in range(24_000, 25_000):
        entries[f"e{n}"] = random_hash(rng)
        index.add(f"e{n}", entries[f"e{n}"])
    targets = rng.sample(sorted(entries), 150)
    queries = [spread(entries[t], rng.randrange(0, 48)) for t in targets] + [random_hash(rng) for _ in range(30)]
    # a replaced entry's new and old hash, a removed entry's hash: the tables still hold the old ones
    queries += [spread(entries["e7"], 20), spread(replaced_old, 3), spread(removed_old, 3)]
    ids = sorted(entries)
    bits = np.unpackbits(
        np.frombuffer(bytes.fromhex("".join(entries[i] for i in ids)), np.uint8).reshape(-1, 32), axis=1
    )
    for max_distance in (31, 40):
        for query in queries:
            query_bits = np.unpackbits(np.frombuffer(bytes.fromhex(query), np.uint8))
            distances = (bits != query_bits).sum(axis=1)  # the plain scan: compare every bit of every entry
            low = int(distances.min())
            expected = (low, ids[int(np.flatnonzero(distances == low)[0])])
            answer = index.nearest(query, max_distance)
            if expected[0] > max_distance:
                assert answer is None
            else:
                assert answer == (expected[1], expected[0])
    index.rebuild()
    assert all(index.nearest(entries[t], 0) == (t, 0) for t in targets)


def test_memory_is_estimated() -> None:
    index = HashIndex()
    empty = index.memory_bytes()
    rng = random.Random(1)
    for n in range(5000):
        index.add(f"import:{n:060d}", random_hash(rng))
    assert index.memory_bytes() > empty + 5000 * (32 + 60)

"""The known-content index as a benchmark stage: loading a bank of N hashes, building its tables, lookups one at a
time (as a worker asks), its memory, and its answers checked against a plain scan.

The bank is N random 256-bit hashes with ids shaped like imports ("import:" + 64 hex digits). Half the queries are
a bank hash with 20 random bits flipped (a match at the default threshold, 31), half are random (no entry within
31: the common case, an unknown upload). Every answer is compared with a numpy scan's, and a disagreement raises:
a fast wrong index cannot win.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil

from zoomguard.known.index import HashIndex

MAX_DISTANCE = 31  # KnownContentSettings.max_distance's default
NEAR_FLIPS = 20


def random_bank(count: int, seed: int = 0) -> np.ndarray:
    """`count` random PDQ hashes as a (count, 32) uint8 array."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32), dtype=np.uint8)


def mixed_queries(hashes: np.ndarray, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(queries (count, 32) uint8, near mask): half bank hashes with NEAR_FLIPS random bits flipped, half random,
    shuffled together."""
    rng = np.random.default_rng(seed)
    near = hashes[rng.integers(0, len(hashes), count // 2)].copy()
    for row in near:
        for bit in rng.choice(256, NEAR_FLIPS, replace=False):
            row[bit // 8] ^= np.uint8(1 << (bit % 8))
    far = rng.integers(0, 256, size=(count - len(near), 32), dtype=np.uint8)
    order = rng.permutation(count)
    return np.concatenate([near, far])[order], (np.arange(count) < len(near))[order]


def scan_nearest(packed: np.ndarray, query: np.ndarray, max_distance: int = MAX_DISTANCE) -> int | None:
    """The truth: distance of the nearest of `packed` ((N, 4) uint64) within max_distance, by a full scan."""
    low = int(np.bitwise_count(packed ^ query.view(np.uint64)).sum(axis=1).min())
    return low if low <= max_distance else None


def timed_lookups(lookup: Callable[[Any], int | None], queries: Sequence[Any]) -> tuple[list[int | None], list[float]]:
    """(answers, milliseconds per lookup), one query at a time."""
    answers, times = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(lookup(query))
        times.append((time.perf_counter() - started) * 1e3)
    return answers, times


def percentile_ms(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3)}


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def load_index(hexes: Sequence[str]) -> tuple[HashIndex, float, float, float]:
    """(index, seconds adding every hash, seconds building the tables, RSS growth in MiB). The id strings are made
    inside the timed loop, so the RSS growth counts them, as a worker's bank holds them."""
    before = rss_mib()
    started = time.perf_counter()
    index = HashIndex(max_entries=max(1, len(hexes)))
    for text in hexes:
        index.add(f"import:{text}", text)
    added = time.perf_counter() - started
    started = time.perf_counter()
    index.rebuild()
    return index, added, time.perf_counter() - started, rss_mib() - before


def measure_known_index(
    entries: int = 1_000_000, queries: int = 300, seed: int = 0, dihedral_queries: int = 100
) -> dict[str, Any]:
    """The stage's figures, JSON-ready. Raises RuntimeError when the index disagrees with the scan on any query or
    misses a near one."""
    if entries < 1 or queries < 2:
        raise ValueError(f"need at least 1 entry and 2 queries, got {entries} and {queries}")
    hashes = random_bank(entries, seed)
    asked, near = mixed_queries(hashes, queries, seed + 1)
    hexes = [row.tobytes().hex() for row in hashes]
    query_hexes = [row.tobytes().hex() for row in asked]
    index, load_s, build_s, grown = load_index(hexes)

    def one(text: str) -> int | None:
        found = index.nearest(text, MAX_DISTANCE)
        return None if found is None else found[1]

    others = [row.tobytes().hex() for row in random_bank(7, seed + 2)]  # stand-ins for the 7 turned and mirrored

    def dihedral(text: str) -> int | None:
        found = index.nearest([text, *others], MAX_DISTANCE)
        return None if found is None else found[1]

    answers, times = timed_lookups(one, query_hexes)
    dihedral_count = min(dihedral_queries, queries)
    dihedral_answers, dihedral_times = timed_lookups(dihedral, query_hexes[:dihedral_count])

    packed = np.ascontiguousarray(hashes).view(np.uint64)
    truth = [scan_nearest(packed, query) for query in asked]
    wrong = [i for i, (got, want) in enumerate(zip(answers, truth, strict=True)) if got != want]
    if wrong:
        raise RuntimeError(
            f"HashIndex disagrees with the scan on {len(wrong)} of {queries} queries (first: {wrong[0]})"
        )
    # a dihedral lookup answers the nearest of its 8 hashes; the 7 stand-ins are the same for every query
    stand_ins = [d for d in (scan_nearest(packed, row) for row in random_bank(7, seed + 2)) if d is not None]
    for i, got in enumerate(dihedral_answers):
        found = [d for d in (truth[i], *stand_ins) if d is not None]
        if got != (min(found) if found else None):
            raise RuntimeError(f"HashIndex's dihedral lookup disagrees with the scan on query {i}")
    missed = int(sum(1 for got, is_near in zip(answers, near, strict=True) if is_near and got is None))
    if missed:
        raise RuntimeError(f"{missed} near queries ({NEAR_FLIPS} bits from a bank hash) found no match")
    near_times = [t for t, is_near in zip(times, near, strict=True) if is_near]
    far_times = [t for t, is_near in zip(times, near, strict=True) if not is_near]
    return {
        "entries": entries,
        "queries": queries,
        "max_distance": MAX_DISTANCE,
        "load_s": round(load_s, 3),
        "build_s": round(build_s, 3),
        "lookup_ms": percentile_ms(times),
        "near_lookup_ms": percentile_ms(near_times),
        "far_lookup_ms": percentile_ms(far_times),
        "dihedral_lookup_ms": percentile_ms(dihedral_times),
        "dihedral_queries": dihedral_count,
        "memory_mib": {"index": round(index.memory_bytes() / 2**20, 1), "rss_growth": round(grown, 1)},
        "near_queries": int(near.sum()),
        "near_matched": int(near.sum()) - missed,
        "checked_against_scan": queries + dihedral_count,
    }


def known_markdown(result: dict[str, Any]) -> str:
    """One row: load and build time, lookup latency, memory, and what the scan confirmed."""
    look, dihedral, memory = result["lookup_ms"], result["dihedral_lookup_ms"], result["memory_mib"]
    return "\n".join(
        [
            "| entries | load s | build s | lookup p50 / p99 ms | 8 dihedral hashes p50 / p99 ms | "
            "memory MiB (index / RSS growth) | near queries matched | answers checked against a scan |",
            "|---|---|---|---|---|---|---|---|",
            f"| {result['entries']:,} | {result['load_s']} | {result['build_s']} | {look['p50']} / {look['p99']} | "
            f"{dihedral['p50']} / {dihedral['p99']} | {memory['index']} / {memory['rss_growth']} | "
            f"{result['near_matched']} of {result['near_queries']} | {result['checked_against_scan']}, all agree |",
        ]
    )

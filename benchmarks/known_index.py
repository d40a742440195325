"""Exact Hamming search over N PDQ hashes: zoomguard's HashIndex (multi-index chunk tables), a numpy scan, and
FAISS' IndexBinaryFlat and IndexBinaryMultiHash (when faiss-cpu is installed):

    .venv/bin/python benchmarks/known_index.py [N] [QUERIES]

The bank is N random 256-bit hashes with ids shaped like imports ("import:" + 64 hex digits). Half the
queries are a bank hash with 20 random bits flipped (a match at 31), half are random (no entry within 31: the
common case, an unknown upload). Every method's answers are checked against the scan's (distance of the
nearest), so a fast wrong index cannot win. Lookups are timed one query at a time, the way a worker asks.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

from zoomguard.bench.known import (
    MAX_DISTANCE,
    load_index,
    mixed_queries,
    percentile_ms,
    random_bank,
    rss_mib,
    scan_nearest,
    timed_lookups,
)


def timed(label: str, lookup: Callable[[np.ndarray], int | None], qs: np.ndarray) -> tuple[list[int | None], str]:
    answers, times = timed_lookups(lookup, list(qs))
    cut = percentile_ms(times)
    return answers, f"| {label} | {cut['p50']:.3f} | {cut['p99']:.3f} |"


def main(count: int, n_queries: int) -> None:
    print(f"# {count:,} hashes, {n_queries} queries, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    hashes = random_bank(count)
    qs, _ = mixed_queries(hashes, n_queries)
    index, added, rebuilt, grown = load_index([row.tobytes().hex() for row in hashes])
    print(f"HashIndex: add {count:,} entries {added:.1f} s, rebuild {rebuilt:.2f} s;")
    memory = index.memory_bytes() / 2**20
    print(f"memory_bytes {memory:.0f} MiB, RSS growth {grown:.0f} MiB (71-character ids included)\n")

    packed = np.ascontiguousarray(hashes).view(np.uint64)
    rows = []

    def truth(query: np.ndarray) -> int | None:
        return scan_nearest(packed, query)

    expected, row = timed("numpy one-liner scan (XOR + bitwise_count + sum over the (N, 4) matrix)", truth, qs[:50])
    rows.append(row)

    columns = np.ascontiguousarray(packed.T)  # (4, N): each word of every hash, contiguous
    block = 1 << 15
    word, counts, total = np.empty(block, np.uint64), np.empty(block, np.uint8), np.empty(block, np.uint16)

    def column_scan(query: np.ndarray) -> int | None:
        """The scan at its best in numpy: column-major words, blocks that stay in cache, no temporaries."""
        words, low = query.view(np.uint64), 257
        for start in range(0, count, block):
            stop = min(count, start + block)
            w, c, t = word[: stop - start], counts[: stop - start], total[: stop - start]
            np.bitwise_xor(columns[0, start:stop], words[0], out=w)
            np.bitwise_count(w, out=c)
            np.copyto(t, c)
            for k in (1, 2, 3):
                np.bitwise_xor(columns[k, start:stop], words[k], out=w)
                np.bitwise_count(w, out=c)
                np.add(t, c, out=t)
            low = min(low, int(t.min()))
        return low if low <= MAX_DISTANCE else None

    answers, row = timed("numpy blocked column-major scan (XOR, bitwise_count, add, in place)", column_scan, qs[:200])
    assert answers == [truth(query) for query in qs[:200]]
    rows.append(row)

    def chunk_tables(query: np.ndarray) -> int | None:
        found = index.nearest(query.tobytes().hex(), MAX_DISTANCE)
        return None if found is None else found[1]

    def blocked_scan(query: np.ndarray) -> int | None:  # max_distance >= 48 makes HashIndex scan every entry
        found = index.nearest(query.tobytes().hex(), 48)
        return None if found is None or found[1] > MAX_DISTANCE else found[1]

    others = [row.tobytes().hex() for row in random_bank(7, seed=2)]  # stand-ins for the 7 turned and mirrored hashes

    def dihedral(query: np.ndarray) -> int | None:
        found = index.nearest([query.tobytes().hex(), *others], MAX_DISTANCE)
        return None if found is None else found[1]

    answers, row = timed("HashIndex, one hash (chunk tables)", chunk_tables, qs)
    rows.append(row)
    expected_all = [truth(query) for query in qs]
    assert answers == expected_all, "HashIndex disagrees with the scan"
    assert answers[:50] == expected
    answers, row = timed("HashIndex, max_distance 48 (blocked numpy scan)", blocked_scan, qs[:100])
    rows.append(row)
    assert answers == expected_all[:100]
    rows.append(timed("HashIndex, 8 dihedral hashes", dihedral, qs[:200])[1])

    try:
        import faiss
    except ImportError:
        print("faiss-cpu not installed: FAISS rows skipped\n")
    else:
        before = rss_mib()
        start = time.perf_counter()
        flat = faiss.IndexBinaryFlat(256)
        flat.add(hashes)
        print(
            f"FAISS IndexBinaryFlat: build {time.perf_counter() - start:.2f} s, RSS growth {rss_mib() - before:.0f} MiB"
        )
        start = time.perf_counter()
        multi = faiss.IndexBinaryMultiHash(256, 16, 16)
        multi.nflip = 1
        multi.add(hashes)
        print(f"FAISS IndexBinaryMultiHash(16 x 16 bits, nflip 1): build {time.perf_counter() - start:.2f} s\n")

        def faiss_lookup(faiss_index: object) -> Callable[[np.ndarray], int | None]:
            def lookup(query: np.ndarray) -> int | None:
                distances, _ = faiss_index.search(query.reshape(1, 32), 1)  # type: ignore[attr-defined]
                low = int(distances[0, 0])
                return low if 0 <= low <= MAX_DISTANCE else None

            return lookup

        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            answers, row = timed(f"FAISS IndexBinaryFlat, {threads} thread(s)", faiss_lookup(flat), qs)
            assert answers == expected_all, "FAISS flat disagrees with the scan"
            rows.append(row)
            answers, row = timed(f"FAISS IndexBinaryMultiHash, {threads} thread(s)", faiss_lookup(multi), qs)
            assert answers == expected_all, "FAISS multi-hash disagrees with the scan"
            rows.append(row)
            start = time.perf_counter()
            flat.search(qs, 1)
            per_query = (time.perf_counter() - start) / len(qs) * 1e3
            rows.append(
                f"| FAISS IndexBinaryFlat, {len(qs)} queries batched, {threads} thread(s) | {per_query:.3f} | - |"
            )

    print("| method | p50 ms | p99 ms |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 1000)

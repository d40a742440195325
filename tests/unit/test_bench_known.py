"""The known-content stage: its figures on a small bank, near queries matched, and a wrong index refused."""

from __future__ import annotations

import numpy as np
import pytest

from zoomguard.bench import known
from zoomguard.bench.known import known_markdown, measure_known_index, mixed_queries, random_bank, scan_nearest


def test_queries_are_half_near_half_random() -> None:
    bank = random_bank(1000, seed=3)
    queries, near = mixed_queries(bank, 40, seed=4)
    packed = np.ascontiguousarray(bank).view(np.uint64)
    distances = [scan_nearest(packed, query, max_distance=256) for query in queries]
    assert near.sum() == 20
    assert all(d is not None and d <= known.NEAR_FLIPS for d, is_near in zip(distances, near, strict=True) if is_near)
    assert all(d is not None and d > 60 for d, is_near in zip(distances, near, strict=True) if not is_near)


def test_small_bank_figures() -> None:
    result = measure_known_index(entries=20_000, queries=60, dihedral_queries=20)
    assert result["entries"] == 20_000 and result["queries"] == 60
    assert result["near_queries"] == 30 and result["near_matched"] == 30
    assert result["checked_against_scan"] == 80
    for key in ("load_s", "build_s"):
        assert result[key] > 0
    for key in ("lookup_ms", "near_lookup_ms", "far_lookup_ms", "dihedral_lookup_ms"):
        assert 0 < result[key]["p50"] <= result[key]["p99"]
    # 20,000 hashes are 625 KiB of bits alone, plus the chunk tables and the ids
    assert 0.6 < result["memory_mib"]["index"] < 50
    table = known_markdown(result)
    assert "| 20,000 |" in table and "30 of 30" in table and "80, all agree" in table


def test_a_wrong_index_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An index that never finds anything is fast, and must not pass."""
    monkeypatch.setattr(known.HashIndex, "nearest", lambda self, hashes, max_distance: None)
    with pytest.raises(RuntimeError, match="disagrees with the scan"):
        measure_known_index(entries=2_000, queries=10, dihedral_queries=2)

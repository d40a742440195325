"""Commit points never pass an unfinished offset, whatever order events finish in."""

from __future__ import annotations

import random

import pytest

from zoomguard.worker.offsets import OffsetTracker


def test_commit_point_is_first_unfinished() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        tracker.start("p0", offset)
    assert tracker.commit_point("p0") == 10
    tracker.finish("p0", 12)
    tracker.finish("p0", 11)
    assert tracker.commit_point("p0") == 10
    tracker.finish("p0", 10)
    assert tracker.commit_point("p0") == 13
    tracker.finish("p0", 13)
    tracker.finish("p0", 14)
    assert tracker.commit_point("p0") == 15
    assert tracker.in_flight() == 0


def test_pending_commits_only_when_moved() -> None:
    tracker = OffsetTracker()
    tracker.start("a", 0)
    tracker.start("b", 5)
    assert tracker.pending_commits() == {"a": 0, "b": 5}
    tracker.mark_committed(tracker.pending_commits())
    assert tracker.pending_commits() == {}
    tracker.finish("b", 5)
    assert tracker.pending_commits() == {"b": 6}


def test_forgotten_partition_ignores_late_finishes() -> None:
    tracker = OffsetTracker()
    tracker.start("a", 3)
    tracker.forget("a")
    tracker.finish("a", 3)
    assert tracker.commit_point("a") is None
    assert tracker.pending_commits() == {}


def test_unknown_partition_has_no_commit_point() -> None:
    assert OffsetTracker().commit_point("nope") is None


@pytest.mark.parametrize("seed", range(20))
def test_random_completion_order_never_commits_past_unfinished(seed: int) -> None:
    rng = random.Random(seed)
    tracker = OffsetTracker()
    offsets = list(range(100))
    for offset in offsets:
        tracker.start(0, offset)
    order = offsets[:]
    rng.shuffle(order)
    finished: set[int] = set()
    for offset in order:
        tracker.finish(0, offset)
        finished.add(offset)
        point = tracker.commit_point(0)
        assert point is not None
        assert all(o in finished for o in range(point))  # everything below the point is done
        assert point == 100 or point not in finished  # and the point itself is not
    assert tracker.commit_point(0) == 100

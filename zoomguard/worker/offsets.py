"""Which offsets are safe to commit: only up to the first unfinished offset of each partition.

Pure bookkeeping, no Kafka: events finish out of order (the engine batches them), but a committed offset
promises that everything before it is done, so the commit point is the lowest offset still in flight.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class _PartitionState:
    in_flight: set[int] = field(default_factory=set)
    heap: list[int] = field(default_factory=list)  # offsets in flight, lazily cleaned
    highest_seen: int = -1
    committed: int | None = None  # the next offset to read, as last committed


class OffsetTracker:
    """Tracks started and finished offsets per partition (any hashable partition key)."""

    def __init__(self) -> None:
        self._partitions: dict[Hashable, _PartitionState] = {}

    def start(self, partition: Hashable, offset: int) -> None:
        state = self._partitions.setdefault(partition, _PartitionState())
        if offset in state.in_flight:
            return
        state.in_flight.add(offset)
        heapq.heappush(state.heap, offset)
        state.highest_seen = max(state.highest_seen, offset)

    def finish(self, partition: Hashable, offset: int) -> None:
        """Mark done; unknown partitions (revoked meanwhile) are ignored."""
        state = self._partitions.get(partition)
        if state is not None:
            state.in_flight.discard(offset)

    def in_flight(self, partition: Hashable | None = None) -> int:
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.in_flight) if state else 0
        return sum(len(s.in_flight) for s in self._partitions.values())

    def commit_point(self, partition: Hashable) -> int | None:
        """The offset to commit (next to read): lowest in flight, or one past the highest seen."""
        state = self._partitions.get(partition)
        if state is None or state.highest_seen < 0:
            return None
        while state.heap and state.heap[0] not in state.in_flight:
            heapq.heappop(state.heap)
        return state.heap[0] if state.heap else state.highest_seen + 1

    def pending_commits(self) -> dict[Hashable, int]:
        """Partitions whose commit point moved since the last `mark_committed`."""
        pending = {}
        for partition, state in self._partitions.items():
            point = self.commit_point(partition)
            if point is not None and point != state.committed:
                pending[partition] = point
        return pending

    def mark_committed(self, commits: dict[Hashable, int]) -> None:
        for partition, offset in commits.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def forget(self, partition: Hashable) -> None:
        """Drop a revoked partition: its unfinished events belong to the next owner now."""
        self._partitions.pop(partition, None)

    def partitions(self) -> list[Hashable]:
        return list(self._partitions)

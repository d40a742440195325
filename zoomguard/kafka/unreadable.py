"""Records the Kafka client itself cannot read: find the partition and offset, so they can be dead-lettered.

Why: kafka-python raises from `poll()` for a whole fetch when one batch is corrupt (CRC), compressed with a
codec it cannot decode, or malformed, and the position does not move: every poll (and every restart) hits the
same batch and the partition is stuck. The client does not say which partition raised, so the probe polls
each active partition alone (the others paused) and names the one that raises and its position. The records
the probe reads from healthy partitions are handed back, never dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import structlog
from kafka import TopicPartition
from kafka.errors import CorruptRecordError, UnsupportedCodecError

from zoomguard.errors import BadInputError

log = structlog.get_logger("zoomguard.kafka")

# What poll() raises when the bytes of a batch cannot be turned into records (not network faults: the client
# retries those itself). RuntimeError: kafka-python's wrapper of a StopIteration while unpacking a batch.
UNREADABLE_ERRORS: tuple[type[Exception], ...] = (
    CorruptRecordError,
    UnsupportedCodecError,
    struct.error,
    ValueError,
    IndexError,
    RuntimeError,
)


class UnreadableRecordsError(BadInputError):
    """The client cannot read a topic's records; the message names the partitions and offsets."""

    kind = "unreadable_record"


def drop_broken_batch(consumer: Any) -> None:
    """Discard the partition data whose parsing raised, so that the next poll fetches it again.

    Why reach into the fetcher: in kafka-python 3.0, after a batch raised while being unpacked, its exhausted
    record iterator stays in line at an unchanged position, and the next poll() spins on it forever (100% CPU,
    no heartbeat). `drain()` is the fetcher's own way to retire that data; nothing public does it."""
    fetcher = getattr(consumer, "_fetcher", None)
    broken = getattr(fetcher, "_next_partition_records", None)
    if broken is not None and hasattr(broken, "drain"):
        broken.drain()


@dataclass
class ProbeResult:
    records: list[Any] = field(default_factory=list)  # read from healthy partitions during the probe: process them
    culprit: TopicPartition | None = None
    offset: int | None = None  # the position that cannot be read
    error: str = ""


def probe_unreadable(consumer: Any, polls_per_partition: int = 10, first: TopicPartition | None = None) -> ProbeResult:
    """On the consumer's own thread: poll each active partition alone until it yields a record or raises.

    Pause state is restored afterwards; `first` is tried first (the partition that failed last time)."""
    result = ProbeResult()
    paused_before = set(consumer.paused())
    active = sorted(
        (tp for tp in consumer.assignment() if tp not in paused_before), key=lambda t: (t.topic, t.partition)
    )
    if first in active:
        active.remove(first)
        active.insert(0, first)
    if not active:
        return result
    consumer.pause(*active)
    try:
        for tp in active:
            consumer.resume(tp)
            try:
                for _ in range(polls_per_partition):
                    batch = consumer.poll(timeout_ms=200, max_records=1)
                    got = [record for records in batch.values() for record in records]
                    if got:
                        result.records.extend(got)
                        break
            except UNREADABLE_ERRORS as exc:
                drop_broken_batch(consumer)
                result.culprit, result.offset = tp, consumer.position(tp)
                result.error = f"{type(exc).__name__}: {exc}"
                return result
            finally:
                consumer.pause(tp)
    finally:
        consumer.resume(*active)
    return result


def skip_unreadable(consumer: Any) -> ProbeResult:
    """For readers with nowhere to dead-letter (followers of a compacted topic, the bank feed): find the offset
    that cannot be read and move the position past it, so the reader goes on with the records after it.

    On the consumer's own thread. The skip is logged here, with where it is, so the record can be re-sent; the
    caller counts it. The records read from healthy partitions meanwhile are in the result, to be applied like
    any others."""
    result = probe_unreadable(consumer)
    if result.culprit is not None and result.offset is not None:
        consumer.seek(result.culprit, result.offset + 1)
        log.error(
            "record cannot be read by the Kafka client: skipping it",
            topic=result.culprit.topic,
            partition=result.culprit.partition,
            offset=result.offset,
            error=result.error,
        )
    return result


@dataclass
class SkippingPoll:
    """poll() for readers that skip what they cannot read: an unreadable batch raises UnreadableRecordsError on
    the first `attempts - 1` polls in a row (a CRC error can be a bad fetch), then its offset is skipped
    (`skip_unreadable`) and counted in `skipped`. Used on the consumer's own thread."""

    attempts: int = 3
    skipped: int = 0
    _failures: int = 0

    def poll(self, consumer: Any, timeout_ms: int) -> list[Any]:
        """The records polled, partitions in turn (with a skip: those the probe read)."""
        try:
            batches = poll_readable(consumer, timeout_ms=timeout_ms)
        except UnreadableRecordsError:
            self._failures += 1
            if self._failures < self.attempts:
                raise
            self._failures = 0
            probe = skip_unreadable(consumer)
            self.skipped += probe.culprit is not None
            return probe.records
        self._failures = 0
        return [record for records in batches.values() for record in records]


def describe_unreadable(consumer: Any, error: BaseException) -> str:
    """For readers that stop instead of dead-lettering: which partitions, at which positions, and why."""
    try:
        positions = ", ".join(
            f"{tp.topic}/{tp.partition}@{consumer.position(tp)}"
            for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition))
        )
    except Exception:  # the description must not hide the original error
        positions = "unknown positions"
    return (
        f"the Kafka client cannot read the records at {positions or 'no assigned partition'} "
        f"({type(error).__name__}: {error}); a corrupt batch or an unknown codec"
    )


def poll_readable(consumer: Any, timeout_ms: int, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
    """poll() that turns an unreadable batch into UnreadableRecordsError naming the partitions and offsets."""
    try:
        return dict(consumer.poll(timeout_ms=timeout_ms, **kwargs))
    except UNREADABLE_ERRORS as exc:
        drop_broken_batch(consumer)
        raise UnreadableRecordsError(describe_unreadable(consumer, exc)) from exc

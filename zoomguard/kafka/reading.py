"""Read a topic to its end once: no consumer group, nothing committed (an export or a dataset is a snapshot).

The end is each partition's high watermark when the read starts (from `end_offsets`, raised once by the
first high watermark a fetch reports, because some Kafka-compatible brokers under-report `end_offsets`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from zoomguard.errors import UnavailableError
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.kafka.unreadable import poll_readable

Progress = Callable[[int, int], None]


def read_to_end(
    kafka: KafkaSettings,
    topic: str,
    *,
    timeout_s: float,
    progress: Progress | None = None,
    timeout_setting: str = "review.export_timeout_s",
) -> Iterator[Any]:
    """Every record of `topic` from the beginning up to its end at the start; raises if that takes too long."""
    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        fetch_max_bytes=max(kafka.max_partition_fetch_bytes, 52428800),
        **kafka.common_config(),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        targets: dict[TopicPartition, int] = dict(consumer.end_offsets(partitions))
        refined: set[TopicPartition] = set()
        total = sum(targets.values())
        done = 0
        deadline = time.monotonic() + timeout_s
        while _remaining(consumer, targets):
            if time.monotonic() > deadline:
                raise UnavailableError(f"could not read {topic} to its end within {timeout_s} s ({timeout_setting})")
            batch = poll_readable(consumer, timeout_ms=500)
            for tp in partitions:
                highwater = consumer.highwater(tp)
                if tp not in refined and highwater is not None:
                    refined.add(tp)
                    total += max(highwater - targets[tp], 0)
                    targets[tp] = max(targets[tp], highwater)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < targets[tp]:
                        done += 1
                        yield record
            if progress is not None:
                progress(done, total)
    finally:
        consumer.close()


def _remaining(consumer: KafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    return any(consumer.position(tp) < end for tp, end in targets.items())

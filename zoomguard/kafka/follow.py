"""Follow a topic from its beginning in every process: each one must see every record, so no group."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zoomguard.kafka.settings import KafkaSettings
from zoomguard.kafka.unreadable import SkippingPoll


class TopicFollower:
    """A topic read by assignment from the beginning, then followed, with no consumer group and no commits:
    every process that follows it sees every record (the model-update topic; later the known-content bank).

    A record the client cannot read (a corrupt batch, a codec it lacks) raises from `read` a few times, since a
    CRC error can be a bad fetch; then it is skipped, logged with its partition and offset and counted in
    `skipped_unreadable`: a follower has nowhere to dead-letter it, and waiting on it would stall the topic for
    every record behind it (the bank would never load).

    kafka-python's consumer is not thread-safe: every call runs on one dedicated thread."""

    def __init__(self, kafka: KafkaSettings, topic: str, poll_ms: int = 300, unreadable_attempts: int = 3):
        self._kafka = kafka
        self._topic = topic
        self._poll_ms = poll_ms
        self._polls = SkippingPoll(unreadable_attempts)
        self._consumer: Any = None
        self._assigned = False
        self._start_end: dict[Any, int] = {}  # end offsets when first assigned: what "caught up" means
        self._missing = False  # the topic did not exist at the last look: there was nothing to catch up on
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"follow-{topic}")

    async def read(self) -> list[bytes | None]:
        """Values of the records read, oldest first across partitions (record timestamps)."""
        records = await asyncio.get_running_loop().run_in_executor(self._executor, self._read)
        return [r.value for r in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))]

    async def read_keyed(self) -> list[tuple[bytes | None, bytes | None]]:
        """(key, value) of the records read, each partition in offset order (a key's records share a partition,
        so its last record read is its latest, whatever timestamps producers set); a tombstone's value is None."""
        records = await asyncio.get_running_loop().run_in_executor(self._executor, self._read)
        return [(r.key, r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]

    async def caught_up(self) -> bool:
        """Whether every partition has been read up to where it ended when this follower first looked at it: a
        reader of a compacted topic has loaded its state then. True while the topic does not exist (nothing to
        load)."""

        def check() -> bool:
            if not self._assigned:
                return self._missing
            return all(self._consumer.position(tp) >= end for tp, end in self._start_end.items())

        return await asyncio.get_running_loop().run_in_executor(self._executor, check)

    def _read(self) -> list[Any]:
        from kafka import KafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **self._kafka.common_config()
            )
        if not self._assigned:
            partitions = self._consumer.partitions_for_topic(self._topic)
            if not partitions:  # not created yet: nothing to serve; look again on the next read
                self._missing = True
                time.sleep(self._poll_ms / 1000)
                return []
            self._missing = False
            assignment = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            self._consumer.assign(assignment)
            self._consumer.seek_to_beginning(*assignment)
            self._start_end = dict(self._consumer.end_offsets(assignment))
            self._assigned = True
        return self._polls.poll(self._consumer, self._poll_ms)

    @property
    def skipped_unreadable(self) -> int:
        return self._polls.skipped

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` before the next try, or less when `stop` is set: a retry loop never delays a shutdown."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

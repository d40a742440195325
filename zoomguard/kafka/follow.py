"""Follow a topic from its beginning in every process: each one must see every record, so no group."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zoomguard.kafka.settings import KafkaSettings
from zoomguard.kafka.unreadable import poll_readable


class TopicFollower:
    """A topic read by assignment from the beginning, then followed, with no consumer group and no commits:
    every process that follows it sees every record (the model-update topic; later the known-content bank).

    kafka-python's consumer is not thread-safe: every call runs on one dedicated thread."""

    def __init__(self, kafka: KafkaSettings, topic: str, poll_ms: int = 300):
        self._kafka = kafka
        self._topic = topic
        self._poll_ms = poll_ms
        self._consumer: Any = None
        self._assigned = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"follow-{topic}")

    async def read(self) -> list[bytes | None]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read)

    def _read(self) -> list[bytes | None]:
        from kafka import KafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **self._kafka.common_config()
            )
        if not self._assigned:
            partitions = self._consumer.partitions_for_topic(self._topic)
            if not partitions:  # not created yet: nothing to serve; look again on the next read
                time.sleep(self._poll_ms / 1000)
                return []
            assignment = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            self._consumer.assign(assignment)
            self._consumer.seek_to_beginning(*assignment)
            self._assigned = True
        batches = poll_readable(self._consumer, timeout_ms=self._poll_ms)
        records = sorted((r for rs in batches.values() for r in rs), key=lambda r: (r.timestamp, r.partition, r.offset))
        return [record.value for record in records]

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

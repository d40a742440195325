"""kafka-python behind asyncio: one thread owns the consumer; producer sends become awaitable acks.

kafka-python's consumer is not thread-safe, so every call on it (poll, pause, resume, commit, close)
runs on one dedicated thread. The producer is thread-safe; its futures are bridged to asyncio so an
event is marked done only after the broker acknowledged every output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from zoomguard.kafka.settings import KafkaSettings

T = TypeVar("T")
Headers = list[tuple[str, bytes]]


class ConsumerThread:
    """Runs every consumer call on one thread; `call(fn)` awaits `fn(consumer)` there."""

    def __init__(self, consumer: KafkaConsumer):
        self.consumer = consumer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")

    async def call(self, fn: Callable[[KafkaConsumer], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self.consumer)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class AsyncProducer:
    def __init__(self, producer: KafkaProducer):
        self._producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> Any:
        """Resolves when the broker acknowledged the record (acks=all); raises the producer's error."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def resolve(metadata: Any) -> None:
            loop.call_soon_threadsafe(_set_result, done, metadata)

        def reject(error: BaseException) -> None:
            loop.call_soon_threadsafe(_set_exception, done, error)

        future = await asyncio.to_thread(self._producer.send, topic, value=value, key=key, headers=headers or [])
        future.add_callback(resolve)
        future.add_errback(reject)
        return await done

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout=timeout)
        self._producer.close(timeout=timeout)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def make_consumer(settings: KafkaSettings, **overrides: Any) -> KafkaConsumer:
    return KafkaConsumer(
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_bytes=max(settings.max_partition_fetch_bytes, 52428800),
        **settings.common_config(),
        **overrides,
    )


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    return KafkaProducer(
        acks="all",
        linger_ms=settings.linger_ms,
        compression_type=settings.compression_type,
        max_request_size=settings.max_request_size,
        retries=5,
        **settings.common_config(),
        **overrides,
    )


def ensure_topics(
    settings: KafkaSettings, topics: Sequence[str], partitions: int = 6, configs: dict[str, str] | None = None
) -> None:
    """Create the topics that do not exist yet (demo, tests, first deploys; production uses the topic Job),
    with `configs` (e.g. cleanup.policy=compact for the known-content bank)."""
    admin = KafkaAdminClient(**settings.common_config())
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, 1, topic_configs=configs or {}) for name in topics if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()

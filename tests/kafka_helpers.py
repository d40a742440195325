"""Producing, reading and inspecting the real broker from tests."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.support import LoopThread
from zoomguard.app.config import Settings
from zoomguard.app.worker_service import run_service
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.clients import ensure_topics
from zoomguard.samples import image_event_json
from zoomguard.telemetry.bundle import Telemetry
from zoomguard.worker.loop import WorkerStats

# Join a group in ~1 s on the embedded broker (see shared notes: join time = session timeout / 2 s).
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400}


def unique_topics(prefix: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "input": f"{prefix}.{tag}.in",
        "verdicts": f"{prefix}.{tag}.verdicts",
        "review": f"{prefix}.{tag}.review",
        "dead_letter": f"{prefix}.{tag}.dlq",
        "model_updates": f"{prefix}.{tag}.model-updates",  # workers follow it: never share it between tests
        "known": f"{prefix}.{tag}.known",  # the bank, likewise
        "review_decisions": f"{prefix}.{tag}.decisions",
    }


def kafka_overrides(bootstrap: str, prefix: str, partitions: int = 3) -> dict[str, Any]:
    topics = unique_topics(prefix)
    settings = {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-{uuid.uuid4().hex[:8]}", **FAST_GROUP}
    from zoomguard.kafka.settings import KafkaSettings

    ensure_topics(KafkaSettings(**settings), list(topics.values()), partitions=partitions)
    return {"kafka": settings, "topics": topics}


def image_event(event_id: str, image: dict[str, str]) -> bytes:
    return image_event_json(event_id, image, metadata={"test": True})


def inline(data: bytes) -> dict[str, str]:
    return {"data_b64": base64.b64encode(data).decode()}


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], headers: Any = None) -> list[Any]:
    """Send and wait for acks; returns the record metadata (partition, offset) in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    try:
        futures = [producer.send(topic, key=k, value=v, headers=headers or []) for k, v in records]
        producer.flush()
        return [f.get(timeout=30) for f in futures]
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str, idle_polls: int = 3) -> list[Any]:
    """Every record on `topic` from the beginning (by assignment: no group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        idle = 0
        while idle < idle_polls:
            batch = consumer.poll(timeout_ms=300)
            idle = 0 if batch else idle + 1
            records.extend(r for rs in batch.values() for r in rs)
        return records
    finally:
        consumer.close()


def read_json(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_all(bootstrap, topic)]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def settings_with(base: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of `base` with some sections updated (values merged into the existing section)."""
    updates = {name: getattr(base, name).model_copy(update=values) for name, values in sections.items()}
    return base.model_copy(update=updates)


class TopicWatcher:
    """Keeps reading a topic from the beginning; `event_ids()` is cheap to call in a wait loop."""

    def __init__(self, bootstrap: str, topic: str):
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or [])]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)
        self.values: list[dict[str, Any]] = []

    def event_ids(self) -> Counter[str]:
        batch = self._consumer.poll(timeout_ms=100)
        self.values.extend(json.loads(r.value) for rs in batch.values() for r in rs)
        return Counter(v["event_id"] for v in self.values)

    def close(self) -> None:
        self._consumer.close()


def run_until_handled(
    loop: LoopThread,
    settings: Settings,
    engine: Engine | None,
    total: int,
    *,
    telemetry: Telemetry | None = None,
    timeout: float = 240,
) -> WorkerStats:
    """Run the service on the test loop until `total` events were handled; stop it cleanly on timeout too."""

    async def run() -> WorkerStats:
        stop = asyncio.Event()
        handled = 0

        def count(_: object) -> None:
            nonlocal handled
            handled += 1
            if handled >= total:
                stop.set()

        service = asyncio.create_task(run_service(settings, stop, engine=engine, on_outcome=count, telemetry=telemetry))
        try:
            return await asyncio.wait_for(asyncio.shield(service), timeout)
        except TimeoutError:
            stop.set()
            await service
            raise

    return loop.run(run(), timeout=timeout + 60)


class RunningService:
    """The worker service running on the test loop, observed from the test thread."""

    def __init__(self, loop: LoopThread, settings: Settings, engine: Engine):
        self._loop = loop
        self._stop = asyncio.Event()
        self._detector: Any = None
        started = asyncio.Event()

        def on_started(worker: Any) -> None:
            self._detector = worker.processor.detector
            started.set()

        async def launch() -> asyncio.Task[Any]:
            task = asyncio.create_task(run_service(settings, self._stop, engine=engine, on_started=on_started))
            await asyncio.wait_for(started.wait(), 60)
            return task

        self._task = loop.run(launch())

    def detector_version(self) -> str:
        return str(self._detector.model.version)

    def stop(self) -> Any:
        async def finish() -> Any:
            self._stop.set()
            return await self._task

        return self._loop.run(finish(), timeout=120)

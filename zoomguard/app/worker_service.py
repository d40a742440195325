"""The worker process's wiring: engine, detector, fetcher, cache, Kafka clients, worker; and teardown.

`zoomguard run`, the demo and the tests all start the service through `run_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog

from zoomguard.app.config import Settings
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.evidence.reader import build_pixel_reader, build_reader
from zoomguard.kafka.clients import AsyncProducer, ConsumerThread, make_consumer, make_producer
from zoomguard.kafka.follow import TopicFollower
from zoomguard.known.memory import KnownBank
from zoomguard.media.fetch import URLFetcher
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.telemetry.bundle import Telemetry, build_telemetry
from zoomguard.worker.cache import VerdictCache
from zoomguard.worker.known_bank import BankFollower
from zoomguard.worker.loop import Worker, WorkerStats
from zoomguard.worker.model_updates import ModelSwitcher, ModelUpdateFollower
from zoomguard.worker.processor import EventProcessor, Outcome

log = structlog.get_logger("zoomguard.service")


async def run_service(
    settings: Settings,
    stop: asyncio.Event,
    *,
    engine: Engine | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_started: Callable[[Worker], None] | None = None,
    telemetry: Telemetry | None = None,
) -> WorkerStats:
    """Run one worker until `stop` is set. A passed-in `engine` is shared (already started) and not closed;
    a passed-in `telemetry` (tests) is used instead of one built from settings, and not closed."""
    owns_telemetry = telemetry is None
    telemetry = telemetry or build_telemetry(settings.telemetry)
    owns_engine = engine is None
    try:
        if engine is None:
            engine = build_engine(settings.engine, settings.detector)
            await engine.start()
        telemetry.health.engine_loaded = True
        telemetry.state.engine_queue_depth = engine.queue_depth
        return await _run_worker(settings, stop, engine, telemetry, on_outcome, on_started)
    finally:
        if owns_engine and engine is not None:
            await engine.close()
        if owns_telemetry:
            telemetry.close()


async def _run_worker(
    settings: Settings,
    stop: asyncio.Event,
    engine: Engine,
    telemetry: Telemetry,
    on_outcome: Callable[[Outcome], None] | None,
    on_started: Callable[[Worker], None] | None,
) -> WorkerStats:
    fetcher = URLFetcher(settings.fetch)
    consumer = ConsumerThread(make_consumer(settings.kafka))
    producer = AsyncProducer(make_producer(settings.kafka))
    try:
        detector = build_detector(settings.engine, settings.detector, engine, telemetry.tracer)
        cache = VerdictCache(settings.worker.cache_entries)
        bank = KnownBank(settings.known) if settings.known.enabled else None
        if bank is not None:

            def forget(pdq: str) -> None:  # a repost near a changed entry is decided again, not served stale
                cache.forget_near(pdq, settings.known.max_distance)

            bank.watch(forget)
        processor = EventProcessor(
            detector,
            fetcher,
            cache,
            settings.worker,
            settings.topics,
            label_studio_task,
            telemetry=telemetry,
            max_output_bytes=settings.kafka.max_request_size,
            image_limits=settings.detector.limits,
            read_evidence=build_reader(settings.evidence),
            evidence=settings.evidence,
            read_pixels=build_pixel_reader(settings.evidence),
            bank=bank,
            known=settings.known,
        )
        worker = Worker(
            consumer,
            producer,
            processor,
            settings.worker,
            settings.topics,
            on_outcome=on_outcome,
            telemetry=telemetry,
            group_id=settings.kafka.group_id,
        )
        if on_started is not None:
            on_started(worker)
        async with _following_model_updates(settings, detector, stop), _following_bank(settings, bank, stop):
            if settings.worker.freeze_startup_heap:
                freeze_startup_heap()
            log.info("service starting", model=detector.model.name, model_version=detector.model.version)
            await worker.run(stop)
        return worker.stats
    finally:
        await asyncio.to_thread(producer.close)
        consumer.shutdown()
        await fetcher.close()


def freeze_startup_heap() -> None:
    """Collect, then move every object alive now to the collector's permanent generation (gc.freeze).

    Why: the worker process holds vLLM's front end, transformers, torch and the bank, hundreds of thousands of
    objects that live as long as it does; every full collection walked them all, with the event loop and the
    Kafka client's threads stopped (0.36-1.07 s each on the tiny model on 2 cores; 0.03-0.05 s once frozen).
    Frozen objects are still freed when their last reference goes; only cycles among them are never collected,
    so this runs once the start-up is done."""
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen", objects=gc.get_freeze_count())


@contextlib.asynccontextmanager
async def _following_bank(settings: Settings, bank: KnownBank | None, stop: asyncio.Event) -> AsyncIterator[None]:
    """Load the known-content bank before the first event, then follow it in the background."""
    if bank is None:
        yield
        return
    source = TopicFollower(settings.kafka, settings.topics.known)
    async with _caught_up_then_following(source, BankFollower(source, bank, catchup_s=settings.known.catchup_s), stop):
        yield


@contextlib.asynccontextmanager
async def _following_model_updates(
    settings: Settings, detector: ZoomInDetector, stop: asyncio.Event
) -> AsyncIterator[None]:
    """Serve the newest promoted model before the first event, then follow promotions in the background."""
    if not settings.worker.follow_model_updates:
        yield
        return
    source = TopicFollower(settings.kafka, settings.topics.model_updates)
    follower = ModelUpdateFollower(
        source,
        ModelSwitcher(detector),
        max_bytes=settings.worker.max_model_update_bytes,
        catchup_s=settings.worker.model_updates_catchup_s,
    )
    async with _caught_up_then_following(source, follower, stop):
        yield


class _Follower(Protocol):
    async def catch_up(self) -> object: ...

    async def follow(self, stop: asyncio.Event) -> None: ...


@contextlib.asynccontextmanager
async def _caught_up_then_following(
    source: TopicFollower, follower: _Follower, stop: asyncio.Event
) -> AsyncIterator[None]:
    """Catch up before the first event, follow in the background while the worker runs, close the source after."""
    task: asyncio.Task[None] | None = None
    try:
        await follower.catch_up()
        task = asyncio.create_task(follower.follow(stop), name=f"follow-{type(follower).__name__}")
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await source.close()

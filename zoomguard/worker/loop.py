"""The moderation worker: poll image events, process many at once, publish, commit what is safe.

Guarantees (at-least-once):
- an offset is committed only after every output of its event was acknowledged by the broker, and only
  up to the first unfinished offset of its partition (OffsetTracker);
- a bounded in-flight window: at max_in_flight the partitions are paused (the consumer stays in its
  group, no rebalance) and resumed at low_water, so memory is bounded whatever the backlog;
- on revoke, the revoked partitions get rebalance_drain_s to finish, what is done is committed, the rest
  is left to the next owner; on stop (SIGTERM), in-flight events get drain_timeout_s, then a last commit.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from kafka import AsyncConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.net.selector import KernelEvent
from kafka.structs import OffsetAndMetadata
from opentelemetry.trace import SpanKind

from zoomguard.kafka.clients import AsyncProducer, ConsumerThread
from zoomguard.kafka.settings import TopicSettings
from zoomguard.kafka.unreadable import UNREADABLE_ERRORS, drop_broken_batch, probe_unreadable
from zoomguard.telemetry.bundle import Telemetry, disabled_telemetry
from zoomguard.telemetry.tracing import TRACE_HEADERS, context_from_headers, headers_from_context, kafka_attributes
from zoomguard.worker.offsets import OffsetTracker
from zoomguard.worker.processor import EventProcessor, InputRecord, Outcome, Output
from zoomguard.worker.settings import WorkerSettings

log = structlog.get_logger("zoomguard.worker")


@dataclass
class WorkerStats:
    """Counts for progress, tests and the demo; metrics exporters read the same numbers."""

    outcomes: Counter[str] = field(default_factory=Counter)  # verdict / dead_letter
    decisions: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    publish_retries: int = 0
    commits: int = 0
    paused: bool = False
    in_flight: int = 0

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


class Worker:
    def __init__(
        self,
        consumer: ConsumerThread,
        producer: AsyncProducer,
        processor: EventProcessor,
        worker: WorkerSettings,
        topics: TopicSettings,
        on_outcome: Callable[[Outcome], None] | None = None,
        telemetry: Telemetry | None = None,
        group_id: str | None = None,
    ):
        self._telemetry = telemetry or disabled_telemetry()
        self._tracer = self._telemetry.tracer
        self._group_id = group_id
        self._next_offsets: dict[TopicPartition, int] = {}
        self._highwaters: dict[TopicPartition, int] = {}
        self._consumer = consumer
        self._producer = producer
        self._processor = processor
        self._settings = worker
        self._topics = topics
        self._tracker = OffsetTracker()
        self._tasks: dict[tuple[TopicPartition, int], asyncio.Task[None]] = {}
        self._want_pause = False
        self._unreadable_failures = 0
        self._last_unreadable: TopicPartition | None = None
        self._on_outcome = on_outcome
        self.stats = WorkerStats()
        self.on_first_record: Callable[[], object] | None = None  # benchmarks time from the first record
        state = self._telemetry.state
        state.in_flight = self._tracker.in_flight
        state.paused = lambda: self.stats.paused
        state.lag = self.lag

    @property
    def processor(self) -> EventProcessor:
        return self._processor

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain, commit and leave the group."""
        loop = asyncio.get_running_loop()
        listener = _Rebalance(self, loop, self._consumer.consumer)
        await self._consumer.call(lambda c: c.subscribe([self._topics.input], listener=listener))
        log.info("worker started", topic=self._topics.input, max_in_flight=self._settings.max_in_flight)
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                await self._sync_pause()
                batches, highwaters, assigned, unreadable = await self._consumer.call(self._poller())
                self._highwaters.update(highwaters)
                self._telemetry.health.polled(self.stats.paused, assigned)
                for records in batches.values():
                    for record in records:
                        self._start(record)
                if unreadable is not None:
                    await self._on_unreadable(unreadable)
                elif batches:
                    self._unreadable_failures = 0
                if time.monotonic() - last_commit >= self._settings.commit_interval_s:
                    await self._commit()
                    last_commit = time.monotonic()
        finally:
            self._telemetry.health.stopping = True
            await self._shutdown()

    def _poller(self) -> Callable[[Any], tuple[Any, dict[TopicPartition, int], int, BaseException | None]]:
        """Poll, and read the high watermarks the fetches brought (for lag), on the consumer thread.
        A batch the client cannot read comes back as the error, not raised: the worker must not die on it."""
        room = max(1, self._settings.max_in_flight - self._tracker.in_flight())

        def poll(consumer: Any) -> tuple[Any, dict[TopicPartition, int], int, BaseException | None]:
            unreadable: BaseException | None = None
            try:
                batches = consumer.poll(timeout_ms=200, max_records=room)
            except UNREADABLE_ERRORS as exc:
                drop_broken_batch(consumer)
                batches, unreadable = {}, exc
            assigned = consumer.assignment()
            highwaters = {tp: hw for tp in assigned if (hw := consumer.highwater(tp)) is not None}
            return batches, highwaters, len(assigned), unreadable

        return poll

    async def _on_unreadable(self, error: BaseException) -> None:
        """Retry a few polls (a CRC error can be a bad fetch), then find the batch and dead-letter its offset.

        One dead letter per unreadable offset, then the position moves on: nothing is skipped silently and the
        partition never stalls. After a first find, the same partition is probed at once (a compressed batch
        holds many records, each of which fails the same way)."""
        self._unreadable_failures += 1
        last = self._last_unreadable
        if last is None and self._unreadable_failures < self._settings.unreadable_attempts:
            backoff = self._settings.retry_initial_s * 2 ** (self._unreadable_failures - 1)
            delay = min(backoff, self._settings.retry_max_s)
            log.warning("a fetched batch could not be read, retrying", error=repr(error), retry_in_s=delay)
            await asyncio.sleep(delay)
            return
        probe = await self._consumer.call(lambda c: probe_unreadable(c, first=last))
        for record in probe.records:
            self._start(record)
        self._unreadable_failures = 0
        if probe.culprit is None or probe.offset is None:
            log.info("the unreadable batch did not recur", error=repr(error))
            return
        tp, offset = probe.culprit, probe.offset
        self._last_unreadable = tp
        log.error(
            "record cannot be read by the Kafka client: dead-lettering it",
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            error=probe.error,
        )
        outcome = self._processor.unreadable(tp.topic, tp.partition, offset, probe.error)
        await self._consumer.call(lambda c: c.seek(tp, offset + 1))
        self._tracker.start(tp, offset)
        self._next_offsets[tp] = max(self._next_offsets.get(tp, 0), offset + 1)
        self._tasks[(tp, offset)] = asyncio.create_task(self._complete(tp, offset, outcome))
        self.stats.in_flight = self._tracker.in_flight()

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet read, per partition: high watermark minus the next offset to read."""
        return {
            (tp.topic, tp.partition): max(0, hw - self._next_offsets.get(tp, hw))
            for tp, hw in list(self._highwaters.items())
        }

    def _start(self, record: Any) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self._tracker.start(tp, record.offset)
        self._next_offsets[tp] = max(self._next_offsets.get(tp, 0), record.offset + 1)
        if self.on_first_record is not None:
            self.on_first_record()
            self.on_first_record = None
        item = InputRecord(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple((k, v) for k, v in (record.headers or [])),
        )
        self._tasks[(tp, record.offset)] = asyncio.create_task(self._handle(tp, item))
        self.stats.in_flight = self._tracker.in_flight()

    async def _handle(self, tp: TopicPartition, record: InputRecord) -> None:
        attributes = kafka_attributes(
            record.topic,
            record.partition,
            record.offset,
            "process",
            **{"messaging.consumer.group.name": self._group_id},
        )
        try:
            with self._tracer.start_as_current_span(
                f"consume {record.topic}",
                context=context_from_headers(record.headers),  # continue the uploader's trace
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            ) as span:
                # every log line of this event's task carries where it came from (tasks own their context)
                context = span.get_span_context()
                structlog.contextvars.bind_contextvars(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    trace_id=format(context.trace_id, "032x") if context.is_valid else None,
                )
                outcome = await self._processor.process(record)
                span.set_attribute("zoomguard.outcome", outcome.kind)
                await self._publish(outcome.outputs)
        finally:
            self._tasks.pop((tp, record.offset), None)
        self._finish(tp, record.offset, outcome)

    async def _complete(self, tp: TopicPartition, offset: int, outcome: Outcome) -> None:
        """An outcome decided without processing (an unreadable record): publish it, then finish the offset."""
        try:
            await self._publish(outcome.outputs)
        finally:
            self._tasks.pop((tp, offset), None)
        self._finish(tp, offset, outcome)

    def _finish(self, tp: TopicPartition, offset: int, outcome: Outcome) -> None:
        # Only here, with every output acknowledged, may the offset become committable.
        self._tracker.finish(tp, offset)
        self.stats.in_flight = self._tracker.in_flight()
        self._count(outcome)

    async def _publish(self, outputs: list[Output]) -> None:
        started = time.perf_counter()
        delay = self._settings.retry_initial_s
        pending = list(outputs)
        while pending:
            results = await asyncio.gather(*(self._send(o) for o in pending), return_exceptions=True)
            failed = [o for o, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
            errors = [r for r in results if isinstance(r, BaseException)]
            for error in errors:
                if not isinstance(error, KafkaError):
                    raise error
            pending = failed
            if pending:
                self.stats.publish_retries += 1
                log.warning("publish failed, retrying", error=str(errors[0]), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.retry_max_s)
        self._telemetry.metrics.stage("publish", time.perf_counter() - started)

    async def _send(self, output: Output) -> Any:
        """One output record in a producer span whose context travels in the record's headers."""
        attributes = kafka_attributes(output.topic, -1, None, "send")
        with self._tracer.start_as_current_span(
            f"publish {output.topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            trace_headers = headers_from_context()
            headers = output.headers
            if trace_headers:  # tracing on: our span replaces the input's context (same trace, one hop on)
                headers = [(k, v) for k, v in output.headers if k not in TRACE_HEADERS] + trace_headers
            return await self._producer.send(output.topic, output.key, output.value, headers)

    def _count(self, outcome: Outcome) -> None:
        metrics = self._telemetry.metrics
        self.stats.outcomes[outcome.kind] += 1
        metrics.events.add(1, {"outcome": outcome.kind})
        if outcome.decision:
            self.stats.decisions[outcome.decision] += 1
            metrics.decisions.add(1, {"decision": outcome.decision, "source": outcome.decision_source or "model"})
        for kind in outcome.evidence_kinds:
            metrics.evidence.add(1, {"kind": kind})
        if outcome.review_reason:
            self.stats.reviews[outcome.review_reason] += 1
            metrics.events.add(1, {"outcome": "review"})
            metrics.reviews.add(1, {"reason": outcome.review_reason})
        if outcome.cache_hit:
            self.stats.cache_hits += 1
            metrics.cache_hits.add(1)
        if outcome.submitted_at is not None:
            age = (datetime.now(UTC) - outcome.submitted_at).total_seconds()
            metrics.end_to_end.record(max(0.0, age))
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    async def _sync_pause(self) -> None:
        """Hysteresis: pause at max_in_flight, resume at low_water; newly assigned partitions follow suit."""
        in_flight = self._tracker.in_flight()
        if in_flight >= self._settings.max_in_flight:
            self._want_pause = True
        elif in_flight <= self._settings.low_water:
            self._want_pause = False
        want = self._want_pause

        def apply(consumer: Any) -> None:
            if want:
                unpaused = [tp for tp in consumer.assignment() if tp not in consumer.paused()]
                if unpaused:
                    consumer.pause(*unpaused)
            elif consumer.paused():
                consumer.resume(*consumer.paused())

        await self._consumer.call(apply)
        if want != self.stats.paused:
            log.info("paused" if want else "resumed", in_flight=in_flight)
        self.stats.paused = want

    async def _commit(self) -> None:
        pending = self._tracker.pending_commits()
        if not pending:
            return
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in pending.items()}
        try:
            await self._consumer.call(lambda c: c.commit(offsets))
        except KafkaError as exc:  # rebalance in progress, coordinator moved: the next commit catches up
            log.warning("commit failed, will retry", error=str(exc))
            return
        self._tracker.mark_committed(pending)
        self.stats.commits += 1

    async def settle(self, revoked: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Called on revoke (from the consumer thread, via the loop): finish or abandon those partitions."""
        revoked_set = set(revoked)
        tasks = [task for (tp, _), task in self._tasks.items() if tp in revoked_set]
        if tasks:
            await asyncio.wait(tasks, timeout=self._settings.rebalance_drain_s)
        commits = {}
        for tp in revoked:
            point = self._tracker.commit_point(tp)
            if point is not None:
                commits[tp] = OffsetAndMetadata(point, "", -1)
            self._tracker.forget(tp)
        log.info("partitions revoked", partitions=len(revoked), abandoned=sum(not t.done() for t in tasks))
        return commits

    async def _shutdown(self) -> None:
        tasks = list(self._tasks.values())
        log.info("draining", in_flight=len(tasks), deadline_s=self._settings.drain_timeout_s)
        if tasks:
            _done, not_done = await asyncio.wait(tasks, timeout=self._settings.drain_timeout_s)
            for task in not_done:
                task.cancel()
            await asyncio.gather(*not_done, return_exceptions=True)
        await self._commit()
        await self._consumer.call(lambda c: c.close(autocommit=False))
        log.info("worker stopped", handled=self.stats.handled)


class _Rebalance(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's network thread. Waiting must not block it (heartbeats run there), so the
    settling runs on the worker's event loop and this coroutine sleeps on the client's own scheduler
    until it is done; then the finished offsets are committed before the partitions move on."""

    def __init__(self, worker: Worker, loop: asyncio.AbstractEventLoop, consumer: Any):
        self._worker = worker
        self._loop = loop
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        commits = await self._settle(list(revoked))
        if commits:
            try:
                await self._consumer.commit_async(commits)
            except KafkaError as exc:
                log.warning("commit on revoke failed", error=str(exc))

    async def on_partitions_lost(self, lost: Any) -> None:
        """Membership lost: the generation is gone, so nothing can be committed; just let go."""
        await self._settle(list(lost))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))

    async def _settle(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        if not partitions or self._loop.is_closed():
            return {}
        handoff = asyncio.run_coroutine_threadsafe(self._worker.settle(partitions), self._loop)
        while not handoff.done():
            await KernelEvent("_sleep", 0.05)  # yields to kafka-python's scheduler (heartbeats keep going)
        return handoff.result()

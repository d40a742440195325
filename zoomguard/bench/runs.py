"""The measured runs. Each returns plain numbers; throughput everywhere is images over the span from the first
work started (record polled, batch submitted) to the last result, so every run is measured the same way."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from zoomguard.app.bank import ensure_bank_topic, publish_entries
from zoomguard.app.config import Settings
from zoomguard.app.worker_service import run_service
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.factory import build_detector
from zoomguard.kafka.clients import ensure_topics, make_producer
from zoomguard.known.bank import BankEntry
from zoomguard.media.images import decode_image
from zoomguard.samples import image_event_json
from zoomguard.schemas.detection import Detection


@dataclass(frozen=True)
class RunResult:
    images: int
    seconds: float
    ips: float
    latencies_ms: tuple[float, ...] = ()
    peak_rss_mb: float = 0.0
    detections: tuple[Detection, ...] = ()
    cores_busy: float = 0.0  # CPU time of this process and its children over the run's wall time
    decided_by: dict[str, int] = field(default_factory=dict)  # verdicts per decision_source (pipeline runs)


def throughput(started: float, completions: Sequence[float]) -> tuple[float, float]:
    """(images per second from the first work started to the last result, that span in seconds)."""
    if not completions:
        return 0.0, 0.0
    span = max(completions) - started
    return (len(completions) / span if span > 0 else 0.0), span


async def engine_ceiling(settings: Settings, engine: Engine, images: Sequence[bytes]) -> RunResult:
    """The same two queries straight to the engine in one batch: no Kafka, no decoding (done beforehand)."""
    detector = build_detector(settings.engine, settings.detector, engine)
    decoded = [decode_image(data) for data in images]
    completions: list[float] = []

    async def one(index: int) -> Detection:
        detection = await detector.detect_image(decoded[index], request_id=f"ceiling-{uuid.uuid4().hex[:8]}-{index}")
        completions.append(time.perf_counter())
        return detection

    cpu_before = process_tree_cpu_seconds()
    started = time.perf_counter()
    detections = await asyncio.gather(*(one(i) for i in range(len(decoded))))
    wall = time.perf_counter() - started
    busy = cores_busy(cpu_before, process_tree_cpu_seconds(), wall)
    ips, span = throughput(started, completions)
    return RunResult(len(images), span, ips, detections=tuple(detections), cores_busy=busy)


def process_tree_cpu_seconds() -> dict[int, float]:
    """CPU seconds by process: this one and its children (vLLM's engine core and model worker run in their own
    processes). Why: on a machine without a GPU the engine is bound by CPU, and this says whether any is left."""
    seconds: dict[int, float] = {}
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a helper that exits meanwhile counts as idle
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


def cores_busy(before: dict[int, float], after: dict[int, float], wall_s: float) -> float:
    """Cores kept busy over `wall_s`: a process that started in between counts from zero."""
    if wall_s <= 0:
        return 0.0
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items()) / wall_s


def image_event(event_id: str, data: bytes) -> bytes:
    return image_event_json(event_id, {"data_b64": base64.b64encode(data).decode()}, content_id=f"bench-{event_id}")


async def pipeline(
    settings: Settings,
    engine: Engine,
    images: Sequence[bytes],
    *,
    max_in_flight: int,
    pace_ips: float | None = None,
    bank: Sequence[BankEntry] = (),
) -> RunResult:
    """Events through the real broker and worker to verdicts. With `pace_ips`, events are produced at that
    rate while the worker runs (latency under load); otherwise they wait as a backlog (throughput). `bank` is
    published to the run's own known-content topic first, so the worker holds it before its first event."""
    tag = uuid.uuid4().hex[:8]
    run_settings, topics = run_settings_for(settings, "bench", tag, max_in_flight)
    if bank:
        publish_entries(run_settings.kafka, topics["known"], bank, timeout_s=30.0)
    producer = make_producer(run_settings.kafka)
    if pace_ips is None:
        for index, data in enumerate(images):
            producer.send(topics["input"], key=str(index).encode(), value=image_event(f"{tag}-{index}", data))
        producer.flush()

    completions: list[float] = []
    latencies: list[float] = []
    stop = asyncio.Event()
    sampler = _RssSampler()

    decided_by: dict[str, int] = {}

    def done(outcome: Any) -> None:
        now = time.perf_counter()
        completions.append(now)
        source = outcome.decision_source or outcome.kind
        decided_by[source] = decided_by.get(source, 0) + 1
        if outcome.submitted_at is not None:
            latencies.append((datetime.now(UTC) - outcome.submitted_at).total_seconds() * 1000)
        if len(completions) >= len(images):
            stop.set()

    def paced() -> None:
        """On its own thread: a blocking flush must not stall the worker's event loop."""
        interval = 1.0 / pace_ips if pace_ips else 0.0
        for index, data in enumerate(images):
            producer.send(topics["input"], key=str(index).encode(), value=image_event(f"{tag}-{index}", data))
            producer.flush()
            time.sleep(interval)

    def first_record(worker: Any) -> None:
        worker.on_first_record = lambda: marks.setdefault("first", time.perf_counter())

    marks: dict[str, float] = {}
    sampler.start()
    feeder = threading.Thread(target=paced, daemon=True) if pace_ips is not None else None
    try:
        if feeder is not None:
            feeder.start()
        await run_service(run_settings, stop, engine=engine, on_outcome=done, on_started=first_record)
    finally:
        if feeder is not None:
            feeder.join()
        sampler.stop()
        producer.close()
    ips, span = throughput(marks.get("first", min(completions, default=0.0)), completions)
    return RunResult(len(images), span, ips, tuple(latencies), sampler.peak_mb, decided_by=decided_by)


def run_settings_for(
    settings: Settings, prefix: str, tag: str, max_in_flight: int, **worker: Any
) -> tuple[Settings, dict[str, str]]:
    """Fresh topics (created here) and consumer group for one measured run, and its window: runs never share
    records, committed offsets or known-content banks."""
    topics = {"input": f"{prefix}.{tag}.in", "verdicts": f"{prefix}.{tag}.verdicts",
              "review": f"{prefix}.{tag}.review", "dead_letter": f"{prefix}.{tag}.dlq",
              "known": f"{prefix}.{tag}.known"}  # fmt: skip
    run_settings = Settings.model_validate(
        {
            **settings.model_dump(),
            "topics": topics,
            "kafka": {**settings.kafka.model_dump(), "group_id": f"{prefix}-{tag}"},
            "worker": {
                **settings.worker.model_dump(),
                "max_in_flight": max_in_flight,
                "low_water": max_in_flight // 2,
                "audit_rate": 0.0,
                **worker,
            },
        }
    )
    ensure_topics(run_settings.kafka, [t for role, t in topics.items() if role != "known"], partitions=4)
    ensure_bank_topic(run_settings.kafka, topics["known"])
    return run_settings, topics


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


class _RssSampler:
    """Peak resident memory of this process (the worker; vLLM's engine core runs in its own process)."""

    def __init__(self, interval: float = 0.05):
        self._interval = interval
        self._stop = threading.Event()
        self._process = psutil.Process()
        self.peak_mb = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

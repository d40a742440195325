"""The soak: thousands of never-repeated uploads through one worker, with the RSS of every process over time.

Why: the memory run (a small against a 10x backlog) repeats its images and lasts seconds; a cache that fills
up with distinct uploads (vLLM's processed-image cache is 4 GiB by default, held in the front end and again
in the engine core) shows only as steady growth over thousands of them. Flat means: after the warm-up (the
first quarter), no process grows by more than 5%.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil

from zoomguard.app.config import Settings
from zoomguard.app.worker_service import run_service
from zoomguard.bench.runs import image_event, run_settings_for
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.clients import make_producer
from zoomguard.samples import encode, make_image

WARMUP_SHARE = 0.25
FLAT_WITHIN = 0.05
_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class RssSample:
    handled: int
    seconds: float
    rss_mb: dict[str, float]  # by role: worker (this process), engine_core, model_worker, other


@dataclass
class SoakResult:
    uploads: int
    seconds: float
    samples: list[RssSample] = field(default_factory=list)
    warmup_share: float = WARMUP_SHARE

    def growth(self) -> dict[str, float]:
        """RSS at the end over RSS once the warm-up share of the uploads was handled, per role and in total."""
        return growth_after_warmup(self.samples, self.uploads, self.warmup_share)

    def to_json(self) -> dict[str, Any]:
        growth = self.growth()
        return {
            "uploads": self.uploads,
            "warmup_share": self.warmup_share,
            "seconds": round(self.seconds, 1),
            "growth_after_warmup": growth,
            "flat": bool(growth) and all(value <= 1 + FLAT_WITHIN for value in growth.values()),
            "samples": [
                {"handled": s.handled, "seconds": round(s.seconds, 1), "rss_mb": s.rss_mb} for s in self.samples
            ],
        }


NOT_THE_WORKER = frozenset({"broker"})  # the embedded broker holds every record in memory: reported, not judged


def role_of(process: psutil.Process, own_pid: int) -> str:
    if process.pid == own_pid:
        return "worker"
    with contextlib.suppress(psutil.Error):
        name = process.name()
        if "EngineCor" in name:
            return "engine_core"
        if "Worker" in name:
            return "model_worker"
        if name == "tansu":
            return "broker"
    return "other"


def rss_by_role() -> dict[str, float]:
    """This process and its children (vLLM's engine core and model worker), resident MB summed per role."""
    me = psutil.Process()
    totals: dict[str, float] = {}
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a helper that exits meanwhile
            role = role_of(process, me.pid)
            totals[role] = totals.get(role, 0.0) + process.memory_info().rss / 2**20
    return {role: round(mb, 1) for role, mb in sorted(totals.items())}


def growth_after_warmup(samples: list[RssSample], uploads: int, warmup_share: float = WARMUP_SHARE) -> dict[str, float]:
    """Pure: the last sample over the first one at or after the warm-up, per role and for the worker's whole tree
    (the embedded broker of a benchmark run is not the worker's and is left out)."""
    after = [s for s in samples if s.handled >= warmup_share * uploads]
    if len(after) < 2:
        return {}
    first, last = after[0], after[-1]
    growth = {
        role: round(last.rss_mb[role] / first.rss_mb[role], 3)
        for role in first.rss_mb
        if role in last.rss_mb and first.rss_mb[role] > 0 and role not in NOT_THE_WORKER
    }
    worker_first = sum(mb for role, mb in first.rss_mb.items() if role not in NOT_THE_WORKER)
    worker_last = sum(mb for role, mb in last.rss_mb.items() if role not in NOT_THE_WORKER)
    growth["total"] = round(worker_last / max(worker_first, 1e-9), 3)
    return growth


def _produce(settings: Settings, topic: str, uploads: int, size: tuple[int, int], seed: int, tag: str) -> None:
    """Every upload a new image, made and sent one at a time so the benchmark never holds them all."""
    producer = make_producer(settings.kafka)
    try:
        for index in range(uploads):
            data = encode(make_image(seed + index, size), _FORMATS[index % len(_FORMATS)])
            producer.send(topic, key=str(index).encode(), value=image_event(f"{tag}-{index}", data))
        producer.flush()
    finally:
        producer.close()


async def soak(
    settings: Settings,
    engine: Engine,
    uploads: int,
    *,
    size: tuple[int, int],
    max_in_flight: int,
    seed: int = 500_000,
    every_s: float = 2.0,
    warmup_share: float = WARMUP_SHARE,
    progress: Any = None,
) -> SoakResult:
    tag = uuid.uuid4().hex[:8]
    run_settings, topics = run_settings_for(settings, "soak", tag, max_in_flight, cache_entries=0)
    await asyncio.to_thread(_produce, run_settings, topics["input"], uploads, size, seed, tag)

    handled = 0
    stop = asyncio.Event()
    result = SoakResult(uploads=uploads, seconds=0.0, warmup_share=warmup_share)
    started = time.perf_counter()
    done_sampling = threading.Event()

    def sample() -> None:
        while not done_sampling.wait(every_s):
            result.samples.append(RssSample(handled, time.perf_counter() - started, rss_by_role()))
            if progress is not None:
                progress(handled, uploads, result.samples[-1].rss_mb)

    def count(_: object) -> None:
        nonlocal handled
        handled += 1
        if handled >= uploads:
            stop.set()

    sampler = threading.Thread(target=sample, daemon=True, name="soak-rss")
    sampler.start()
    try:
        await run_service(run_settings, stop, engine=engine, on_outcome=count)
    finally:
        done_sampling.set()
        sampler.join()
    result.samples.append(RssSample(handled, time.perf_counter() - started, rss_by_role()))
    result.seconds = time.perf_counter() - started
    return result

"""The measured stages, repeated and interleaved, each on images no earlier stage sent to the engine.

Per repeat, in this order: the ceiling (the detector at saturation on pre-decoded images), the naive baseline
(on the ceiling's images and replaying its work), the pipeline (broker and worker), one event in flight, the
pipeline paced at 70% of its throughput (latency), a stream with reposts (the verdict cache), one with marked
uploads (evidence), and the mixed stream (marks and near-duplicates of known images: the cascade). Before each
stage the machine is checked for other processes' CPU use (`QuietCheck`), and every engine stage reports how many
of its Query 1 prompts found their image in the engine's cache (`CacheProbe`): zero, except where a stream
repeats its own images on purpose. The memory runs (a backlog, then ten times it) run once, after the repeats.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoomguard.app.config import Settings
from zoomguard.bench.evidence import with_marks
from zoomguard.bench.images import FreshImages
from zoomguard.bench.mixed import mixed_stream
from zoomguard.bench.naive import NaiveModel, Replay, naive_transformers
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.probe import CacheProbe
from zoomguard.bench.quiet import QuietCheck
from zoomguard.bench.runs import RunResult, engine_ceiling, pipeline
from zoomguard.schemas.detection import Detection

STAGES = ("ceiling", "naive", "pipeline", "sequential", "paced", "cached", "marked", "mixed")


@dataclass
class StageRun:
    stage: str
    repeat: int
    result: RunResult
    quiet: bool
    other_cores: float
    cache: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measured:
    runs: list[StageRun]
    preamble_tokens: int
    detections: list[Detection]  # every ceiling detection (cold): the work per image
    memory_small: RunResult | None = None
    memory_large: RunResult | None = None
    naive_threads: int = 0
    naive_device: str = ""

    def ips(self, stage: str) -> list[float]:
        return [run.result.ips for run in self.runs if run.stage == stage]


class StageRunner:
    """Runs every stage `options.repeats` times on one engine (wrapped in a `CacheProbe`)."""

    def __init__(
        self,
        options: BenchOptions,
        settings: Settings,
        probe: CacheProbe,
        naive: NaiveModel | None,
        quiet: QuietCheck,
        say: Callable[[str], None],
    ):
        self._options = options
        self._settings = settings
        self._probe = probe
        self._naive = naive
        self._quiet = quiet
        self._say = say
        self._fresh = FreshImages(options.image_size)
        self._runs: list[StageRun] = []

    async def run(self) -> Measured:
        o = self._options
        self._say("warm-up on its own images (grammar compilation, first batches; learns the prompt preamble)")
        self._probe.learn_preamble()
        await engine_ceiling(self._settings, self._probe, self._fresh.take(min(8, o.images)))
        preamble = self._probe.stop_learning()
        detections: list[Detection] = []
        for repeat in range(o.repeats):
            detections += await self._repeat(repeat)
        measured = Measured(self._runs, preamble, detections)
        if o.memory_backlog:
            backlog = o.memory_backlog
            self._say(f"memory: backlog of {backlog}, then {backlog * 10} (once, fresh images)")
            measured.memory_small = await self._pipeline(self._fresh.take(backlog))
            measured.memory_large = await self._pipeline(self._fresh.take(backlog * 10))
        if self._naive is not None:
            measured.naive_threads, measured.naive_device = self._naive.threads, self._naive.device
        return measured

    async def _repeat(self, repeat: int) -> list[Detection]:
        o = self._options
        label = f"repeat {repeat + 1}/{o.repeats}"
        images = self._fresh.take(o.images)
        ceiling = await self._stage("ceiling", repeat, f"{label}: ceiling, {len(images)} decoded images",
                                    lambda: engine_ceiling(self._settings, self._probe, images))  # fmt: skip
        if self._naive is not None:
            count = min(o.naive_images, len(images))
            replays = [Replay.of(d) for d in ceiling.detections[:count]]
            await self._stage("naive", repeat, f"{label}: naive transformers generate, {count} images",
                              lambda: self._naive_run(images[:count], replays))  # fmt: skip
        piped = await self._stage("pipeline", repeat, f"{label}: pipeline, {o.images} events",
                                  lambda: self._pipeline(self._fresh.take(o.images)))  # fmt: skip
        sequential = self._fresh.take(o.sequential_images)
        await self._stage("sequential", repeat, f"{label}: sequential, {len(sequential)} events, one in flight",
                          lambda: self._pipeline(sequential, max_in_flight=1))  # fmt: skip
        paced = self._fresh.take(o.paced_images)
        await self._stage("paced", repeat, f"{label}: {len(paced)} events paced at {o.paced_load:.0%} of the pipeline",
                          lambda: self._pipeline(paced, pace_ips=o.paced_load * piped.ips))  # fmt: skip
        await self._cached(repeat, label)
        marked_count = int(o.images * o.marked_share)
        seed = self._fresh.seed(marked_count)
        base = self._fresh.take(o.images)
        marked, found = with_marks(base, o.marked_share, o.image_size, seed=seed)
        self._fresh.claim([data for data, was in zip(marked, base, strict=True) if data is not was])
        await self._stage("marked", repeat, f"{label}: {o.images} events, {found} carrying marks",
                          lambda: self._pipeline(marked), extra={"marked": found})  # fmt: skip
        copies = int(o.images * o.copy_share)
        stream = mixed_stream(
            self._fresh.take(o.images), o.marked_share, o.copy_share, o.image_size,
            seed=self._fresh.seed(10_000 + copies),
        )  # fmt: skip
        await self._stage(
            "mixed", repeat,
            f"{label}: mixed, {stream.marked} marked and {stream.copies} near-duplicates of {len(stream.entries)} "
            "known images",
            lambda: self._pipeline(stream.uploads, bank=stream.entries),
            extra={"marked": stream.marked, "copies": stream.copies, "bank_entries": len(stream.entries)},
        )  # fmt: skip
        return list(ceiling.detections)

    async def _cached(self, repeat: int, label: str) -> None:
        o = self._options
        reposts = int(o.images * o.repost_share)
        originals = self._fresh.take(o.images - reposts)
        stream = originals + originals[:reposts]  # the one stream that repeats images: the verdict cache's
        cached = self._settings.model_copy(
            update={"worker": self._settings.worker.model_copy(update={"cache_entries": 10000})}
        )
        await self._stage("cached", repeat, f"{label}: {len(stream)} events, {reposts} of them exact reposts",
                          lambda: pipeline(cached, self._probe, stream, max_in_flight=o.max_in_flight),
                          extra={"reposts": reposts})  # fmt: skip

    async def _pipeline(self, images: list[bytes], **kwargs: Any) -> RunResult:
        kwargs.setdefault("max_in_flight", self._options.max_in_flight)
        return await pipeline(self._settings, self._probe, images, **kwargs)

    async def _naive_run(self, images: list[bytes], replays: list[Replay]) -> RunResult:
        assert self._naive is not None
        d = self._settings.detector
        return naive_transformers(
            self._naive, images, replays, crops=d.crops, max_regions=d.max_regions,
            max_pixels=d.max_pixels, min_pixels=d.min_pixels,
        )  # fmt: skip

    async def _stage(
        self, stage: str, repeat: int, what: str, run: Callable[[], Any], extra: dict[str, Any] | None = None
    ) -> RunResult:
        quiet, load = self._quiet.wait()
        if not quiet:
            self._say(f"WARNING: other processes keep {load} cores busy; measuring anyway, flagged machine_busy")
        self._say(what)
        record = self._probe.stage()
        try:
            result: RunResult = await run()
        finally:
            self._probe.end_stage()
        cache = record.to_json() if record.requests else {}
        self._runs.append(StageRun(stage, repeat, result, quiet, load, cache, dict(extra or {})))
        self._say(f"  {result.ips:.2f} images/s" + (f", {record.hits} Query 1 cache hits" if record.requests else ""))
        return result


def work_per_image(detections: list[Detection]) -> dict[str, Any]:
    """What the engine did per image on cold stages: regions, crops, tokens, and Query 2's prefix reuse."""
    mean = lambda values: statistics.fmean(values) if values else 0.0  # noqa: E731
    examined = [d for d in detections if d.examined and d.usage.examine_cached_tokens is not None]
    reuse = [d.usage.examine_cached_tokens / d.usage.locate_prompt_tokens for d in examined]  # type: ignore[operator]
    return {
        "regions_per_image": round(mean([len(d.regions) for d in detections]), 3),
        "crops_per_image": round(mean([d.crops for d in detections]), 3),
        "examined_share": round(mean([1.0 if d.examined else 0.0 for d in detections]), 3),
        "locate_tokens": round(mean([d.usage.locate_completion_tokens for d in detections])),
        "examine_tokens": round(mean([d.usage.examine_completion_tokens for d in detections if d.examined])),
        "locate_prompt_tokens": round(mean([d.usage.locate_prompt_tokens for d in detections])),
        "examine_prompt_tokens": round(mean([d.usage.examine_prompt_tokens for d in detections if d.examined])),
        "examine_cached_tokens": round(mean([d.usage.examine_cached_tokens or 0 for d in detections if d.examined])),
        "prefix_reuse": round(mean(reuse), 4),
    }

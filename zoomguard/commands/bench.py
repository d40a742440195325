"""`zoomguard bench`: every measure side by side in one run, on the same machine, model and images."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoomguard.app.config import Settings, load_settings
from zoomguard.bench.evidence import measure_evidence_cost
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.prepost import measure_prepost
from zoomguard.bench.report import machine, markdown, write
from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.detector.tiny_model import TINY_DETECTOR_SETTINGS, TINY_ENGINE_SETTINGS
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples

if TYPE_CHECKING:
    from zoomguard.bench.runs import RunResult

# Fast group joins on the embedded broker (see environment notes); a real cluster keeps its own values.
_BENCH_KAFKA = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small counts: under 5 minutes on the tiny model on CPU")
    parser.add_argument("--out", type=Path, default=Path("bench-out/report.json"), help="JSON report (+ .md, .png)")
    parser.add_argument("--model", help="checkpoint or hub id (default: the tiny offline model, built if needed)")
    parser.add_argument("--server", action="append", metavar="URL", help="measure vLLM servers instead (repeatable)")
    parser.add_argument("--images", type=int, help="images for the ceiling, pipeline and latency runs")
    parser.add_argument("--image-size", default="320x240", help="generated image size WxH (default 320x240)")
    parser.add_argument("--max-in-flight", type=int, default=128, help="worker window (default 128, the worker's)")
    parser.add_argument("--load-format", help="vLLM load format; 'dummy' = random weights from a real config")
    parser.add_argument("--dtype", help="vLLM dtype (default: float32 for the tiny model, auto otherwise)")
    parser.add_argument("--max-pixels", type=int, help="detector.max_pixels (default: 224*224 for the tiny model)")
    parser.add_argument(
        "--soak", type=int, metavar="N", help="only the soak: N never-repeated uploads, RSS of every process over time"
    )
    parser.add_argument(
        "--soak-cache-gb",
        type=float,
        action="append",
        metavar="GIB",
        help="engine.mm_processor_cache_gb for the soak, repeatable (one engine each, side by side; default: 0.5)",
    )
    parser.add_argument(
        "--soak-warmup", type=float, default=0.25, help="share of the soak's uploads before growth is measured"
    )


def run(args: argparse.Namespace) -> int:
    """Flags go to `BenchOptions`, not to the settings: each run builds the settings it measures."""
    from zoomguard.telemetry.logs import configure_logging

    quiet_engine_logs()
    configure_logging("WARNING")
    if args.soak:
        cache_gib = args.soak_cache_gb or [0.5]
        asyncio.run(run_soak(options_from_args(args), args.out, args.soak, cache_gib, args.soak_warmup))
        return 0
    asyncio.run(run_bench(options_from_args(args), args.out))
    return 0


COMMAND = Command("bench", "throughput, latency, prefix reuse and memory, side by side in one run", add_arguments, run)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_settings(options: BenchOptions, bootstrap: str) -> Settings:
    engine: dict[str, Any] = {"model": options.model, **options.engine_overrides}
    if options.server_urls:
        engine.update({"mode": "server", "server_urls": list(options.server_urls)})
    return load_settings(
        overrides={
            "engine": engine,
            "detector": options.detector_overrides,
            "kafka": {"bootstrap_servers": bootstrap, **_BENCH_KAFKA},
            "worker": {"cache_entries": 0},  # measure detection, not the cache (the cache run turns it on)
        }
    )


async def run_bench(options: BenchOptions, out: Path) -> dict[str, Any]:
    from zoomguard.bench.naive import Replay, naive_transformers
    from zoomguard.detector.factory import build_engine

    images = [s.data for s in make_samples(options.images, seed=1000, size=options.image_size)]
    with EmbeddedBroker() as broker:
        settings = bench_settings(options, broker.bootstrap)
        engine = build_engine(settings.engine, settings.detector)
        _say(f"starting the engine ({settings.engine.mode}, {options.model})")
        await engine.start()
        try:
            results = await _measure(options, settings, engine, images)
        finally:
            await engine.close()
    _say("naive baseline: transformers generate, one image at a time")
    count = min(options.naive_images, len(images))
    naive = naive_transformers(
        options.model,
        images[:count],
        [Replay.of(d) for d in results["ceiling"].detections[:count]],
        crops=settings.detector.crops,
        max_regions=settings.detector.max_regions,
        max_pixels=settings.detector.max_pixels,
        min_pixels=settings.detector.min_pixels,
    )
    _say("pre- and post-processing per image")
    prepost = measure_prepost(options.prepost_megapixels, options.prepost_repeats)
    _say("the evidence stage's cost per upload, unmarked and marked")
    evidence = measure_evidence_cost(options.evidence_reads, options.evidence_rounds, options.evidence_megapixels)
    report = _report(options, settings, results, naive, prepost, evidence)
    paths = write(report, out)
    print(markdown(report))
    _say("wrote " + ", ".join(str(p) for p in paths))
    return report


async def run_soak(
    options: BenchOptions, out: Path, uploads: int, cache_gib: list[float], warmup_share: float = 0.25
) -> dict[str, Any]:
    """The soak alone, once per processed-image cache size (a fresh engine each), side by side in one report."""
    from zoomguard.bench.soak import soak
    from zoomguard.detector.factory import build_engine

    runs: dict[str, Any] = {}
    with EmbeddedBroker() as broker:
        for gib in cache_gib:
            overrides = {**options.engine_overrides, "mm_processor_cache_gb": gib}
            settings = bench_settings(replace(options, engine_overrides=overrides), broker.bootstrap)
            engine = build_engine(settings.engine, settings.detector)
            _say(f"soak with mm_processor_cache_gb={gib}: starting the engine")
            await engine.start()
            try:

                def progress(handled: int, total: int, rss: dict[str, float]) -> None:
                    _say(f"soak {handled}/{total}: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))

                result = await soak(
                    settings,
                    engine,
                    uploads,
                    size=options.image_size,
                    max_in_flight=options.max_in_flight,
                    progress=progress,
                    every_s=5.0,
                    warmup_share=warmup_share,
                )
            finally:
                await engine.close()
            runs[str(gib)] = result.to_json()
            _say(f"soak with {gib} GiB: growth after warm-up {runs[str(gib)]['growth_after_warmup']}")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": options.model,
        "soak": {"uploads": uploads, "image_size": list(options.image_size), "by_cache_gib": runs},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(soak_markdown(report))
    _say(f"wrote {out}")
    return report


def soak_markdown(report: dict[str, Any]) -> str:
    rows = [
        "| mm_processor_cache_gb | process | RSS after warm-up (MB) | RSS at the end (MB) | growth |",
        "|---|---|---|---|---|",
    ]
    for gib, run in report["soak"]["by_cache_gib"].items():
        uploads = run["uploads"]
        after = [s for s in run["samples"] if s["handled"] >= run["warmup_share"] * uploads]
        if len(after) < 2:
            continue
        first, last = after[0]["rss_mb"], after[-1]["rss_mb"]
        for role, growth in run["growth_after_warmup"].items():
            start = _worker_total(first) if role == "total" else first.get(role, 0.0)
            end = _worker_total(last) if role == "total" else last.get(role, 0.0)
            rows.append(f"| {gib} | {role} | {start:.0f} | {end:.0f} | {growth:.3f} |")
    return "\n".join(rows)


def _worker_total(rss_mb: dict[str, float]) -> float:
    from zoomguard.bench.soak import NOT_THE_WORKER

    return sum(mb for role, mb in rss_mb.items() if role not in NOT_THE_WORKER)


async def _measure(options: BenchOptions, settings: Settings, engine: Any, images: list[bytes]) -> dict[str, Any]:
    from zoomguard.bench.evidence import with_marks
    from zoomguard.bench.runs import engine_ceiling, pipeline

    _say("warm-up (grammar compilation, first batches)")
    await engine_ceiling(settings, engine, images[: min(8, len(images))])
    _say(f"engine ceiling: {len(images)} images straight to the engine")
    ceiling = await engine_ceiling(settings, engine, images)
    _say(f"pipeline: {len(images)} events through the broker and worker")
    piped = await pipeline(settings, engine, images, max_in_flight=options.max_in_flight)
    _say(f"sequential: {options.sequential_images} events, one in flight")
    sequential = await pipeline(settings, engine, images[: options.sequential_images], max_in_flight=1)
    _say(f"latency: {len(images)} events paced at 70% of the pipeline's throughput")
    paced = await pipeline(settings, engine, images, max_in_flight=options.max_in_flight, pace_ips=0.7 * piped.ips)
    repost_count = int(len(images) * options.repost_share)
    reposted = images[: len(images) - repost_count] + images[:repost_count]
    cached_settings = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"cache_entries": 10000})}
    )
    _say(f"cache: {len(images)} events, {repost_count} of them reposts")
    cached = await pipeline(cached_settings, engine, reposted, max_in_flight=options.max_in_flight)
    marked_stream, marked_count = with_marks(images, options.marked_share, options.image_size)
    _say(f"evidence: {len(images)} events, {marked_count} of them carrying marks the readers find")
    marked = await pipeline(settings, engine, marked_stream, max_in_flight=options.max_in_flight)
    backlog = options.memory_backlog
    memory_images = [images[i % len(images)] for i in range(backlog * 10)]
    _say(f"memory: backlog of {backlog}, then {backlog * 10}")
    small = await pipeline(settings, engine, memory_images[:backlog], max_in_flight=options.max_in_flight)
    large = await pipeline(settings, engine, memory_images, max_in_flight=options.max_in_flight)
    examined = [d for d in ceiling.detections if d.examined and d.usage.examine_cached_tokens is not None]
    prefix = [d.usage.examine_cached_tokens / d.usage.locate_prompt_tokens for d in examined]  # type: ignore[operator]
    mean = lambda values: sum(values) / len(values) if values else 0.0  # noqa: E731
    return {
        "ceiling": ceiling,
        "pipeline": piped,
        "sequential": sequential,
        "paced": paced,
        "cached": cached,
        "marked": marked,
        "marked_uploads": marked_count,
        "memory_small": small,
        "memory_large": large,
        "prefix_reuse": mean(prefix),
        "locate_tokens": round(mean([d.usage.locate_completion_tokens for d in ceiling.detections])),
        "examine_tokens": round(mean([d.usage.examine_completion_tokens for d in ceiling.detections if d.examined])),
        "crops": round(mean([d.crops for d in ceiling.detections]), 2),
        "examined": round(mean([1.0 if d.examined else 0.0 for d in ceiling.detections]), 3),
    }


def _report(
    options: BenchOptions,
    settings: Settings,
    r: dict[str, Any],
    naive: RunResult,
    prepost: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
) -> dict[str, Any]:
    from zoomguard.bench.runs import percentiles

    ceiling, piped, sequential = r["ceiling"].ips, r["pipeline"].ips, r["sequential"].ips
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine_ceiling_ips": round(ceiling, 3),
        "pipeline_ips": round(piped, 3),
        "sequential_ips": round(sequential, 3),
        "naive_ips": round(naive.ips, 3),
        "pipeline_over_ceiling": round(piped / ceiling, 3) if ceiling else 0.0,
        "pipeline_over_naive": round(piped / naive.ips, 2) if naive.ips else 0.0,
        "pipeline_over_sequential": round(piped / sequential, 2) if sequential else 0.0,
        "ceiling_cores_busy": round(r["ceiling"].cores_busy, 2),
        "prefix_reuse": round(r["prefix_reuse"], 4),
        "memory_growth": round(r["memory_large"].peak_rss_mb / r["memory_small"].peak_rss_mb, 3),
        "memory_rss_mb": {
            "small": round(r["memory_small"].peak_rss_mb, 1),
            "large": round(r["memory_large"].peak_rss_mb, 1),
        },
        "latency_ms": percentiles(r["paced"].latencies_ms),
        "cache_ips": round(r["cached"].ips, 3),
        "cache_speedup": round(r["cached"].ips / piped, 2) if piped else 0.0,
        "marked_ips": round(r["marked"].ips, 3),
        "marked_speedup": round(r["marked"].ips / piped, 2) if piped else 0.0,
        "marked_uploads": r["marked_uploads"],
        "evidence_cost": evidence,
        "tokens_per_image": {"locate": r["locate_tokens"], "examine": r["examine_tokens"]},
        "crops_per_image": r["crops"],
        "examined_share": r["examined"],
        "prepost": prepost,
        "machine": machine(),
        "model": options.model,
        "settings": {
            "engine_mode": settings.engine.mode,
            "images": options.images,
            "image_size": list(options.image_size),
            "max_in_flight": options.max_in_flight,
            "max_pixels": settings.detector.max_pixels,
            "max_crops": settings.detector.crops.max_crops,
            "repost_share": options.repost_share,
            "marked_share": options.marked_share,
            "memory_backlog": options.memory_backlog,
            "naive_images": options.naive_images,
            "sequential_images": options.sequential_images,
        },
    }


# The tiny model's CPU settings, with at least one region proposed and at most two crops: the shape of the runs
# recorded in benchmarks/RESULTS.md. The random weights mostly propose degenerate boxes (x1 >= x2), which are
# dropped, so Query 2 then examines the full image alone; the report gives the crops per image it saw.
_TINY_ENGINE = {**TINY_ENGINE_SETTINGS, "max_num_seqs": 128}
_TINY_DETECTOR = {
    **TINY_DETECTOR_SETTINGS,
    "min_regions": 1,
    "crops": {"max_crops": 2, "zoom_target_side": 224},
}


def options_from_args(args: Any) -> BenchOptions:
    from zoomguard.detector.tiny_model import build_tiny_model

    tiny = args.model is None
    model = args.model or str(args.out.parent / "tiny-model")
    if tiny and not (Path(model) / "config.json").is_file():
        _say(f"building the tiny offline model in {model}")
        build_tiny_model(model)
    engine: dict[str, Any] = dict(_TINY_ENGINE) if tiny else {}
    detector: dict[str, Any] = dict(_TINY_DETECTOR) if tiny else {}
    if args.load_format:
        engine["load_format"] = args.load_format
    if args.dtype:
        engine["dtype"] = args.dtype
    if args.max_pixels:
        detector["max_pixels"] = args.max_pixels
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    changes: dict[str, Any] = {
        "image_size": (width, height),
        "max_in_flight": args.max_in_flight,
        "engine_overrides": engine,
        "detector_overrides": detector,
        "server_urls": tuple(args.server or ()),
    }
    if args.images:
        changes["images"] = args.images
    return BenchOptions.quick(model, **changes) if args.quick else BenchOptions.full(model, **changes)

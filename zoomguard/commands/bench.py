"""`zoomguard bench`: every measure side by side in one run, on the same machine, model and images."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomguard.app.config import Settings, load_settings
from zoomguard.bench.evidence import measure_evidence_cost
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.prepost import measure_prepost
from zoomguard.bench.report import build_report, machine, markdown, write
from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.tiny_model import TINY_DETECTOR_SETTINGS, TINY_ENGINE_SETTINGS
from zoomguard.errors import ConfigError
from zoomguard.kafka.embedded_broker import EmbeddedBroker

# Fast group joins on the embedded broker (see environment notes); a real cluster keeps its own values.
_BENCH_KAFKA = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="small counts (about 20 minutes on the tiny model on 2 CPU cores)"
    )
    parser.add_argument("--repeats", type=int, help="runs of every stage, interleaved (default 3)")
    parser.add_argument(
        "--regions-per-image",
        default="7b",
        help="Query 1's regions per image: 7b (1.95, ZoomIn-7B's), 32b (3.58), a number, or 'model' for whatever "
        "the model proposes (default 7b; see zoomguard/bench/workload.py)",
    )
    parser.add_argument(
        "--paced-load", type=float, default=0.7, help="the latency run's rate, a share of the pipeline's (default 0.7)"
    )
    parser.add_argument(
        "--known-entries", type=int, help="bank size of the known-content index stage (default 1,000,000; 0: skip)"
    )
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
    from zoomguard.bench.limit import arithmetic_of_run
    from zoomguard.bench.naive import NaiveModel, naive_device
    from zoomguard.bench.probe import CacheProbe
    from zoomguard.bench.quiet import QuietCheck
    from zoomguard.bench.stages import StageRunner
    from zoomguard.bench.workload import WorkloadEngine
    from zoomguard.detector.factory import build_engine
    from zoomguard.detector.families import resolve_family

    with EmbeddedBroker() as broker:
        settings = bench_settings(options, broker.bootstrap)
        engine = build_engine(settings.engine, settings.detector)
        _say(f"starting the engine ({settings.engine.mode}, {options.model})")
        await engine.start()
        try:
            served: Any = engine
            if options.regions_per_image is not None:
                family = resolve_family(settings.engine.model, settings.detector.model_family)
                served = WorkloadEngine(engine, options.regions_per_image, family)
            naive = None
            if not options.server_urls:  # with servers the model runs elsewhere: no local baseline to compare
                device, dtype = naive_device(settings.engine.dtype)
                naive = NaiveModel(options.model, device=device, dtype=dtype)
            quiet = QuietCheck(options.busy_threshold_cores, options.busy_wait_s)
            measured = await StageRunner(options, settings, CacheProbe(served), naive, quiet, _say).run()
        finally:
            await engine.close()
    _say("pre- and post-processing per image")
    prepost = measure_prepost(options.prepost_megapixels, options.prepost_repeats)
    _say("the evidence stage's cost per upload, unmarked and marked")
    evidence = measure_evidence_cost(options.evidence_reads, options.evidence_rounds, options.evidence_megapixels)
    known = None
    if options.known_entries:
        from zoomguard.bench.known import measure_known_index

        _say(f"the known-content index: lookups in a bank of {options.known_entries:,}")
        known = measure_known_index(options.known_entries)
    arithmetic = arithmetic_of_run(options, settings, measured, _say)
    report = build_report(options, settings, measured, prepost, evidence, known, arithmetic)
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


# The tiny model's CPU settings. Its random weights propose degenerate boxes ([5, 5, 5, 5]), so the paper's
# workload comes from the bench's grid grammar (--regions-per-image); up to 4 regions and crops, for 32b.
_TINY_ENGINE = {**TINY_ENGINE_SETTINGS, "max_num_seqs": 128}
_TINY_DETECTOR = {
    **TINY_DETECTOR_SETTINGS,
    "max_regions": 4,
    "crops": {"max_crops": 4, "zoom_target_side": 224},
}


def regions_per_image(value: str) -> float | None:
    """--regions-per-image: a paper's model (7b, 32b), a number, or 'model' (None: the model's own boxes)."""
    from zoomguard.bench.workload import PAPER_REGIONS

    lowered = value.strip().lower()
    if lowered == "model":
        return None
    if lowered in PAPER_REGIONS:
        return PAPER_REGIONS[lowered]
    try:
        number = float(lowered)
    except ValueError:
        raise ConfigError(f"--regions-per-image must be 7b, 32b, model or a number, not {value!r}") from None
    if not 0 <= number <= 32:
        raise ConfigError(f"--regions-per-image must be between 0 and 32, not {value!r}")
    return number


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
    if args.repeats:
        changes["repeats"] = args.repeats
    if not 0 < args.paced_load <= 1:
        raise ConfigError(f"--paced-load must be in (0, 1], not {args.paced_load}")
    changes["paced_load"] = args.paced_load
    if args.known_entries is not None:
        changes["known_entries"] = args.known_entries
    regions = regions_per_image(args.regions_per_image)
    changes["regions_per_image"] = regions
    if regions is not None:
        needed, defaults = math.ceil(regions), DetectorSettings()  # room for the workload's regions and crops
        detector["max_regions"] = max(needed, int(detector.get("max_regions", defaults.max_regions)))
        crops = dict(detector.get("crops", {}))
        crops["max_crops"] = max(needed, int(crops.get("max_crops", defaults.crops.max_crops)))
        detector["crops"] = crops
    return BenchOptions.quick(model, **changes) if args.quick else BenchOptions.full(model, **changes)

"""The benchmark report: JSON for scripts, a Markdown table for people, PNG charts for the README."""

from __future__ import annotations

import json
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from zoomguard.app.config import Settings
from zoomguard.bench.evidence import cost_markdown
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.runs import percentiles
from zoomguard.bench.spread import above_bound, ratio, summary
from zoomguard.bench.stages import STAGES, Measured, work_per_image

TARGETS = {
    "pipeline_over_ceiling": (">=", 0.9),
    "pipeline_over_naive": (">=", 6.0),
    "prefix_reuse": (">=", 0.9),
    "memory_growth": ("<=", 1.1),
    "crops_off_workload": ("<=", 0.1),
}
# ratio key -> (numerator stage, denominator stage)
RATIOS = {
    "pipeline_over_ceiling": ("pipeline", "ceiling"),
    "pipeline_over_naive": ("pipeline", "naive"),
    "pipeline_over_sequential": ("pipeline", "sequential"),
    "cache_speedup": ("cached", "pipeline"),
    "marked_speedup": ("marked", "pipeline"),
    "mixed_speedup": ("mixed", "pipeline"),
}


def build_report(
    options: BenchOptions,
    settings: Settings,
    measured: Measured,
    prepost: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    known: dict[str, Any] | None = None,
    arithmetic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One JSON value from one run: per stage the repeats' median and spread, ratios of medians, the checks."""
    stages: dict[str, Any] = {}
    for stage in STAGES:
        runs = [run for run in measured.runs if run.stage == stage]
        if not runs:
            continue
        stages[stage] = {
            **summary([run.result.ips for run in runs]),
            "locate_cache_hits": [run.cache.get("locate_cache_hits") for run in runs],
            "decided_by": [run.result.decided_by for run in runs] if runs[0].result.decided_by else [],
            **({"extra": [run.extra for run in runs]} if runs[0].extra else {}),
        }
    ratios = {key: ratio(measured.ips(a), measured.ips(b)) for key, (a, b) in RATIOS.items() if measured.ips(b)}
    work = work_per_image(measured.detections)
    target = options.regions_per_image
    paced = [value for run in measured.runs if run.stage == "paced" for value in run.result.latencies_ms]
    error = above_bound(measured.ips("pipeline"), measured.ips("ceiling"))
    small, large = measured.memory_small, measured.memory_large
    median = lambda stage: stages.get(stage, {}).get("median", 0.0)  # noqa: E731
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": options.model,
        "stages": stages,
        "ratios": ratios,
        # the headline figures: medians over the repeats, and ratios of medians
        "engine_ceiling_ips": median("ceiling"),
        "pipeline_ips": median("pipeline"),
        "sequential_ips": median("sequential"),
        "naive_ips": median("naive"),
        "cache_ips": median("cached"),
        "marked_ips": median("marked"),
        "mixed_ips": median("mixed"),
        **{key: value["median_ratio"] for key, value in ratios.items()},
        "measurement_error": None
        if error is None
        else f"the pipeline's median is {error:.1%} above the ceiling's, more than the two stages' spread: "
        "the ceiling does not bound it, so this run's ratios are not to be trusted",
        "machine_busy": [
            {"stage": run.stage, "repeat": run.repeat, "other_cores": run.other_cores}
            for run in measured.runs
            if not run.quiet
        ],
        "cold_stages": all(not run.cache.get("locate_cache_hits") for run in measured.runs if run.stage != "cached"),
        "preamble_tokens": measured.preamble_tokens,
        "workload": {
            "regions_per_image_target": target,
            "means": "bench-only grid grammar for Query 1 (zoomguard/bench/workload.py)"
            if target is not None
            else "the model's own proposals",
            **{k: work[k] for k in ("regions_per_image", "crops_per_image", "examined_share")},
        },
        "crops_off_workload": round(abs(work["crops_per_image"] - target) / target, 3) if target else 0.0,
        "prefix_reuse": work["prefix_reuse"],
        "tokens_per_image": {
            "locate": work["locate_tokens"],
            "examine": work["examine_tokens"],
            "locate_prompt": work["locate_prompt_tokens"],
            "examine_prompt": work["examine_prompt_tokens"],
        },
        "crops_per_image": work["crops_per_image"],
        "examined_share": work["examined_share"],
        "latency_ms": percentiles(paced),
        "memory_growth": round(large.peak_rss_mb / small.peak_rss_mb, 3) if small and large else 0.0,
        "memory_rss_mb": {
            "small": round(small.peak_rss_mb, 1) if small else 0.0,
            "large": round(large.peak_rss_mb, 1) if large else 0.0,
        },
        "ceiling_cores_busy": round(
            statistics.median([r.result.cores_busy for r in measured.runs if r.stage == "ceiling"] or [0.0]), 2
        ),
        "naive": {
            "device": measured.naive_device,
            "dtype": settings.engine.dtype,
            "torch_threads": measured.naive_threads,
        }
        if measured.naive_device
        else {"skipped": "the engine runs on vLLM servers elsewhere; a local baseline would not be comparable"},
        "evidence_cost": evidence,
        "known_index": known,
        "arithmetic": arithmetic,
        "prepost": prepost,
        "settings": {
            "engine_mode": settings.engine.mode,
            "dtype": settings.engine.dtype,
            "repeats": options.repeats,
            "images": options.images,
            "image_size": list(options.image_size),
            "max_in_flight": options.max_in_flight,
            "max_pixels": settings.detector.max_pixels,
            "max_regions": settings.detector.max_regions,
            "max_crops": settings.detector.crops.max_crops,
            "regions_per_image": target,
            "repost_share": options.repost_share,
            "marked_share": options.marked_share,
            "copy_share": options.copy_share,
            "memory_backlog": options.memory_backlog,
            "naive_images": options.naive_images,
            "sequential_images": options.sequential_images,
            "paced_images": options.paced_images,
            "paced_load": options.paced_load,
            "busy_threshold_cores": options.busy_threshold_cores,
        },
    }
    return report


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def _target(report: dict[str, Any], key: str) -> str:
    return verdict(key, report[key])


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'MISSED'} ({op} {target})"


_STAGE_NAMES = {
    "ceiling": "ceiling: the detector on pre-decoded images",
    "naive": "naive: transformers generate, one image at a time",
    "pipeline": "pipeline: broker, worker, detector",
    "sequential": "sequential: one event in flight",
    "paced": "paced at {load}% of the pipeline (latency run)",
    "cached": "{reposts}% exact reposts (verdict cache)",
    "marked": "{marked}% marked uploads (evidence)",
    "mixed": "mixed: {marked}% marked, {copies}% near-duplicates of known images",
}
_RATIO_NAMES = {
    "pipeline_over_ceiling": "pipeline / ceiling",
    "pipeline_over_naive": "pipeline / naive",
    "pipeline_over_sequential": "pipeline / sequential",
    "cache_speedup": "reposts stream / pipeline",
    "marked_speedup": "marked stream / pipeline",
    "mixed_speedup": "mixed stream / pipeline",
}


def markdown(report: dict[str, Any]) -> str:
    r = report
    s = r["settings"]
    shares = {"reposts": int(s["repost_share"] * 100), "marked": int(s["marked_share"] * 100),
              "copies": int(s["copy_share"] * 100), "load": int(s["paced_load"] * 100)}  # fmt: skip
    lines = [f"{s['repeats']} repeats of every stage, interleaved; each on images no earlier stage sent.", ""]
    for warning in _warnings(r):
        lines += [f"**{warning}**", ""]
    lines += ["| stage | images/s (median) | min-max (spread) | Query 1 cache hits |", "|---|---|---|---|"]
    for stage, row in r["stages"].items():
        hits = (
            "-"
            if all(h is None for h in row["locate_cache_hits"])
            else ", ".join(str(h) for h in row["locate_cache_hits"])
        )
        lines.append(
            f"| {_STAGE_NAMES[stage].format(**shares)} | {row['median']:.2f} | {row['min']:.2f}-{row['max']:.2f} "
            f"({row['spread']:.0%}) | {hits} |"
        )
    lines += ["", "| ratio | of medians | range over repeats | target |", "|---|---|---|---|"]
    for key, value in r["ratios"].items():
        target = verdict(key, value["median_ratio"]) if key in TARGETS else ""
        lines.append(
            f"| {_RATIO_NAMES[key]} | {value['median_ratio']:.2f} | {value['min']:.2f}-{value['max']:.2f} | {target} |"
        )
    work = r["workload"]
    tokens = r["tokens_per_image"]
    rows = [
        ("prefix reuse (Query 2 cached / Query 1 prompt, cold stages)", f"{r['prefix_reuse']:.3f}",
         _target(r, "prefix_reuse")),
        ("memory growth (10x backlog RSS / 1x)", f"{r['memory_growth']:.3f}", _target(r, "memory_growth")),
        ("latency p50 / p95 / p99 (ms, paced runs)", "{p50} / {p95} / {p99}".format(**r["latency_ms"]), ""),
        ("regions / crops per image (workload: " + (f"{work['regions_per_image_target']:g}, {work['means']})"
         if work["regions_per_image_target"] is not None else "the model's own)"),
         f"{work['regions_per_image']:g} / {work['crops_per_image']:g}",
         _target(r, "crops_off_workload") if work["regions_per_image_target"] else ""),
        ("generated tokens per image, Query 1 / Query 2", f"{tokens['locate']} / {tokens['examine']}", ""),
        ("prompt tokens per image, Query 1 / Query 2", f"{tokens['locate_prompt']} / {tokens['examine_prompt']}", ""),
        ("CPU cores busy during the ceiling (all processes of the run)",
         f"{r['ceiling_cores_busy']:.2f} of {r['machine']['cpus']}", ""),
        ("naive baseline", _naive(r["naive"]), ""),
    ]  # fmt: skip
    lines += ["", "| measure | value | target |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    lines += [
        "",
        "Pre- and post-processing per image on one core (median ms):",
        "",
        "| format | MP | decode | JPEG draft decode | resize | crop+zoom | encode | total | images/s/core |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["prepost"]:
        draft = "-" if row["draft_decode_ms"] is None else row["draft_decode_ms"]
        lines.append(
            f"| {row['format']} | {row['megapixels']:g} | {row['decode_ms']} | {draft} | {row['resize_ms']} | "
            f"{row['crop_ms']} | {row['encode_ms']} | {row['total_ms']} | {row['images_per_s_per_core']} |"
        )
    lines += ["", "The evidence stage per upload (default settings; rounds: min-max of the per-round medians):", ""]
    lines.append(cost_markdown(report["evidence_cost"]))
    if report.get("known_index"):
        from zoomguard.bench.known import known_markdown

        lines += ["", "The known-content index (one lookup at a time, as a worker asks):", ""]
        lines.append(known_markdown(report["known_index"]))
    if report.get("arithmetic"):
        lines += ["", _arithmetic_line(report["arithmetic"])]
    return "\n".join(lines)


def _warnings(report: dict[str, Any]) -> list[str]:
    out = []
    if report.get("measurement_error"):
        out.append("Measurement error: " + report["measurement_error"])
    busy = report.get("machine_busy") or []
    if busy:
        worst = max(item["other_cores"] for item in busy)
        out.append(
            f"machine_busy: other processes used up to {worst:g} cores before {len(busy)} of the stages; "
            "the ratios of this run are not to be published"
        )
    if not report.get("cold_stages", True):
        out.append("Some stages found their images in the engine's cache: their figures are too fast")
    return out


def _naive(naive: dict[str, Any]) -> str:
    if "skipped" in naive:
        return "skipped: " + naive["skipped"]
    return f"{naive['device']}, {naive['dtype']}, {naive['torch_threads']} torch threads"


def _arithmetic_line(arithmetic: dict[str, Any]) -> str:
    return (
        f"Arithmetic limit: {arithmetic['flops_per_image'] / 1e9:.1f} GFLOP per image at a measured peak of "
        f"{arithmetic['peak_flops'] / 1e12:.2f} TFLOP/s ({arithmetic['device']}, {arithmetic['dtype']}) allows "
        f"{arithmetic['limit_ips']:.1f} images/s; the pipeline reaches {arithmetic['share_of_limit']:.1%} of it."
    )


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    table = out.with_suffix(".md")
    table.write_text(markdown(report) + "\n")
    chart = out.with_suffix(".png")
    bar_chart(
        chart,
        f"images/s, median of {report['settings']['repeats']} repeats in one run, fresh images per stage",
        [
            ("naive", report["naive_ips"]),
            ("sequential", report["sequential_ips"]),
            ("pipeline", report["pipeline_ips"]),
            ("ceiling", report["engine_ceiling_ips"]),
            ("mixed", report["mixed_ips"]),
        ],
    )
    return [out, table, chart]


def bar_chart(path: Path, title: str, bars: list[tuple[str, float]], size: tuple[int, int] = (640, 360)) -> None:
    """A plain bar chart with Pillow (no plotting dependency for one picture)."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.text((16, 10), title, fill="black", font=font)
    top = max(value for _, value in bars) or 1.0
    slot = (width - 40) / len(bars)
    base = height - 40
    for index, (label, value) in enumerate(bars):
        x0 = 20 + index * slot + slot * 0.15
        x1 = x0 + slot * 0.7
        y = base - (base - 50) * value / top
        draw.rectangle((x0, y, x1, base), fill=(60, 110, 200))
        draw.text((x0, base + 6), label, fill="black", font=font)
        draw.text((x0, y - 18), f"{value:.2f}", fill="black", font=font)
    image.save(path)

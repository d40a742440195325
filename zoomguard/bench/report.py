"""The benchmark report: JSON for scripts, a Markdown table for people, PNG charts for the README."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from zoomguard.bench.evidence import cost_markdown

TARGETS = {
    "pipeline_over_ceiling": (">=", 0.9),
    "pipeline_over_naive": (">=", 6.0),
    "prefix_reuse": (">=", 0.9),
    "memory_growth": ("<=", 1.1),
}


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


def markdown(report: dict[str, Any]) -> str:
    r = report
    reposts = int(r["settings"]["repost_share"] * 100)
    rows = [
        ("engine ceiling (images/s)", f"{r['engine_ceiling_ips']:.2f}", ""),
        (
            "CPU cores busy during the ceiling (this machine, all processes of the run)",
            f"{r['ceiling_cores_busy']:.2f} of {r['machine']['cpus']}",
            "",
        ),
        ("pipeline (images/s)", f"{r['pipeline_ips']:.2f}", ""),
        ("sequential, 1 in flight (images/s)", f"{r['sequential_ips']:.2f}", ""),
        ("naive transformers generate (images/s)", f"{r['naive_ips']:.2f}", ""),
        ("pipeline / ceiling", f"{r['pipeline_over_ceiling']:.2f}", _target(r, "pipeline_over_ceiling")),
        ("pipeline / naive", f"{r['pipeline_over_naive']:.1f}x", _target(r, "pipeline_over_naive")),
        ("pipeline / sequential", f"{r['pipeline_over_sequential']:.1f}x", ""),
        ("prefix reuse (Query 2 cached / Query 1 prompt)", f"{r['prefix_reuse']:.3f}", _target(r, "prefix_reuse")),
        ("memory growth (10x backlog RSS / 1x)", f"{r['memory_growth']:.3f}", _target(r, "memory_growth")),
        ("latency p50 / p95 / p99 (ms, paced)", "{p50} / {p95} / {p99}".format(**r["latency_ms"]), ""),
        (f"with {reposts}% reposts (images/s)", f"{r['cache_ips']:.2f}", f"{r['cache_speedup']:.2f}x the pipeline"),
        (
            f"with {r['marked_uploads']} of {r['settings']['images']} uploads carrying marks (images/s)",
            f"{r['marked_ips']:.2f}",
            f"{r['marked_speedup']:.2f}x the pipeline",
        ),
        (
            "work per image: generated tokens (Query 1 / 2), crops, share examined",
            f"{r['tokens_per_image']['locate']} / {r['tokens_per_image']['examine']}, {r['crops_per_image']:g}, "
            f"{r['examined_share']:g}",
            "",
        ),
    ]
    lines = ["| measure | value | target |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
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
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    table = out.with_suffix(".md")
    table.write_text(markdown(report) + "\n")
    chart = out.with_suffix(".png")
    bar_chart(
        chart,
        "images/s, one run, same machine, model and images",
        [
            ("naive", report["naive_ips"]),
            ("sequential", report["sequential_ips"]),
            ("pipeline", report["pipeline_ips"]),
            ("ceiling", report["engine_ceiling_ips"]),
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

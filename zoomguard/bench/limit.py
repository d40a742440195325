"""The run's arithmetic limit: the work the ceiling measured per image, priced at this device's matmul peak."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoomguard.app.config import Settings
from zoomguard.bench.arithmetic import QueryCounts, arithmetic_figures, image_patches, measure_peak_flops, model_shape
from zoomguard.bench.naive import naive_device
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.stages import Measured, work_per_image


def arithmetic_of_run(
    options: BenchOptions, settings: Settings, measured: Measured, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """What this device's matmul peak allows for the work the ceiling measured per image (the model's config must
    be local: with servers, pass the checkpoint directory as --model)."""
    config = Path(options.model) / "config.json"
    if not config.is_file() or not measured.detections:
        return None
    detections = measured.detections
    work = work_per_image(detections)  # the same per-image means the report gives
    mean = lambda values: statistics.fmean(values) if values else 0.0  # noqa: E731
    queries = [
        QueryCounts(work["locate_prompt_tokens"], measured.preamble_tokens, work["locate_tokens"]),
        QueryCounts(work["examine_prompt_tokens"], work["examine_cached_tokens"], work["examine_tokens"]),
    ]
    d = settings.detector
    width, height = options.image_size
    # Query 1 encodes the full image; Query 2 finds it in the prefix cache and encodes its crops (zoomed to about
    # zoom_target_side on the longer side: counted as squares of that side, an upper bound)
    side = d.crops.zoom_target_side
    patches = image_patches(width, height, min_pixels=d.min_pixels, max_pixels=d.max_pixels) + mean(
        [x.crops for x in detections]
    ) * image_patches(side, side, min_pixels=d.min_pixels, max_pixels=d.max_pixels)
    model_config = json.loads(config.read_text())
    device, dtype = naive_device(settings.engine.dtype)
    if dtype == "auto":
        dtype = str(model_config.get("torch_dtype", "bfloat16"))
    say(f"the matmul peak of this {device} in {dtype}")
    peak = measure_peak_flops(device, dtype)
    return arithmetic_figures(
        model_shape(model_config), queries, patches, peak_flops=peak, device=device, dtype=dtype,
        measured_ips=statistics.median(measured.ips("pipeline")) if measured.ips("pipeline") else None,
    )  # fmt: skip

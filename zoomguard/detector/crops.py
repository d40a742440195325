"""Which parts of the image Query 2 gets to see, and at what zoom.

The paper leaves crop parameters open; ours: drop proposals over half the image (the paper dropped such
boxes from its data), merge near-duplicates, pad for context, grow tiny regions to a minimum size,
cap the count, and upscale small regions so the model sees their detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from zoomguard.detector.geometry import Box, merge_with_sources


def _doc(default: float, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class CropSettings:
    max_crops: int = _doc(4, "crops sent to Query 2 at most (each costs image tokens)")
    pad_fraction: float = _doc(0.15, "context added on each side, as a fraction of the region's side")
    min_pad_px: int = _doc(8, "context added on each side at least (pixels)")
    min_crop_side: int = _doc(64, "smaller regions are grown around their centre to this side (pixels)")
    max_area_fraction: float = _doc(0.5, "regions covering more of the image are not cropped (the paper's rule)")
    merge_iou: float = _doc(0.5, "regions overlapping at least this IoU are merged into one crop")
    zoom_target_side: int = _doc(448, "a crop's longer side is scaled towards this (zoom in, or down)")
    max_zoom: float = _doc(4.0, "upscaling never exceeds this factor")

    def __post_init__(self) -> None:
        checks = [
            (self.max_crops >= 0, "max_crops must be >= 0"),
            (self.pad_fraction >= 0, "pad_fraction must be >= 0"),
            (self.min_pad_px >= 0, "min_pad_px must be >= 0"),
            (self.min_crop_side >= 1, "min_crop_side must be >= 1"),
            (0 < self.max_area_fraction <= 1, "max_area_fraction must be in (0, 1]"),
            (0 < self.merge_iou <= 1, "merge_iou must be in (0, 1]"),
            (self.zoom_target_side >= 28, "zoom_target_side must be >= 28"),
            (self.max_zoom >= 1, "max_zoom must be >= 1"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid crop settings: " + "; ".join(problems))


@dataclass(frozen=True)
class CropPlan:
    region_index: int  # index into the input boxes of the (first) proposal this crop came from
    region: Box  # the proposal after merging, original pixels
    crop: Box  # the padded / grown area actually cut: integer-valued, inside the image
    output_size: tuple[int, int]  # (width, height) after zoom


def plan_crops(boxes: Sequence[Box], width: int, height: int, settings: CropSettings) -> list[CropPlan]:
    """Pure planning: no pixels touched, so it is cheap to test and to reason about."""
    if settings.max_crops == 0 or width <= 0 or height <= 0:
        return []
    limit = settings.max_area_fraction * width * height
    candidates = [(i, box) for i, box in enumerate(boxes) if box.area <= limit and box.area > 0]
    merged, sources = merge_with_sources([box for _, box in candidates], settings.merge_iou)
    plans: list[CropPlan] = []
    for box, source in zip(merged, sources, strict=True):
        if len(plans) >= settings.max_crops:
            break
        crop = _grow(_pad(box, settings), width, height, settings.min_crop_side)
        plans.append(CropPlan(candidates[source][0], box, crop, _zoomed_size(crop, settings)))
    return plans


def cut_crops(image: Image.Image, plans: Sequence[CropPlan]) -> list[Image.Image]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return [rgb.crop(plan.crop.rounded()).resize(plan.output_size, Image.Resampling.BICUBIC) for plan in plans]


def _pad(box: Box, settings: CropSettings) -> Box:
    px = max(settings.pad_fraction * box.width, settings.min_pad_px)
    py = max(settings.pad_fraction * box.height, settings.min_pad_px)
    return Box(box.x1 - px, box.y1 - py, box.x2 + px, box.y2 + py)


def _grow(box: Box, width: int, height: int, min_side: int) -> Box:
    """At least `min_side` per side (never beyond the image), shifted inside rather than shrunk."""
    x1, x2 = _span(box.x1, box.x2, width, min_side)
    y1, y2 = _span(box.y1, box.y2, height, min_side)
    return Box(x1, y1, x2, y2)


def _span(lo: float, hi: float, extent: int, min_side: int) -> tuple[int, int]:
    side = min(extent, max(min_side, round(hi - lo)))
    center = (lo + hi) / 2.0
    start = round(center - side / 2.0)
    start = min(max(start, 0), extent - side)
    return start, start + side


def _zoomed_size(crop: Box, settings: CropSettings) -> tuple[int, int]:
    longer = max(crop.width, crop.height)
    scale = min(settings.max_zoom, settings.zoom_target_side / longer)
    return (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))

"""Which parts of the image Query 2 gets to see, and at what zoom.

The paper leaves crop parameters open; ours: drop proposals over half the image (the paper dropped such
boxes from its data), merge near-duplicates, pad for context, grow tiny regions to a minimum size,
cap the count, and upscale small regions so the model sees their detail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from zoomguard.detector.geometry import Box, merge_with_sources
from zoomguard.detector.settings import CropSettings


@dataclass(frozen=True)
class CropPlan:
    """One crop to cut: where it came from, what is cut, and the size it is zoomed to."""

    region_index: int  # index into the input boxes of the (first) proposal this crop came from
    region: Box  # the proposal after merging, original pixels
    crop: Box  # the padded / grown area actually cut: integer-valued, inside the image
    output_size: tuple[int, int]  # (width, height) after zoom


def plan_crops(boxes: Sequence[Box], width: int, height: int, settings: CropSettings) -> list[CropPlan]:
    """Pure planning: no pixels touched, so it is cheap to test and to reason about."""
    if settings.max_crops == 0 or width <= 0 or height <= 0:
        return []
    candidates = _usable(boxes, width, height, settings.max_area_fraction)
    merged, sources = merge_with_sources([box for _, box in candidates], settings.merge_iou)
    plans: list[CropPlan] = []
    for region, source in list(zip(merged, sources, strict=True))[: settings.max_crops]:
        crop = _crop_area(region, width, height, settings)
        plans.append(CropPlan(candidates[source][0], region, crop, _zoomed_size(crop, settings)))
    return plans


def cut_crops(image: Image.Image, plans: Sequence[CropPlan]) -> list[Image.Image]:
    """Cut from the original-resolution image, so zooming shows detail the downscaled view lost."""
    return [_cut_one(image, plan) for plan in plans]


def _cut_one(image: Image.Image, plan: CropPlan) -> Image.Image:
    crop = image.crop(plan.crop.rounded())
    if crop.mode != "RGB":  # convert the small crop, not the whole image; before resizing, for palettes
        crop = crop.convert("RGB")
    return crop.resize(plan.output_size, Image.Resampling.BICUBIC)


def _usable(boxes: Sequence[Box], width: int, height: int, max_area_fraction: float) -> list[tuple[int, Box]]:
    """The in-image part of each proposal worth zooming into, with its input index: a box over most of
    the image is no zoom, and one with no area in the image (or NaN corners) shows nothing."""
    max_area = max_area_fraction * width * height
    clamped = [(i, box.clamp(width, height)) for i, box in enumerate(boxes)]
    return [(i, box) for i, box in clamped if 0 < box.area <= max_area]


def _crop_area(region: Box, width: int, height: int, settings: CropSettings) -> Box:
    """Pad for context (there is none beyond the image edge), then cover with whole pixels, at least
    `min_crop_side` per side."""
    pad_x = max(settings.pad_fraction * region.width, settings.min_pad_px)
    pad_y = max(settings.pad_fraction * region.height, settings.min_pad_px)
    padded = Box(region.x1 - pad_x, region.y1 - pad_y, region.x2 + pad_x, region.y2 + pad_y)
    padded = padded.clamp(width, height)
    x1, x2 = _span(padded.x1, padded.x2, width, settings.min_crop_side)
    y1, y2 = _span(padded.y1, padded.y2, height, settings.min_crop_side)
    return Box(x1, y1, x2, y2)


def _span(lo: float, hi: float, extent: int, min_side: int) -> tuple[int, int]:
    """Whole pixels covering [lo, hi], grown around its centre to `min_side` (never past `extent`) and
    shifted inside [0, extent] rather than shrunk when growth hits an edge."""
    start, stop = math.floor(lo), math.ceil(hi)
    side = min(extent, max(min_side, stop - start))
    start -= (side - (stop - start)) // 2
    start = min(max(start, 0), extent - side)
    return start, start + side


def _zoomed_size(crop: Box, settings: CropSettings) -> tuple[int, int]:
    """Longer side towards `zoom_target_side`: small crops enlarged (up to `max_zoom`), big ones shrunk."""
    scale = min(settings.max_zoom, settings.zoom_target_side / max(crop.width, crop.height))
    return (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))

"""Boxes in pixel space: the pure arithmetic under box mapping, sanitising, merging and cropping.

Boxes from a model are untrusted: reversed corners, points outside the image, NaN and duplicates are
all expected, and all handled here before anything is cut or reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def from_corners(cls, a: float, b: float, c: float, d: float) -> Box:
        """Order the corners: models sometimes write (x2, y2, x1, y1)."""
        return cls(min(a, c), min(b, d), max(a, c), max(b, d))

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def clamp(self, width: float, height: float) -> Box:
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def scale(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def union(self, other: Box) -> Box:
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def intersection_area(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def normalised(self, width: float, height: float) -> tuple[float, float, float, float]:
        def frac(value: float, extent: float) -> float:
            return round(min(max(value / extent, 0.0), 1.0), 4)

        return (frac(self.x1, width), frac(self.y1, height), frac(self.x2, width), frac(self.y2, height))

    def rounded(self) -> tuple[int, int, int, int]:
        """Integer pixels that cover the box: floor the top-left, ceil the bottom-right."""
        return (math.floor(self.x1), math.floor(self.y1), math.ceil(self.x2), math.ceil(self.y2))


def iou(a: Box, b: Box) -> float:
    inter = a.intersection_area(b)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: sides to multiples of `factor`, total pixels within [min, max].

    Returns (height, width). The model's box coordinates are pixels of this size, so the same rule must
    run here to map them back.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image sides must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio over 200 is not supported, got {width}x{height}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def sanitize_boxes(
    raw: Sequence[Sequence[float]], width: float, height: float, *, max_boxes: int, min_side: float = 2.0
) -> list[Box]:
    """Untrusted 4-number boxes -> ordered, clamped, non-degenerate boxes, in input order, capped."""
    boxes: list[Box] = []
    for item in raw:
        if len(boxes) >= max_boxes:
            break
        numbers = _four_finite(item)
        if numbers is None:
            continue
        box = Box.from_corners(*numbers).clamp(width, height)
        if box.width >= min_side and box.height >= min_side:
            boxes.append(box)
    return boxes


def _four_finite(item: object) -> tuple[float, float, float, float] | None:
    if not isinstance(item, Sequence) or isinstance(item, str | bytes) or len(item) != 4:
        return None
    values = []
    for value in item:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        values.append(float(value))
    return (values[0], values[1], values[2], values[3])


def merge_near_duplicates(boxes: Sequence[Box], iou_threshold: float) -> list[Box]:
    """Greedy merge (union) of boxes overlapping at or above the threshold, until stable; keeps order."""
    merged, _ = merge_with_sources(boxes, iou_threshold)
    return merged


def merge_with_sources(boxes: Sequence[Box], iou_threshold: float) -> tuple[list[Box], list[int]]:
    """As merge_near_duplicates, also returning for each kept box the index of its first source box."""
    kept: list[Box] = list(boxes)
    sources = list(range(len(boxes)))
    changed = True
    while changed:
        changed = False
        for i in range(len(kept)):
            for j in range(i + 1, len(kept)):
                if iou(kept[i], kept[j]) >= iou_threshold:
                    kept[i] = kept[i].union(kept[j])
                    del kept[j]
                    del sources[j]
                    changed = True
                    break
            if changed:
                break
    return kept, sources

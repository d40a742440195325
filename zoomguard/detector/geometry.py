"""Boxes in pixel space: the pure arithmetic under box mapping, sanitising, merging and cropping.

Boxes from a model are untrusted: reversed corners, points outside the image, NaN, huge numbers and
duplicates are all expected, and all handled here before anything is cut or reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from numbers import Real


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels; build it with `from_corners` when the corner order is unknown."""

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
        """Never negative, so a reversed box simply has no area instead of a negative one."""
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
        """Keep the part inside a width x height image (a box fully outside collapses onto an edge)."""
        return Box(
            _within(self.x1, width),
            _within(self.y1, height),
            _within(self.x2, width),
            _within(self.y2, height),
        )

    def scale(self, sx: float, sy: float) -> Box:
        """Map between pixel spaces, e.g. the model's resized image and the original."""
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def union(self, other: Box) -> Box:
        """The smallest box holding both: what two merged proposals become."""
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        return Box(x1, y1, max(self.x2, other.x2), max(self.y2, other.y2))

    def intersection_area(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def normalised(self, width: float, height: float) -> tuple[float, float, float, float]:
        """Fractions of the image side in [0, 1], 4 decimals: a compact, size-independent form for reports."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image sides must be positive, got {width}x{height}")
        return (
            _fraction(self.x1, width),
            _fraction(self.y1, height),
            _fraction(self.x2, width),
            _fraction(self.y2, height),
        )

    def rounded(self) -> tuple[int, int, int, int]:
        """Integer pixels that cover the box: floor the top-left, ceil the bottom-right."""
        return (math.floor(self.x1), math.floor(self.y1), math.ceil(self.x2), math.ceil(self.y2))


def _within(value: float, extent: float) -> float:
    return min(max(value, 0.0), extent)


def _fraction(value: float, extent: float) -> float:
    return round(_within(value / extent, 1.0), 4)


def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0 when either box has no area, so degenerate boxes are never duplicates."""
    if a.area <= 0 or b.area <= 0:
        return 0.0
    inter = a.intersection_area(b)
    return inter / (a.area + b.area - inter)


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
    """Exactly four finite real numbers, or None: anything else a model writes is skipped, never raised."""
    if not isinstance(item, Iterable) or isinstance(item, str | bytes | Mapping):
        return None
    values = tuple(islice(item, 5))  # 5 is enough to tell "more than four"
    if len(values) != 4:
        return None
    numbers: list[float] = []
    for value in values:
        # bool is an int, but True is no coordinate; huge ints overflow float conversion
        if isinstance(value, bool) or not isinstance(value, Real):
            return None
        try:
            number = float(value)
        except (OverflowError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        numbers.append(number)
    return (numbers[0], numbers[1], numbers[2], numbers[3])


def merge_near_duplicates(boxes: Sequence[Box], iou_threshold: float) -> list[Box]:
    """Greedy merge (union) of boxes overlapping at or above the threshold, until stable; keeps order.

    Models often mark one artefact several times with slightly shifted boxes; one crop of it is enough.
    """
    merged, _ = merge_with_sources(boxes, iou_threshold)
    return merged


def merge_with_sources(boxes: Sequence[Box], iou_threshold: float) -> tuple[list[Box], list[int]]:
    """As merge_near_duplicates, also returning for each kept box the index of its first source box."""
    kept = list(boxes)
    sources = list(range(len(boxes)))
    while True:
        kept_next, sources_next = _merge_pass(kept, sources, iou_threshold)
        if len(kept_next) == len(kept):
            return kept_next, sources_next
        kept, sources = kept_next, sources_next


def _merge_pass(boxes: list[Box], sources: list[int], iou_threshold: float) -> tuple[list[Box], list[int]]:
    """One pass: each box joins the first kept box it overlaps enough, else it is kept itself.

    A union grows, so it may now overlap a box it missed earlier; the caller repeats until nothing merges.
    """
    kept: list[Box] = []
    kept_sources: list[int] = []
    for box, source in zip(boxes, sources, strict=True):
        for k, existing in enumerate(kept):
            if iou(existing, box) >= iou_threshold:
                kept[k] = existing.union(box)
                break
        else:
            kept.append(box)
            kept_sources.append(source)
    return kept, kept_sources

"""Label Studio's box geometry: pixels <-> percent of the image, with its clockwise rotation.

Shared by the worker (review tasks), the export and the import, so both directions stay exact inverses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def box_to_percent(box: Sequence[int], width: int, height: int) -> dict[str, float]:
    """Pixels (x1, y1, x2, y2) to Label Studio's x, y, width, height in percent (4 decimals, as routing writes)."""
    x1, y1, x2, y2 = box
    return {
        "x": round(100.0 * x1 / width, 4),
        "y": round(100.0 * y1 / height, 4),
        "width": round(100.0 * (x2 - x1) / width, 4),
        "height": round(100.0 * (y2 - y1) / height, 4),
    }


def percent_to_box(value: Mapping[str, Any], width: int, height: int) -> tuple[int, int, int, int] | None:
    """Label Studio percent (rotated clockwise about its top-left corner) to the enclosing pixel box.

    Clamped to the image; None when nothing of positive area is left. Raises ValueError on non-numbers.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} must be positive")
    x = _number(value.get("x"), "x") * width / 100.0
    y = _number(value.get("y"), "y") * height / 100.0
    w = _number(value.get("width"), "width") * width / 100.0
    h = _number(value.get("height"), "height") * height / 100.0
    rotation = _number(value.get("rotation", 0) or 0, "rotation")
    if w < 0 or h < 0:
        raise ValueError("width and height must not be negative")
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    xs = [x, x + w * cos, x + w * cos - h * sin, x - h * sin]
    ys = [y, y + w * sin, y + w * sin + h * cos, y + h * cos]
    x1 = min(max(round(min(xs)), 0), width)
    y1 = min(max(round(min(ys)), 0), height)
    x2 = min(max(round(max(xs)), 0), width)
    y2 = min(max(round(max(ys)), 0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)

"""The optional values of a dataset item, checked one by one: reference boxes, text, ids.

Boxes are in pixels of the original image, `x1, y1, x2, y2` (the convention of `collect` and of the
detector's own boxes); one box may be written flat (`[x1, y1, x2, y2]`) or as a list of boxes. Coordinates are
rounded to whole pixels. Normalised (0-1) or 0-1000 coordinates are not converted: such a box is in pixels as
far as eval knows, so convert them before (a box that is not a valid pixel box is reported, not dropped).
"""

from __future__ import annotations

import math
from numbers import Real

from zoomguard.evaluation.scores import BoxTuple


def parse_boxes(value: object) -> tuple[BoxTuple, ...]:
    """() for no boxes (None, []); ValueError naming the first malformed box."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError(f"boxes must be a list of [x1, y1, x2, y2], got {type(value).__name__}")
    if len(value) == 4 and all(_is_number(v) for v in value):
        value = [value]
    return tuple(_box(box, index) for index, box in enumerate(value))


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _box(box: object, index: int) -> BoxTuple:
    if not (isinstance(box, list | tuple) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise ValueError(f"box {index} is not four numbers x1, y1, x2, y2: {str(box)[:80]}")
    numbers = [float(v) for v in box]
    if not all(math.isfinite(v) and 0 <= v < 2**31 for v in numbers):
        raise ValueError(f"box {index} has a coordinate that is not a pixel position: {box}")
    x1, y1, x2, y2 = (round(v) for v in numbers)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box {index} has no area (x2 <= x1 or y2 <= y1 after rounding): {box}")
    return (x1, y1, x2, y2)


def parse_text(value: object, what: str) -> str | None:
    """Text or None; ValueError for anything else (a number where an explanation belongs is a mistake)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {type(value).__name__}")
    return value


def parse_id(value: object) -> str | None:
    """An id as text (numbers allowed); None when absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"an id is text or an integer, got {type(value).__name__}")
    return str(value).strip()

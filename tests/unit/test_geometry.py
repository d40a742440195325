"""Box arithmetic: IoU, clamping, normalising, Qwen's resize rule, sanitising and merging untrusted boxes."""

from __future__ import annotations

import math

import pytest

from zoomguard.detector.geometry import Box, iou, merge_near_duplicates, sanitize_boxes, smart_resize


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Box(0, 0, 10, 10), Box(0, 0, 10, 10), 1.0),
        (Box(0, 0, 10, 10), Box(20, 20, 30, 30), 0.0),
        (Box(0, 0, 10, 10), Box(5, 0, 15, 10), 1 / 3),  # half overlap: 50 / 150
        (Box(0, 0, 10, 10), Box(2, 2, 4, 4), 4 / 100),  # contained
        (Box(0, 0, 0, 10), Box(0, 0, 0, 10), 0.0),  # zero area
        (Box(0, 0, 10, 10), Box(10, 0, 20, 10), 0.0),  # touching edges
    ],
)
def test_iou(a: Box, b: Box, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_box_helpers() -> None:
    box = Box.from_corners(30, 40, 10, 20)
    assert box == Box(10, 20, 30, 40)
    assert (box.width, box.height, box.area, box.center) == (20, 20, 400, (20, 30))
    assert Box(-5, -5, 50, 70).clamp(40, 60) == Box(0, 0, 40, 60)
    assert Box(10, 20, 30, 40).scale(2, 0.5) == Box(20, 10, 60, 20)
    assert Box(0, 0, 1, 1).union(Box(5, 5, 6, 7)) == Box(0, 0, 6, 7)
    assert Box(10, 20, 30, 40).normalised(40, 80) == (0.25, 0.25, 0.75, 0.5)
    assert Box(-1, 0, 50, 10).normalised(40, 80) == (0.0, 0.0, 1.0, 0.125)
    assert Box(1.2, 2.7, 3.1, 4.0).rounded() == (1, 2, 4, 4)


@pytest.mark.parametrize(
    ("height", "width", "kwargs", "expected"),
    [
        (224, 224, {}, (224, 224)),  # already fits
        (100, 200, {}, (112, 196)),  # round(100/28)=4 -> 112, round(200/28)=7 -> 196
        (10, 10, {"min_pixels": 56 * 56}, (56, 56)),  # too small: grown to min_pixels, multiple of 28
        # 1000x500 with max 28*28*16 = 12544 px: beta = sqrt(500000/12544) = 6.313; 500/6.313/28 = 2.83 -> 2 -> 56;
        # 1000/6.313/28 = 5.66 -> 5 -> 140
        (500, 1000, {"max_pixels": 28 * 28 * 16}, (56, 140)),
        # Qwen3-VL's 32-pixel grid: beta = sqrt(1080*1920/262144) = 2.8125; floor(12.0)*32, floor(21.3)*32
        (1080, 1920, {"factor": 32, "max_pixels": 32 * 32 * 256}, (384, 672)),
    ],
)
def test_smart_resize(height: int, width: int, kwargs: dict[str, int], expected: tuple[int, int]) -> None:
    assert smart_resize(height, width, **kwargs) == expected


@pytest.mark.parametrize(("height", "width"), [(4032, 3024), (1080, 1920), (333, 777), (28, 2000), (50, 50)])
def test_smart_resize_invariants(height: int, width: int) -> None:
    h, w = smart_resize(height, width, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    assert h % 28 == 0 and w % 28 == 0
    assert 56 * 56 <= h * w <= 28 * 28 * 1280
    assert abs(math.log((w / h) / (width / height))) < 0.35  # aspect roughly kept


@pytest.mark.parametrize(("height", "width"), [(1, 300), (0, 10), (10, -1)])
def test_smart_resize_refuses(height: int, width: int) -> None:
    with pytest.raises(ValueError):
        smart_resize(height, width)


def test_sanitize_boxes() -> None:
    raw = [
        [10, 10, 50, 50],  # fine
        [90, 80, 60, 20],  # reversed corners
        [-20, -20, 500, 500],  # outside: clamped to the image
        [float("nan"), 0, 10, 10],  # not finite
        [1, 2, 3],  # wrong length
        ["1", 2, 3, 4],  # not numbers
        [True, 0, 10, 10],  # booleans are not coordinates
        [5, 5, 6, 90],  # degenerate: 1 px wide
        [200, 200, 300, 300],  # entirely outside: nothing left
        [0, 0, 20, 20],  # over the cap
    ]
    boxes = sanitize_boxes(raw, 100, 100, max_boxes=3)
    assert boxes == [Box(10, 10, 50, 50), Box(60, 20, 90, 80), Box(0, 0, 100, 100)]


def test_merge_near_duplicates_chains_and_keeps_order() -> None:
    boxes = [Box(0, 0, 10, 10), Box(50, 50, 60, 60), Box(1, 0, 11, 10), Box(2, 0, 12, 10)]
    merged = merge_near_duplicates(boxes, iou_threshold=0.6)
    assert merged == [Box(0, 0, 12, 10), Box(50, 50, 60, 60)]
    # just under the threshold: kept apart
    assert len(merge_near_duplicates([Box(0, 0, 10, 10), Box(5, 0, 15, 10)], iou_threshold=0.34)) == 2
    assert len(merge_near_duplicates([Box(0, 0, 10, 10), Box(5, 0, 15, 10)], iou_threshold=1 / 3)) == 1

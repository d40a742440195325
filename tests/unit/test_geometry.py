"""Box arithmetic: IoU, clamping, normalising, Qwen's resize rule, sanitising and merging untrusted boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from zoomguard.detector.geometry import Box, iou, merge_near_duplicates, sanitize_boxes, smart_resize

NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Box(0, 0, 10, 10), Box(0, 0, 10, 10), 1.0),  # identical
        (Box(0, 0, 10, 10), Box(20, 20, 30, 30), 0.0),  # disjoint
        (Box(0, 0, 10, 10), Box(5, 0, 15, 10), 1 / 3),  # half overlap: 50 / (100 + 100 - 50)
        (Box(0, 0, 10, 10), Box(2, 2, 4, 4), 4 / 100),  # contained: 4 / 100
        (Box(0, 0, 10, 10), Box(10, 0, 20, 10), 0.0),  # touching edges share no area
        (Box(0, 0, 0, 10), Box(0, 0, 0, 10), 0.0),  # zero width, identical
        (Box(5, 5, 5, 5), Box(0, 0, 10, 10), 0.0),  # a point inside a box
        (Box(10, 10, 0, 0), Box(0, 0, 10, 10), 0.0),  # built reversed by hand: no area, not a duplicate
    ],
)
def test_iou(a: Box, b: Box, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("corners", "expected"),
    [
        ((10, 20, 30, 40), Box(10, 20, 30, 40)),  # already ordered
        ((30, 40, 10, 20), Box(10, 20, 30, 40)),  # both reversed
        ((30, 20, 10, 40), Box(10, 20, 30, 40)),  # x reversed only
        ((10, 40, 30, 20), Box(10, 20, 30, 40)),  # y reversed only
        ((-5.5, 3, -7.5, 1), Box(-7.5, 1, -5.5, 3)),  # negative and fractional
    ],
)
def test_from_corners_orders(corners: tuple[float, float, float, float], expected: Box) -> None:
    box = Box.from_corners(*corners)
    assert box == expected
    assert box.width == expected.x2 - expected.x1 and box.height == expected.y2 - expected.y1


def test_size_properties() -> None:
    box = Box(10, 20, 30, 60)
    assert (box.width, box.height, box.area, box.center) == (20, 40, 800, (20, 40))
    assert (Box(30, 0, 10, 10).width, Box(0, 30, 10, 10).area) == (0, 0)  # reversed by hand: no negatives


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(10, 10, 20, 20), Box(10, 10, 20, 20)),  # inside: unchanged
        (Box(-5, -5, 50, 70), Box(0, 0, 40, 60)),  # over every edge
        (Box(30, -10, 45, 20), Box(30, 0, 40, 20)),  # over the right and top edges
        (Box(50, 70, 60, 80), Box(40, 60, 40, 60)),  # fully outside: collapses onto the corner, no area
    ],
)
def test_clamp(box: Box, expected: Box) -> None:
    clamped = box.clamp(40, 60)
    assert clamped == expected


def test_scale_and_union() -> None:
    assert Box(10, 20, 30, 40).scale(2, 0.5) == Box(20, 10, 60, 20)
    assert Box(0, 0, 1, 1).union(Box(5, 5, 6, 7)) == Box(0, 0, 6, 7)
    assert Box(5, 5, 6, 7).union(Box(0, 0, 1, 1)) == Box(0, 0, 6, 7)
    assert Box(0, 0, 10, 10).intersection_area(Box(5, 6, 20, 20)) == 5 * 4


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(10, 20, 30, 40), (0.25, 0.25, 0.75, 0.5)),
        (Box(-1, 0, 50, 10), (0.0, 0.0, 1.0, 0.125)),  # clamped to [0, 1]
        (Box(1, 1, 13, 79), (0.025, 0.0125, 0.325, 0.9875)),
        (Box(1 / 3, 0, 40, 80 / 3), (0.0083, 0.0, 1.0, 0.3333)),  # 4 decimals
    ],
)
def test_normalised(box: Box, expected: tuple[float, float, float, float]) -> None:
    assert box.normalised(40, 80) == expected


def test_normalised_needs_a_real_image() -> None:
    with pytest.raises(ValueError, match="positive"):
        Box(0, 0, 1, 1).normalised(0, 10)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(1.2, 2.7, 3.1, 4.0), (1, 2, 4, 4)),  # floor top-left, ceil bottom-right
        (Box(0, 0, 10, 10), (0, 0, 10, 10)),  # integers stay
        (Box(0.999, 5.001, 9.001, 9.999), (0, 5, 10, 10)),  # covers, never cuts
        (Box(-0.5, -1.5, 0.5, 0.1), (-1, -2, 1, 1)),
    ],
)
def test_rounded(box: Box, expected: tuple[int, int, int, int]) -> None:
    assert box.rounded() == expected
    assert all(isinstance(v, int) for v in box.rounded())


@pytest.mark.parametrize(
    ("height", "width", "kwargs", "expected"),
    [
        (224, 224, {}, (224, 224)),  # already a multiple of 28 inside the limits
        (100, 200, {}, (112, 196)),  # round(3.57)=4 -> 112, round(7.14)=7 -> 196
        # round(2.5) is 2 in Python (to even), as in Qwen's reference: 70 -> 56; 56*56 is exactly min_pixels
        (70, 70, {}, (56, 56)),
        # 10x10 rounds to 28x28 = 784 < 3136: beta = sqrt(3136/100) = 5.6, ceil(10*5.6/28) = 2 -> 56
        (10, 10, {}, (56, 56)),
        # 1080x1920: 1092x1932 is over 1003520; beta = sqrt(2073600/1003520) = 1.4375;
        # floor(1080/1.4375/28) = floor(26.83) = 26 -> 728, floor(1920/1.4375/28) = floor(47.70) = 47 -> 1316
        (1080, 1920, {}, (728, 1316)),
        # 112x196 = 21952 > 3136: beta = sqrt(20000/3136) = 2.525; floor(1.41) = 1 -> 28, floor(2.83) = 2 -> 56
        # (the result is under min_pixels: the reference does not grow it again)
        (100, 200, {"max_pixels": 28 * 28 * 4}, (28, 56)),
        # 1000x500 with max 12544 px: beta = sqrt(500000/12544) = 6.313; floor(2.83) = 2 -> 56, floor(5.66) = 5 -> 140
        (500, 1000, {"max_pixels": 28 * 28 * 16}, (56, 140)),
        # Qwen3-VL's 32-pixel grid: beta = sqrt(1080*1920/262144) = 2.8125; floor(12.0)*32, floor(21.3)*32
        (1080, 1920, {"factor": 32, "max_pixels": 32 * 32 * 256}, (384, 672)),
        (1, 200, {}, (28, 196)),  # aspect exactly 200 is allowed; the short side is at least one factor
    ],
)
def test_smart_resize(height: int, width: int, kwargs: dict[str, int], expected: tuple[int, int]) -> None:
    assert smart_resize(height, width, **kwargs) == expected


@pytest.mark.parametrize(("height", "width"), [(4032, 3024), (1080, 1920), (333, 777), (28, 2000), (50, 50), (10, 10)])
def test_smart_resize_invariants(height: int, width: int) -> None:
    h, w = smart_resize(height, width)
    assert h % 28 == 0 and w % 28 == 0
    assert 56 * 56 <= h * w <= 28 * 28 * 1280
    assert abs(math.log((w / h) / (width / height))) < 0.35  # aspect roughly kept


@pytest.mark.parametrize(
    ("height", "width", "match"),
    [(1, 300, "aspect"), (300, 1, "aspect"), (1, 201, "aspect"), (0, 10, "positive"), (10, -1, "positive")],
)
def test_smart_resize_refuses(height: int, width: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        smart_resize(height, width)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ([10, 10, 50, 50], Box(10, 10, 50, 50)),  # fine
        ((10.5, 10, 50, 50.25), Box(10.5, 10, 50, 50.25)),  # a tuple of floats
        ([90, 80, 60, 20], Box(60, 20, 90, 80)),  # reversed corners
        ([-20, -20, 500, 500], Box(0, 0, 100, 100)),  # outside: clamped to the image
        ([50, 50, 1e300, 1e300], Box(50, 50, 100, 100)),  # huge but finite: clamped
        (np.array([1, 2, 30, 40], dtype=np.int64), Box(1, 2, 30, 40)),  # numpy scalars are numbers too
        ([NAN, 0, 10, 10], None),  # not finite
        ([0, 0, INF, 10], None),
        ([0, 0, 10**400, 10], None),  # too big for a float
        ([1, 2, 3], None),  # wrong length
        ([1, 2, 3, 4, 5], None),
        ([], None),
        (["1", 2, 3, 4], None),  # not numbers
        ([None, 2, 3, 4], None),
        ([True, 0, 10, 10], None),  # booleans are not coordinates
        ("1234", None),  # a string is a sequence of four, but no box
        ({"x1": 1, "y1": 2, "x2": 3, "y2": 4}, None),
        (7, None),  # not a sequence at all
        ([5, 5, 6, 90], None),  # degenerate: 1 px wide
        ([5, 5, 7, 90], Box(5, 5, 7, 90)),  # exactly min_side wide: kept
        ([200, 200, 300, 300], None),  # entirely outside: nothing left after clamping
        ([-50, 10, -10, 40], None),
    ],
)
def test_sanitize_one(item: object, expected: Box | None) -> None:
    boxes = sanitize_boxes([item], 100, 100, max_boxes=5)  # type: ignore[list-item]
    assert boxes == ([] if expected is None else [expected])


@pytest.mark.parametrize(("max_boxes", "count"), [(0, 0), (1, 1), (3, 3), (10, 4)])
def test_sanitize_keeps_order_and_caps_after_skipping(max_boxes: int, count: int) -> None:
    raw: list[Sequence[float]] = [
        [NAN, 0, 10, 10],  # skipped: does not count towards the cap
        [10, 10, 50, 50],
        [5, 5, 6, 90],  # degenerate: skipped
        [90, 80, 60, 20],
        [0, 0, 20, 20],
        [70, 0, 99, 30],
    ]
    expected = [Box(10, 10, 50, 50), Box(60, 20, 90, 80), Box(0, 0, 20, 20), Box(70, 0, 99, 30)]
    assert sanitize_boxes(raw, 100, 100, max_boxes=max_boxes) == expected[:count]


def test_sanitize_min_side_is_measured_after_clamping() -> None:
    # 30 px wide as written, but only 3 px of it is inside the 100 px image
    assert sanitize_boxes([[97, 0, 127, 50]], 100, 100, max_boxes=1, min_side=4) == []
    assert sanitize_boxes([[97, 0, 127, 50]], 100, 100, max_boxes=1, min_side=3) == [Box(97, 0, 100, 50)]


@pytest.mark.parametrize(
    ("boxes", "threshold", "expected"),
    [
        # near duplicates of the first box merge into it; the distinct one keeps its place
        (
            [Box(0, 0, 10, 10), Box(50, 50, 60, 60), Box(1, 0, 11, 10), Box(2, 0, 12, 10)],
            0.6,
            [Box(0, 0, 12, 10), Box(50, 50, 60, 60)],
        ),
        # chain: B misses A (IoU 0), C joins A, and the grown A now meets B at exactly 0.5
        (
            [Box(0, 0, 10, 10), Box(10, 0, 20, 10), Box(0, 0, 20, 10)],
            0.5,
            [Box(0, 0, 20, 10)],
        ),
        # the same chain behind an unrelated box: first-seen order holds across passes
        (
            [Box(100, 100, 110, 110), Box(0, 0, 10, 10), Box(10, 0, 20, 10), Box(0, 0, 20, 10)],
            0.5,
            [Box(100, 100, 110, 110), Box(0, 0, 20, 10)],
        ),
        # half overlap is IoU 1/3: merged at a threshold of exactly 1/3, kept apart just above it
        ([Box(0, 0, 10, 10), Box(5, 0, 15, 10)], 1 / 3, [Box(0, 0, 15, 10)]),
        ([Box(0, 0, 10, 10), Box(5, 0, 15, 10)], 0.34, [Box(0, 0, 10, 10), Box(5, 0, 15, 10)]),
        # identical boxes merge at the strictest threshold
        ([Box(1, 1, 5, 5), Box(1, 1, 5, 5), Box(1, 1, 5, 5)], 1.0, [Box(1, 1, 5, 5)]),
        # zero-area boxes never merge, not even with themselves
        ([Box(1, 1, 1, 5), Box(1, 1, 1, 5)], 0.5, [Box(1, 1, 1, 5), Box(1, 1, 1, 5)]),
        ([], 0.5, []),
    ],
)
def test_merge_near_duplicates(boxes: list[Box], threshold: float, expected: list[Box]) -> None:
    assert merge_near_duplicates(boxes, iou_threshold=threshold) == expected

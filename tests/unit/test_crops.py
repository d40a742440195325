"""Crop planning (pure) and cutting: what Query 2 sees, and at what zoom."""

from __future__ import annotations

import dataclasses
import random

import pytest
from PIL import Image, ImageDraw

from zoomguard.detector.crops import cut_crops, plan_crops
from zoomguard.detector.geometry import Box
from zoomguard.detector.settings import CropSettings

SETTINGS = CropSettings(
    max_crops=3, pad_fraction=0.1, min_pad_px=4, min_crop_side=64, max_area_fraction=0.5,
    merge_iou=0.5, zoom_target_side=448, max_zoom=4.0,
)  # fmt: skip


def test_big_proposals_dropped_duplicates_merged_and_capped() -> None:
    boxes = [
        Box(0, 0, 900, 900),  # over half the 1000x1000 image: dropped
        Box(100, 100, 300, 300),
        Box(110, 100, 310, 300),  # near duplicate of the previous one: merged
        Box(500, 500, 600, 600),
        Box(700, 100, 800, 200),
        Box(10, 700, 90, 780),  # fourth distinct region: over max_crops
    ]
    plans = plan_crops(boxes, 1000, 1000, SETTINGS)
    assert [p.region_index for p in plans] == [1, 3, 4]
    assert [p.region for p in plans] == [Box(100, 100, 310, 300), Box(500, 500, 600, 600), Box(700, 100, 800, 200)]


@pytest.mark.parametrize(
    ("box", "kept"),
    [
        (Box(0, 0, 500, 1000), True),  # exactly half the image: kept ("more than" is dropped)
        (Box(0, 0, 501, 1000), False),
        (Box(-1000, -1000, 2000, 2000), False),  # clamped, it is the whole image
        (Box(-400, 0, 400, 1000), True),  # 800 px wide as written, 400 inside the image
        (Box(1200, 100, 1300, 200), False),  # entirely outside the image
        (Box(10, 10, 10, 50), False),  # no area: nothing to show
        (Box(float("nan"), 10, 20, 50), False),
    ],
)
def test_which_proposals_are_cropped(box: Box, kept: bool) -> None:
    assert len(plan_crops([box], 1000, 1000, SETTINGS)) == int(kept)


def test_region_index_points_at_the_first_source_after_a_chain_merge() -> None:
    boxes = [
        Box(0, 0, 1000, 1000),  # dropped, so indices must still count it
        Box(600, 600, 700, 700),
        Box(100, 0, 200, 100),
        Box(200, 0, 300, 100),  # touches the previous box only
        Box(100, 0, 300, 100),  # joins index 2, and the union then swallows index 3
    ]
    plans = plan_crops(boxes, 1000, 1000, SETTINGS)
    assert [(p.region_index, p.region) for p in plans] == [(1, Box(600, 600, 700, 700)), (2, Box(100, 0, 300, 100))]


@pytest.mark.parametrize(
    ("box", "change", "crop"),
    [
        # 10% of 100 x 80 is 10 x 8 px, both above min_pad_px 4
        (Box(400, 400, 500, 480), {}, Box(390, 392, 510, 488)),
        # min_pad_px 12 wins over 10% on both sides
        (Box(400, 400, 500, 480), {"min_pad_px": 12}, Box(388, 388, 512, 492)),
        # fraction on x (20% of 100 = 20 px), minimum on y (20% of 30 = 6 px is under 8); no growth
        (Box(400, 400, 500, 430), {"pad_fraction": 0.2, "min_pad_px": 8, "min_crop_side": 1}, Box(380, 392, 520, 438)),
        # fractional padding is covered with whole pixels: 10% of 105 = 10.5 -> floor / ceil
        (Box(400, 400, 505, 480), {}, Box(389, 392, 516, 488)),
        # no context exists beyond the edge: padding there is cut, not moved to the other side
        (Box(0, 0, 200, 100), {}, Box(0, 0, 220, 110)),
        (Box(800, 900, 1000, 1000), {}, Box(780, 890, 1000, 1000)),
    ],
)
def test_padding(box: Box, change: dict[str, float], crop: Box) -> None:
    settings = dataclasses.replace(SETTINGS, **change)
    (plan,) = plan_crops([box], 1000, 1000, settings)
    assert plan.crop == crop
    assert plan.region == box


@pytest.mark.parametrize(
    ("box", "size", "crop"),
    [
        (Box(0, 0, 10, 10), (300, 200), Box(0, 0, 64, 64)),  # top-left corner: grown inward
        (Box(290, 190, 300, 200), (300, 200), Box(236, 136, 300, 200)),  # bottom-right corner
        (Box(145, 95, 155, 105), (300, 200), Box(118, 68, 182, 132)),  # middle: grown evenly around the centre
        (Box(10, 10, 20, 20), (40, 30), Box(0, 0, 40, 30)),  # image smaller than min_crop_side: whole image
        (Box(0, 95, 300, 105), (300, 200), Box(0, 68, 300, 132)),  # only the short side grows
    ],
)
def test_small_regions_grow_to_min_side_inside_the_image(box: Box, size: tuple[int, int], crop: Box) -> None:
    (plan,) = plan_crops([box], size[0], size[1], SETTINGS)
    assert plan.crop == crop


@pytest.mark.parametrize(
    ("box", "size", "change", "output_size"),
    [
        # 64x64 crop: 448/64 = 7, capped at max_zoom 4 -> 256
        (Box(0, 0, 10, 10), (300, 200), {}, (256, 256)),
        (Box(0, 0, 10, 10), (300, 200), {"max_zoom": 1.0}, (64, 64)),  # never upscaled at all
        # 120x96 crop: zoom min(4, 448/120 = 3.733) -> 448 x 358.4 -> 358
        (Box(400, 400, 500, 480), (1000, 1000), {}, (448, 358)),
        # 1650x1100 crop (padding cut at the top-left edge): 448/1650 -> 448 x 298.67 -> 299
        (Box(0, 0, 1500, 1000), (4000, 3000), {}, (448, 299)),
        # a thin region grows to 64 px wide: 64 x 3000 -> 448/3000 * 64 = 9.56 -> 10
        (Box(100, 0, 102, 3000), (4000, 3000), {}, (10, 448)),
        # a 1 px high image: 2200 x 1 crop -> 448 x 0.2, kept at 1 px
        (Box(0, 0, 2000, 1), (4000, 1), {}, (448, 1)),
        # target side changes the zoom: 120x96 to 224 -> 1.867 -> 224 x 179.2 -> 179
        (Box(400, 400, 500, 480), (1000, 1000), {"zoom_target_side": 224}, (224, 179)),
    ],
)
def test_zoom_sizes(box: Box, size: tuple[int, int], change: dict[str, float], output_size: tuple[int, int]) -> None:
    (plan,) = plan_crops([box], size[0], size[1], dataclasses.replace(SETTINGS, **change))
    assert plan.output_size == output_size


@pytest.mark.parametrize(
    ("boxes", "width", "height", "settings"),
    [
        ([], 100, 100, SETTINGS),
        ([Box(0, 0, 10, 10)], 100, 100, CropSettings(max_crops=0)),
        ([Box(0, 0, 10, 10)], 0, 100, SETTINGS),  # no image
    ],
)
def test_nothing_to_plan(boxes: list[Box], width: int, height: int, settings: CropSettings) -> None:
    assert plan_crops(boxes, width, height, settings) == []


def test_default_settings_are_valid() -> None:
    defaults = CropSettings()
    assert (defaults.max_crops, defaults.max_area_fraction, defaults.merge_iou) == (4, 0.5, 0.5)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"max_crops": -1}, "max_crops"),
        ({"pad_fraction": -0.1}, "pad_fraction"),
        ({"min_pad_px": -1}, "min_pad_px"),
        ({"min_crop_side": 0}, "min_crop_side"),
        ({"max_area_fraction": 0}, "max_area_fraction"),
        ({"max_area_fraction": 1.5}, "max_area_fraction"),
        ({"max_area_fraction": float("nan")}, "max_area_fraction"),
        ({"merge_iou": 0}, "merge_iou"),
        ({"zoom_target_side": 10}, "zoom_target_side"),
        ({"max_zoom": 0.5}, "max_zoom"),
    ],
)
def test_invalid_settings(change: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CropSettings(**change)  # type: ignore[arg-type]


def test_invalid_settings_lists_every_problem() -> None:
    with pytest.raises(ValueError, match=r"max_crops.*max_zoom"):
        CropSettings(max_crops=-1, max_zoom=0)


def test_crops_stay_inside_the_image_whatever_the_boxes() -> None:
    rng = random.Random(0)
    planned = 0
    for _ in range(500):
        width, height = rng.randint(1, 2000), rng.randint(1, 2000)
        boxes = [_random_box(rng, width, height) for _ in range(rng.randint(0, 6))]
        plans = plan_crops(boxes, width, height, SETTINGS)
        assert len(plans) <= SETTINGS.max_crops
        planned += len(plans)
        for plan in plans:
            c = plan.crop
            assert 0 <= c.x1 < c.x2 <= width and 0 <= c.y1 < c.y2 <= height
            assert c.rounded() == (c.x1, c.y1, c.x2, c.y2)  # whole pixels
            assert c.width >= min(SETTINGS.min_crop_side, width) and c.height >= min(SETTINGS.min_crop_side, height)
            inside = plan.region.clamp(width, height)
            assert c.x1 <= inside.x1 and c.y1 <= inside.y1 and inside.x2 <= c.x2 and inside.y2 <= c.y2
            assert all(side >= 1 for side in plan.output_size)
            assert max(plan.output_size) <= SETTINGS.zoom_target_side
    assert planned > 200  # the loop really exercised the planner


def _random_box(rng: random.Random, width: int, height: int) -> Box:
    """Corners in any order, some past the edges, as a model might write them."""
    x_a, x_b = rng.uniform(-0.3 * width, 1.3 * width), rng.uniform(-0.3 * width, 1.3 * width)
    y_a, y_b = rng.uniform(-0.3 * height, 1.3 * height), rng.uniform(-0.3 * height, 1.3 * height)
    return Box.from_corners(x_a, y_a, x_b, y_b)


def _painted(mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 200, 339, 239), fill=(255, 0, 0))
    draw.rectangle((20, 30, 59, 69), fill=(0, 0, 255))
    return image if mode == "RGB" else image.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_cut_crops_takes_pixels_from_the_planned_areas(mode: str) -> None:
    plans = plan_crops([Box(300, 200, 340, 240), Box(20, 30, 60, 70)], 400, 300, SETTINGS)
    crops = cut_crops(_painted(mode), plans)
    assert [crop.size for crop in crops] == [plan.output_size for plan in plans]
    assert all(crop.mode == "RGB" for crop in crops)
    red, blue = crops
    assert red.getpixel((red.width // 2, red.height // 2)) == (255, 0, 0)
    assert blue.getpixel((blue.width // 2, blue.height // 2)) == (0, 0, 255)
    assert red.getpixel((1, 1)) == (255, 255, 255)  # the padding shows context around the region


def test_cut_crops_of_no_plans() -> None:
    assert cut_crops(_painted(), []) == []

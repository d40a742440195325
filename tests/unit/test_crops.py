"""Crop planning (pure) and cutting: what Query 2 sees, and at what zoom."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw

from zoomguard.detector.crops import CropSettings, cut_crops, plan_crops
from zoomguard.detector.geometry import Box

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
    assert plans[0].region == Box(100, 100, 310, 300)


def test_padding_and_zoom() -> None:
    (plan,) = plan_crops([Box(400, 400, 500, 480)], 1000, 1000, SETTINGS)
    # pad 10% of each side (10 px, 8 px), both above min_pad_px
    assert plan.crop == Box(390, 392, 510, 488)
    # 120 x 96 crop: zoom min(4, 448/120 = 3.73) -> 448 x 358
    assert plan.output_size == (448, 358)


def test_small_region_grows_to_min_side_inside_the_corner() -> None:
    (plan,) = plan_crops([Box(0, 0, 10, 10)], 300, 200, SETTINGS)
    assert plan.crop == Box(0, 0, 64, 64)  # grown to 64 and shifted inside, not cut by the edge
    assert plan.output_size == (256, 256)  # capped at max_zoom 4


def test_large_crop_is_downscaled_to_the_target() -> None:
    (plan,) = plan_crops([Box(0, 0, 1500, 1000)], 4000, 3000, SETTINGS)
    assert max(plan.output_size) == 448


def test_nothing_to_plan() -> None:
    assert plan_crops([], 100, 100, SETTINGS) == []
    assert plan_crops([Box(0, 0, 10, 10)], 100, 100, CropSettings(max_crops=0)) == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"max_crops": -1}, "max_crops"),
        ({"max_area_fraction": 0}, "max_area_fraction"),
        ({"max_zoom": 0.5}, "max_zoom"),
    ],
)
def test_invalid_settings(change: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CropSettings(**change)  # type: ignore[arg-type]


def test_crops_stay_inside_the_image_whatever_the_boxes() -> None:
    rng = random.Random(0)
    for _ in range(500):
        width, height = rng.randint(20, 2000), rng.randint(20, 2000)
        x1, y1 = rng.uniform(0, width), rng.uniform(0, height)
        box = Box(x1, y1, min(width, x1 + rng.uniform(1, width)), min(height, y1 + rng.uniform(1, height)))
        for plan in plan_crops([box], width, height, SETTINGS):
            c = plan.crop
            assert 0 <= c.x1 < c.x2 <= width and 0 <= c.y1 < c.y2 <= height
            assert c.width >= min(SETTINGS.min_crop_side, width) and c.height >= min(SETTINGS.min_crop_side, height)
            assert all(side >= 1 for side in plan.output_size)


def test_cut_crops_takes_pixels_from_the_planned_area() -> None:
    image = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(image).rectangle((300, 200, 340, 240), fill=(255, 0, 0))
    plans = plan_crops([Box(300, 200, 340, 240)], 400, 300, SETTINGS)
    (crop,) = cut_crops(image, plans)
    assert crop.size == plans[0].output_size and crop.mode == "RGB"
    assert crop.getpixel((crop.width // 2, crop.height // 2)) == (255, 0, 0)
    assert crop.getpixel((1, 1)) == (255, 255, 255)  # the padding shows context around the region

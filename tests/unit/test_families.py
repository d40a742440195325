"""Coordinate conventions per model family: boxes must land on the same original pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoomguard.detector.families import FAMILIES, resolve_family
from zoomguard.errors import ConfigError


def test_qwen25_maps_model_pixels_back_to_original() -> None:
    family = FAMILIES["qwen2_5_vl"]
    original = (1920, 1080)
    model_size = family.model_size(*original, min_pixels=3136, max_pixels=28 * 28 * 1280)
    mw, mh = model_size
    assert mw % 28 == 0 and mh % 28 == 0 and mw * mh <= 28 * 28 * 1280
    # the model's whole-image box maps to the whole original image
    assert family.to_original((0, 0, mw, mh), model_size, original) == pytest.approx((0, 0, 1920, 1080))
    # a box at a quarter of the model image lands at a quarter of the original
    box = family.to_original((mw / 4, mh / 4, mw / 2, mh / 2), model_size, original)
    assert box == pytest.approx((480, 270, 960, 540))


@pytest.mark.parametrize("name", ["qwen2_vl", "qwen3_vl"])
def test_grid_families_map_0_1000(name: str) -> None:
    family = FAMILIES[name]
    box = family.to_original((250, 500, 1000, 1000), (896, 504), (1600, 900))
    assert box == pytest.approx((400, 450, 1600, 900))
    assert family.box_space_limits((896, 504)) == (1000, 1000)


def test_qwen3_resizes_to_multiples_of_32() -> None:
    w, h = FAMILIES["qwen3_vl"].model_size(1000, 700, min_pixels=1024, max_pixels=1024 * 400)
    assert w % 32 == 0 and h % 32 == 0


def test_coordinate_instruction_names_the_space() -> None:
    assert "448x336" in FAMILIES["qwen2_5_vl"].coordinate_instruction((448, 336))
    assert "0-1000" in FAMILIES["qwen2_vl"].coordinate_instruction((448, 336))


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"),
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl"),
    ],
)
def test_family_from_name(model: str, family: str) -> None:
    assert resolve_family(model).name == family


def test_family_from_config_beats_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    assert resolve_family(str(tmp_path)).name == "qwen2_vl"
    assert resolve_family(str(tmp_path), "qwen3_vl").name == "qwen3_vl"


def test_unknown_family_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model family"):
        resolve_family("some/other-model")
    with pytest.raises(ConfigError, match="unknown model family"):
        resolve_family("Qwen/Qwen2.5-VL-7B-Instruct", "llava")

"""Model-family adapters: the prompt wording and the box coordinate space belong to the model, not the pipeline.

Qwen2.5-VL answers boxes in absolute pixels of the image as it was resized for the model ("smart
resize" to multiples of 28); Qwen2-VL and Qwen3-VL answer on a 0-1000 grid. Getting this wrong moves
every box, so it lives in exactly one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zoomguard.detector.geometry import smart_resize
from zoomguard.errors import ConfigError

CoordinateSpace = Literal["model_pixels", "grid_1000"]

FAMILY_NAMES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    coordinate_space: CoordinateSpace
    resize_factor: int  # patch size x spatial merge size

    def model_size(self, width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
        """(width, height) the image is resized to before the model sees it."""
        new_h, new_w = smart_resize(
            height, width, factor=self.resize_factor, min_pixels=min_pixels, max_pixels=max_pixels
        )
        return new_w, new_h

    def to_original(
        self, raw: tuple[float, float, float, float], model_size: tuple[int, int], original: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        """Map a box from the model's coordinate space to original-image pixels."""
        ow, oh = original
        if self.coordinate_space == "grid_1000":
            sx, sy = ow / 1000.0, oh / 1000.0
        else:
            mw, mh = model_size
            sx, sy = ow / mw, oh / mh
        x1, y1, x2, y2 = raw
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    def box_space_limits(self, model_size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) extent boxes are clamped to, in the model's space."""
        return (1000, 1000) if self.coordinate_space == "grid_1000" else model_size

    def coordinate_bound(self, max_pixels: int) -> int:
        """The largest coordinate any answer can legitimately hold (the side of the most elongated
        model image Qwen's resize allows, aspect ratio 200), or the grid size."""
        if self.coordinate_space == "grid_1000":
            return 1000
        return math.ceil(math.sqrt(max_pixels * 200))

    def coordinate_instruction(self, model_size: tuple[int, int]) -> str:
        if self.coordinate_space == "grid_1000":
            return "Give each box as [x1, y1, x2, y2] on a 0-1000 grid over the image (0,0 is top-left)."
        w, h = model_size
        return (
            f"The image is {w}x{h} pixels. Give each box as [x1, y1, x2, y2] in absolute pixel "
            "coordinates of this image (0,0 is top-left)."
        )


FAMILIES: dict[str, ModelFamily] = {
    "qwen2_5_vl": ModelFamily("qwen2_5_vl", "model_pixels", 28),
    "qwen2_vl": ModelFamily("qwen2_vl", "grid_1000", 28),
    "qwen3_vl": ModelFamily("qwen3_vl", "grid_1000", 32),
}

# model_type values in config.json, and fragments of hub names, for each family.
_MODEL_TYPES = {
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen2_vl": "qwen2_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
}
_NAME_HINTS = (
    ("qwen2.5-vl", "qwen2_5_vl"),
    ("qwen2_5_vl", "qwen2_5_vl"),
    ("qwen3-vl", "qwen3_vl"),
    ("qwen2-vl", "qwen2_vl"),
)


def resolve_family(model: str, explicit: str | None = None) -> ModelFamily:
    """Pick the family: the explicit setting, else config.json's model_type, else the model's name."""
    if explicit and explicit != "auto":
        if explicit not in FAMILIES:
            raise ConfigError(f"unknown model family {explicit!r}; use one of {', '.join(FAMILY_NAMES)}")
        return FAMILIES[explicit]
    config = Path(model) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type", "")
        if model_type in _MODEL_TYPES:
            return FAMILIES[_MODEL_TYPES[model_type]]
    lowered = model.lower()
    for hint, family in _NAME_HINTS:
        if hint in lowered:
            return FAMILIES[family]
    raise ConfigError(
        f"cannot tell the model family of {model!r}; set detector.model_family to one of {', '.join(FAMILY_NAMES)}"
    )

"""Detector settings: one frozen model, every field documented (the README's reference is built from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.answers import Charset, ExamineAnswer, LocateAnswer, worst_case_tokens


def _doc(default: float, doc: str) -> Any:
    """A default with a description, which the settings reference (settings_reference.py) prints."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class CropSettings:
    """Crop geometry; validated on construction so a bad config fails at start, not mid-stream."""

    max_crops: int = _doc(4, "crops sent to Query 2 at most (each costs image tokens)")
    pad_fraction: float = _doc(0.15, "context added on each side, as a fraction of the region's side")
    min_pad_px: int = _doc(8, "context added on each side at least (pixels)")
    min_crop_side: int = _doc(64, "smaller regions are grown around their centre to this side (pixels)")
    max_area_fraction: float = _doc(0.5, "regions covering more of the image are not cropped (the paper's rule)")
    merge_iou: float = _doc(0.5, "regions overlapping at least this IoU are merged into one crop")
    zoom_target_side: int = _doc(448, "a crop's longer side is scaled towards this (zoom in, or down)")
    max_zoom: float = _doc(4.0, "upscaling never exceeds this factor")

    def __post_init__(self) -> None:
        # written so that NaN fails every check
        checks = [
            (self.max_crops >= 0, "max_crops must be >= 0"),
            (self.pad_fraction >= 0, "pad_fraction must be >= 0"),
            (self.min_pad_px >= 0, "min_pad_px must be >= 0"),
            (self.min_crop_side >= 1, "min_crop_side must be >= 1"),
            (0 < self.max_area_fraction <= 1, "max_area_fraction must be in (0, 1]"),
            (0 < self.merge_iou <= 1, "merge_iou must be in (0, 1]"),
            (self.zoom_target_side >= 28, "zoom_target_side must be >= 28"),
            (self.max_zoom >= 1, "max_zoom must be >= 1"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid crop settings: " + "; ".join(problems))


class DetectorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_family: str = Field("auto", description="qwen2_5_vl, qwen2_vl, qwen3_vl, or auto (from config.json / name)")
    min_pixels: int = Field(56 * 56, ge=28 * 28, description="smallest model-sized image (pixels)")
    max_pixels: int = Field(
        28 * 28 * 1280, ge=28 * 28, description="largest model-sized image; bounds image tokens per query"
    )
    max_regions: int = Field(6, ge=0, le=32, description="regions Query 1 may propose (schema maxItems)")
    min_regions: int = Field(
        0, ge=0, le=32, description="regions Query 1 must propose (schema minItems); >0 forces a zoom-in"
    )
    no_region_policy: Literal["examine_full_image", "skip"] = Field(
        "examine_full_image",
        description="when Query 1 proposes no region: run Query 2 on the full image, or keep Query 1's verdict",
    )
    ai_threshold: float = Field(0.8, ge=0.0, le=1.0, description="p_ai at or above: ai_generated")
    real_threshold: float = Field(0.2, ge=0.0, le=1.0, description="p_ai at or below: real; between: uncertain")
    locate_max_tokens: int | None = Field(
        None,
        ge=32,
        description="generation cap for Query 1; unset: the longest answer the schema allows, so it always "
        "completes (a lower value is refused)",
    )
    examine_max_tokens: int | None = Field(
        None, ge=32, description="generation cap for Query 2; unset: the longest answer the schema allows"
    )
    explanation_max_chars: int = Field(600, ge=16, description="most characters of an explanation (schema cap)")
    finding_max_chars: int = Field(120, ge=8, description="most characters of a region's finding (schema cap)")
    answer_charset: Charset = Field(
        "ascii",
        description="characters the answers may use: ascii (printable, no escapes: one token per character at "
        "most) or unicode (up to 4 tokens per character; budgets grow 4x)",
    )
    top_logprobs: int = Field(
        5, ge=2, le=20, description="alternatives per token for p_ai (under the grammar only label starts are valid)"
    )
    crops: CropSettings = Field(default_factory=CropSettings, description="crop geometry (see crops.py)")
    limits: ImageLimits = Field(default_factory=ImageLimits, description="byte / pixel limits for inputs")

    def answer_budgets(self, coordinate_max: int) -> tuple[int, int]:
        """max_tokens of Query 1 and Query 2: the schema's longest answer, or the configured caps when they
        hold it. Raises ValueError naming what to change when a configured cap would cut answers."""
        caps: dict[str, Any] = {
            "max_regions": self.max_regions,
            "explanation_max_chars": self.explanation_max_chars,
            "finding_max_chars": self.finding_max_chars,
            "coordinate_max": coordinate_max,
            "charset": self.answer_charset,
        }
        budgets = []
        for name, answer, configured in (
            ("locate_max_tokens", LocateAnswer, self.locate_max_tokens),
            ("examine_max_tokens", ExamineAnswer, self.examine_max_tokens),
        ):
            longest = worst_case_tokens(answer, **caps)
            if configured is not None and configured < longest:
                raise ValueError(
                    f"detector.{name}={configured} can cut answers the schema allows (up to {longest} tokens): "
                    f"leave it unset, raise it, or lower detector.explanation_max_chars / finding_max_chars / "
                    "max_regions"
                )
            budgets.append(configured or longest)
        return budgets[0], budgets[1]

    @model_validator(mode="after")
    def _check_thresholds(self) -> DetectorSettings:
        if not self.real_threshold < self.ai_threshold:
            raise ValueError(f"real_threshold ({self.real_threshold}) must be below ai_threshold ({self.ai_threshold})")
        if self.min_regions > self.max_regions:
            raise ValueError("min_regions must not exceed max_regions")
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self

"""The detector's result: what `zoomguard detect` prints and every VerdictEvent carries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zoomguard.schemas.answers import Verdict
from zoomguard.schemas.evidence import EvidenceItem

SCHEMA_VERSION = 1

Decision = Literal["ai_generated", "real", "uncertain"]
UncertainReason = Literal["low_confidence", "unparseable_locate", "unparseable_examine", "no_confidence"]
# Which stage of the cascade decided: the marks in the upload's own bytes, a reviewed copy, or the model.
DecisionSource = Literal["evidence", "known_content", "model"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Frozen):
    box: tuple[int, int, int, int] = Field(description="x1, y1, x2, y2 in original-image pixels")
    box_norm: tuple[float, float, float, float] = Field(description="the same box as fractions 0-1")
    finding: str


class FirstPass(_Frozen):
    """Query 1's own verdict: kept so reviewers and training can see what the zoom changed."""

    verdict: Verdict | None
    explanation: str
    p_ai: float | None


class ModelInfo(_Frozen):
    name: str
    version: str
    family: str


class ImageInfo(_Frozen):
    sha256: str
    width: int
    height: int
    format: str
    pdq: str | None = Field(
        None, description="PDQ perceptual hash, 64 hex digits (null when the upload was decided before decoding)"
    )
    pdq_quality: int | None = Field(None, description="PDQ quality 0-100; below 50 the hash never matches")


class Timings(_Frozen):
    evidence_ms: float = 0.0
    known_content_ms: float = 0.0
    decode_ms: float = 0.0
    locate_ms: float = 0.0
    crop_ms: float = 0.0
    examine_ms: float = 0.0
    total_ms: float = 0.0


class Usage(_Frozen):
    """Token counts; examine_cached_tokens shows how much of Query 1 the prefix cache served."""

    locate_prompt_tokens: int = 0
    locate_completion_tokens: int = 0
    examine_prompt_tokens: int = 0
    examine_completion_tokens: int = 0
    examine_cached_tokens: int | None = None


class Detection(_Frozen):
    schema_version: int = SCHEMA_VERSION
    decision: Decision
    p_ai: float | None = Field(
        description="P(ai_generated) from the final verdict's token logprobs; null when the model did not run"
    )
    p_ai_raw: float | None = Field(
        None, description="p_ai before the model version's calibration (equal to p_ai when it has none)"
    )
    reason: UncertainReason | None = Field(description="why the decision is uncertain; null otherwise")
    regions: list[Region]
    explanation: str
    first_pass: FirstPass
    examined: bool = Field(description="whether Query 2 ran")
    crops: int = Field(0, description="zoomed crops Query 2 looked at")
    model: ModelInfo
    image: ImageInfo
    timings_ms: Timings
    usage: Usage
    decision_source: DecisionSource = Field(
        "model", description="the stage that decided: evidence (marks in the upload's bytes), known_content, model"
    )
    evidence: list[EvidenceItem] = Field(
        default_factory=list, description="every mark found in the upload's bytes, conclusive or not (may be empty)"
    )


class ErrorInfo(_Frozen):
    kind: str
    message: str

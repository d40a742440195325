"""Events of the review and retraining loop: reviewers' decisions and promoted models.

ReviewDecision comes from reviewers' tools (Label Studio import, its webhook, or any producer), so it is
untrusted input like ImageEvent: sizes and shapes are bounded here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zoomguard.schemas.events import EVENT_SCHEMA_VERSION, ID_PATTERN, ImageRef

Label = Literal["ai_generated", "real"]
MAX_REVIEW_BOXES = 32


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReviewedRegion(_Event):
    """A region a reviewer drew or confirmed, in original-image pixels."""

    box: tuple[int, int, int, int] = Field(description="x1, y1, x2, y2 in original-image pixels")
    finding: str = Field("", max_length=2000, description="what is wrong there, when the reviewer said")

    @model_validator(mode="after")
    def _ordered(self) -> ReviewedRegion:
        x1, y1, x2, y2 = self.box
        if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
            raise ValueError(f"box {self.box} must have 0 <= x1 < x2 and 0 <= y1 < y2")
        return self


class ReviewDecision(_Event):
    """Input on `images.review.decisions`: a human's label for one event (latest decision wins)."""

    schema_version: Literal[1] = 1
    event_id: str = Field(pattern=ID_PATTERN, description="the ImageEvent's event_id")
    label: Label
    regions: list[ReviewedRegion] = Field(
        default_factory=list, max_length=MAX_REVIEW_BOXES, description="corrected boxes (optional)"
    )
    explanation: str | None = Field(None, max_length=8000, description="the reviewer's explanation (optional)")
    reviewer: str = Field(min_length=1, max_length=200)
    decided_at: AwareDatetime
    image: ImageRef | None = Field(
        None, description="the image, when the tool knows it; otherwise it is joined from the review topic"
    )
    source: str = Field("", max_length=200, description="where the image came from (dataset breakdowns)")
    origin: str = Field("", max_length=100, description="which tool wrote it: label_studio_import, webhook, ...")


class Calibration(_Event):
    """Maps the model's raw P(ai) to a calibrated one; fitted on review decisions, shipped per model version."""

    method: Literal["identity", "temperature", "isotonic"] = "identity"
    temperature: float = Field(1.0, gt=0, description="temperature scaling of the logit of p_ai")
    isotonic_x: list[float] = Field(default_factory=list, description="isotonic breakpoints (raw p_ai, ascending)")
    isotonic_y: list[float] = Field(default_factory=list, description="calibrated p_ai at each breakpoint")
    fitted_on: int = Field(0, ge=0, description="labelled examples it was fitted on")

    @model_validator(mode="after")
    def _consistent(self) -> Calibration:
        if self.method == "isotonic":
            if len(self.isotonic_x) < 2 or len(self.isotonic_x) != len(self.isotonic_y):
                raise ValueError("isotonic calibration needs >= 2 breakpoints and as many values")
            if any(b < a for a, b in zip(self.isotonic_x, self.isotonic_x[1:], strict=False)):
                raise ValueError("isotonic_x must be ascending")
        return self


class ModelUpdate(_Event):
    """Output on `models.updates`: a promoted model version that workers switch to without a restart."""

    schema_version: int = EVENT_SCHEMA_VERSION
    model_version: str = Field(pattern=ID_PATTERN)
    base_model: str = Field(description="the checkpoint the adapter applies to")
    adapter_path: str = Field(description="LoRA adapter directory (peft format) as the workers see it")
    metrics: dict[str, float] = Field(default_factory=dict, description="held-out metrics of this version")
    baseline_metrics: dict[str, float] = Field(default_factory=dict, description="the serving model's, same split")
    calibration: Calibration = Field(default_factory=Calibration)
    previous_version: str | None = None
    promoted_at: datetime

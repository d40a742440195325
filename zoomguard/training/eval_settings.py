"""Settings of evaluation, calibration and the promotion gate (and the model registry it writes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registry_dir: str = Field("models/registry", description="promoted adapters, metrics and calibration")

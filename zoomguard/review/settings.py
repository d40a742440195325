"""Settings of the review side: Label Studio export/import, the webhook receiver, and dataset collection."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReviewSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset_dir: str = Field("data/reviewed", description="where `zoomguard collect` writes the dataset")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="held-out share (stable per image sha256)")

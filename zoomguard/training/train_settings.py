"""Settings of `zoomguard train sft|grpo`: LoRA shape, optimiser, rollout sizes, checkpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    output_dir: str = Field("runs/train", description="checkpoints and the final adapter go here")

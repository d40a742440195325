"""Settings of `zoomguard retrain`: which steps of collect -> train -> eval -> promote run, and when to skip."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RetrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    methods: list[Literal["sft", "grpo"]] = Field(
        ["sft", "grpo"], min_length=1, description="training runs in order; each starts from the previous adapter"
    )
    min_train_records: int = Field(
        50, ge=1, description="fewer reviewed training images than this: skip training (exit 0, nothing promoted)"
    )
    min_test_records: int = Field(20, ge=1, description="fewer held-out images than this: skip (the gate needs them)")
    annotate: bool = Field(False, description="ask the teacher (annotate.*) for missing explanations and boxes first")
    from_current: bool = Field(
        True, description="start training from the promoted adapter in the registry (else from the base model)"
    )
    run_dir: str = Field("", description="where each run's adapters and reports go; default training.output_dir")

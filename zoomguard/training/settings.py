"""Settings of `zoomguard train sft|grpo`: LoRA shape, optimiser, rollout sizes, checkpoints.

Defaults follow the paper where it says (SFT lr 2e-5, GRPO lr 1e-5, group size 4); the LoRA shape and
the rest are ours. Command-line flags override these.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The language model's linear layers, by their last name. Only modules inside a decoder layer
# (`...layers.N.self_attn.*` / `...layers.N.mlp.*`) are wrapped: the vision tower's blocks are named
# `blocks`, so they stay frozen. vLLM applies LoRA to Qwen2.5-VL's language model; an adapter touching the
# vision tower would not load there.
LANGUAGE_MODEL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

RewardName = Literal["format", "localisation", "accuracy", "explanation"]


class TrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    output_dir: str = Field("runs/train", description="checkpoints and the final adapter go here")
    stages: list[Literal["locate", "examine"]] = Field(
        ["locate", "examine"], min_length=1, description="ZoomIn queries to train on, each as its own sample"
    )
    epochs: float = Field(1.0, gt=0, description="passes over the training split (ignored when max_steps > 0)")
    max_steps: int = Field(-1, description="optimiser steps; > 0 overrides epochs")
    sft_learning_rate: float = Field(2e-5, gt=0, description="learning rate of `train sft` (the paper's)")
    grpo_learning_rate: float = Field(1e-5, gt=0, description="learning rate of `train grpo` (the paper's)")
    per_device_batch_size: int = Field(
        4, ge=1, description="samples per device per step; for GRPO, completions (a multiple of num_generations)"
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimiser step")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA branch")
    lora_target_modules: list[str] = Field(
        list(LANGUAGE_MODEL_LINEAR),
        min_length=1,
        description="linear layers LoRA wraps in every language-model decoder layer (the vision tower stays frozen)",
    )
    num_generations: int = Field(4, ge=2, description="GRPO group size: completions sampled per prompt")
    max_completion_length: int = Field(512, ge=8, description="GRPO: tokens generated per completion at most")
    temperature: float = Field(1.0, gt=0, description="GRPO sampling temperature")
    beta: float = Field(0.0, ge=0.0, description="GRPO KL coefficient against the starting policy (0: no KL)")
    reward_weights: dict[RewardName, float] = Field(
        {"format": 1.0, "localisation": 1.0, "accuracy": 1.0, "explanation": 1.0},
        description="weight of each GRPO reward in the sum (a reward absent here is not used)",
    )
    max_length: int | None = Field(
        None, ge=64, description="SFT: longest sample in tokens; None = no truncation (cutting image tokens fails)"
    )
    save_steps: int = Field(100, ge=1, description="a checkpoint every this many steps")
    save_total_limit: int = Field(3, ge=1, description="checkpoints kept (oldest deleted first)")
    logging_steps: int = Field(10, ge=1, description="log loss / reward every this many steps")
    seed: int = Field(0, description="seed for data order, LoRA init and sampling")
    bf16: bool = Field(False, description="bfloat16 weights and compute (GPUs); CPU runs use float32")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large models)")

    @field_validator("lora_target_modules")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _MODULE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"lora_target_modules takes plain module names like q_proj, not {bad}")
        return value

    def lora_target_regex(self) -> str:
        """peft's full-match pattern: these layers inside decoder layers, nowhere else."""
        return rf"(.*\.)?layers\.\d+\.(self_attn|mlp)\.({'|'.join(self.lora_target_modules)})"

    @model_validator(mode="after")
    def _rewards(self) -> TrainSettings:
        if not any(weight != 0 for weight in self.reward_weights.values()):
            raise ValueError("reward_weights needs at least one non-zero reward")
        return self

"""`zoomguard train sft`: supervised fine-tuning (TRL SFTTrainer, LoRA) on both ZoomIn queries.

Teaches the answer format and grounding before GRPO (the paper's first stage). Each sample is a
prompt-completion pair, so the loss covers only the answer of that query (Query 2's prompt includes the
reference Query 1 answer, which is not trained twice).
"""

from __future__ import annotations

from zoomguard.app.config import Settings
from zoomguard.training.trl_common import (
    DATASET_CACHE_DIR,
    TrainJob,
    TrainResult,
    build_config,
    common_args,
    finish,
    policy,
    prepare,
    to_dataset,
)


def train_sft(settings: Settings, job: TrainJob) -> TrainResult:
    from trl import SFTConfig, SFTTrainer

    ts = settings.training
    args = build_config(
        SFTConfig, **common_args(ts, job, ts.sft_learning_rate), max_length=ts.max_length, completion_only_loss=True
    )
    prepared = prepare(settings, job)
    dataset = to_dataset(prepared, job.output / DATASET_CACHE_DIR)
    model, peft_config = policy(job, ts)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, peft_config=peft_config)
    trainer.train()
    return finish(trainer, job, "sft", prepared, ts)

"""`zoomguard train sft`: supervised fine-tuning (TRL SFTTrainer, LoRA) on both ZoomIn queries.

Teaches the answer format and grounding before GRPO (the paper's first stage). Each sample is a
prompt-completion pair, so the loss covers only the answer of that query (Query 2's prompt includes the
reference Query 1 answer, which is not trained twice).
"""

from __future__ import annotations

from zoomguard.detector.settings import DetectorSettings
from zoomguard.training.settings import TrainSettings
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


def train_sft(training: TrainSettings, detector: DetectorSettings, job: TrainJob) -> TrainResult:
    from trl import SFTConfig, SFTTrainer

    args = build_config(
        SFTConfig,
        **common_args(training, job, training.sft_learning_rate),
        max_length=training.max_length,
        completion_only_loss=True,
    )
    prepared = prepare(training, detector, job)
    dataset = to_dataset(prepared, job.output / DATASET_CACHE_DIR)
    model, peft_config = policy(job, training)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, peft_config=peft_config)
    trainer.train()
    return finish(trainer, job, "sft", prepared, training)

"""`zoomguard train grpo`: GRPO (TRL GRPOTrainer, LoRA) with the ZoomIn rewards.

Two-stage, as separate samples: a `stage` column marks each prompt as Query 1 ("locate": format and
localisation rewards) or Query 2 ("examine": format, accuracy and explanation rewards), and Query 2's
prompt carries the *reference* Query 1 answer and the crops of the reference boxes.

Why not roll Query 2 out from the policy's own Query 1 answer: in TRL 1.16 a custom `rollout_func` returns
token ids only, and the trainer's loss pass then sees just the dataset's images (grpo_trainer.py restores
`dataset_images` after a rollout_func), so crops made during the rollout could not be fed to the model;
images added during generation are only supported for tool-call responses, which would make the model
answer in a tool-calling format that serving does not use. Teacher-forcing Query 1 keeps training
prompts identical to serving prompts, and each query still gets exactly the paper's rewards.
"""

from __future__ import annotations

from zoomguard.detector.settings import DetectorSettings
from zoomguard.training.rewards import REWARDS
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

# Columns the rewards read; `completion` (the SFT target) stays out of GRPO's dataset.
GRPO_COLUMNS = (
    "prompt",
    "images",
    "stage",
    "label",
    "ref_boxes",
    "width",
    "height",
    "model_width",
    "model_height",
    "family",
    "reference_explanation",
    "event_id",
    "source",
)


def train_grpo(training: TrainSettings, detector: DetectorSettings, job: TrainJob) -> TrainResult:
    from trl import GRPOConfig, GRPOTrainer

    names = [name for name, weight in training.reward_weights.items() if weight != 0]
    args = build_config(  # first: TRL checks batch size against group size before any data is read
        GRPOConfig,
        **common_args(training, job, training.grpo_learning_rate),
        num_generations=training.num_generations,
        max_completion_length=training.max_completion_length,
        temperature=training.temperature,
        beta=training.beta,
        reward_weights=[training.reward_weights[name] for name in names],
    )
    prepared = prepare(training, detector, job)
    dataset = to_dataset(prepared, job.output / DATASET_CACHE_DIR, keep=GRPO_COLUMNS)
    model, peft_config = policy(job, training)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[REWARDS[name] for name in names],
        args=args,
        train_dataset=dataset,
        peft_config=peft_config,
    )
    trainer.train()
    return finish(trainer, job, "grpo", prepared, training)

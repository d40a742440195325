"""`zoomguard train sft|grpo`: LoRA fine-tuning of the detector model on a collected dataset (TRL)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoomguard.commands.common import Command
from zoomguard.commands.flags import config_flag, family_flag, model_flag, settings_flag, settings_from

# flag -> the TrainSettings field it sets; `--lr` sets the method's own learning rate
_FLAGS = (
    ("--epochs", "epochs"),
    ("--max-steps", "max_steps"),
    ("--lr", "{method}_learning_rate"),
    ("--batch-size", "per_device_batch_size"),
    ("--grad-accum", "gradient_accumulation_steps"),
    ("--lora-r", "lora_r"),
    ("--lora-alpha", "lora_alpha"),
    ("--lora-dropout", "lora_dropout"),
    ("--num-generations", "num_generations"),
    ("--max-completion-length", "max_completion_length"),
    ("--save-steps", "save_steps"),
    ("--seed", "seed"),
    ("--bf16", "bf16"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    methods = parser.add_subparsers(dest="method", required=True)
    for method, help_text in (
        ("sft", "supervised fine-tuning on both ZoomIn queries (TRL SFTTrainer)"),
        ("grpo", "GRPO with the format, localisation, accuracy and explanation rewards (TRL GRPOTrainer)"),
    ):
        _method_parser(methods.add_parser(method, help=help_text), method)


def _method_parser(parser: argparse.ArgumentParser, method: str) -> None:
    parser.add_argument(
        "--dataset", type=Path, help="dataset directory from `zoomguard collect` (default review.dataset_dir)"
    )
    model_flag(parser)
    parser.add_argument("--init-adapter", type=Path, help="continue training this LoRA adapter (e.g. SFT's, for GRPO)")
    settings_flag(parser, "--output", "training.output_dir", metavar="DIR")
    config_flag(parser)
    family_flag(parser)
    for flag, field in _FLAGS:
        settings_flag(parser, flag, "training." + field.format(method=method))


def run_train(args: argparse.Namespace) -> int:
    from zoomguard.errors import ConfigError
    from zoomguard.training.trl_common import TrainJob

    settings = settings_from(args)
    if not settings.engine.model:
        raise ConfigError("no base model: pass --model DIR_OR_ID (or set engine.model)")
    job = TrainJob(
        dataset=args.dataset or Path(settings.review.dataset_dir),
        model=settings.engine.model,
        output=Path(settings.training.output_dir),
        init_adapter=args.init_adapter,
    )
    if args.method == "sft":
        from zoomguard.training.sft import train_sft

        result = train_sft(settings.training, settings.detector, job)
    else:
        from zoomguard.training.grpo import train_grpo

        result = train_grpo(settings.training, settings.detector, job)
    keys = ("kind", "adapter", "steps", "final_loss", "final_reward")
    print(json.dumps({key: result.summary[key] for key in keys}))
    return 0


COMMAND = Command(
    "train", "fine-tune a LoRA adapter: `sft` (format, grounding) or `grpo` (rewards)", add_arguments, run_train
)

"""`zoomguard train sft|grpo`: LoRA fine-tuning of the detector model on a collected dataset (TRL)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# flag -> TrainSettings field; None values are left to the config file / environment / defaults
_FLAGS: dict[str, str] = {
    "epochs": "epochs",
    "max_steps": "max_steps",
    "lr": "",  # sft_learning_rate or grpo_learning_rate, by method
    "batch_size": "per_device_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "num_generations": "num_generations",
    "max_completion_length": "max_completion_length",
    "save_steps": "save_steps",
    "seed": "seed",
    "bf16": "bf16",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="fine-tune a LoRA adapter: `sft` (format, grounding) or `grpo` (rewards)")
    methods = parser.add_subparsers(dest="method", required=True)
    for method, help_text in (
        ("sft", "supervised fine-tuning on both ZoomIn queries (TRL SFTTrainer)"),
        ("grpo", "GRPO with the format, localisation, accuracy and explanation rewards (TRL GRPOTrainer)"),
    ):
        _method_parser(methods.add_parser(method, help=help_text))


def _method_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", type=Path, help="dataset directory from `zoomguard collect` (default review.dataset_dir)"
    )
    parser.add_argument("--model", help="base checkpoint directory or hub id (default engine.model)")
    parser.add_argument("--init-adapter", type=Path, help="continue training this LoRA adapter (e.g. SFT's, for GRPO)")
    parser.add_argument("--output", type=Path, help="run directory (default training.output_dir)")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--family", help="model family: qwen2_5_vl, qwen2_vl, qwen3_vl (default: auto)")
    parser.add_argument("--epochs", type=float, help="passes over the training split")
    parser.add_argument("--max-steps", type=int, help="optimiser steps (> 0 overrides --epochs)")
    parser.add_argument("--lr", type=float, help="learning rate (default: training.sft_/grpo_learning_rate)")
    parser.add_argument("--batch-size", type=int, help="per-device batch size")
    parser.add_argument("--grad-accum", type=int, help="gradient accumulation steps")
    parser.add_argument("--lora-r", type=int, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=int, help="LoRA alpha")
    parser.add_argument("--lora-dropout", type=float, help="LoRA dropout")
    parser.add_argument("--num-generations", type=int, help="GRPO group size")
    parser.add_argument("--max-completion-length", type=int, help="GRPO completion tokens at most")
    parser.add_argument("--save-steps", type=int, help="checkpoint every N steps")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--bf16", action="store_true", default=None, help="bfloat16 (GPUs)")
    parser.set_defaults(handler=run_train)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, as settings overrides (flags win over file and environment)."""
    training: dict[str, Any] = {}
    for flag, field in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        training[field or f"{args.method}_learning_rate"] = value
    if args.output is not None:
        training["output_dir"] = str(args.output)
    result: dict[str, Any] = {"training": training} if training else {}
    if args.model:
        result["engine"] = {"model": args.model}
    if args.family:
        result["detector"] = {"model_family": args.family}
    return result


def run_train(args: argparse.Namespace) -> int:
    from zoomguard.app.config import load_settings
    from zoomguard.errors import ConfigError
    from zoomguard.training.trl_common import TrainJob

    settings = load_settings(args.config, overrides(args))
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

"""`zoomguard eval`: score a model (base, or base + LoRA adapter) on a dataset split; JSON report + charts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.flags import config_flag, model_flag, progress_flag, server_flag, settings_flag, settings_from

SUMMARY_KEYS = (
    "count",
    "accuracy",
    "coverage",
    "selective_accuracy",
    "precision",
    "recall",
    "f1",
    "auroc",
    "ece",
    "mean_box_iou",
    "parse_failure_rate",
    "uncertain_rate",
    "error_rate",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model_flag(parser)
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (peft) applied to the base model")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory written by `zoomguard collect`")
    settings_flag(parser, "--split", "evaluation.split")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="output folder (default eval-out)")
    settings_flag(parser, "--concurrency", "evaluation.concurrency")
    server_flag(parser)
    config_flag(parser)
    progress_flag(parser)


def run_eval(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.evaluation.runner import evaluate_dataset

    quiet_engine_logs()
    settings = settings_from(args)
    evaluation = asyncio.run(
        evaluate_dataset(
            settings.engine,
            settings.detector,
            settings.evaluation,
            args.dataset,
            args.out,
            adapter=str(args.adapter) if args.adapter else None,
            split=args.split,
            progress=not args.no_progress,
        )
    )
    metrics = evaluation.metrics
    summary = {key: metrics.get(key) for key in SUMMARY_KEYS}
    print(json.dumps({"model": evaluation.model.model_dump(), "metrics": summary, "out": str(args.out)}))
    print(f"report: {args.out / 'report.json'}", file=sys.stderr)
    return 0


COMMAND = Command(
    "eval", "accuracy, F1, AUROC, ECE, box IoU, parse failures of a model on a split", add_arguments, run_eval
)

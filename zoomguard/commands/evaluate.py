"""`zoomguard eval`: score a model (base, or base + LoRA adapter) on a dataset split; JSON report + charts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="accuracy, F1, AUROC, ECE, box IoU, parse failures of a model on a split")
    parser.add_argument("--model", help="base checkpoint directory or hub id (default engine.model)")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (peft) applied to the base model")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory written by `zoomguard collect`")
    parser.add_argument("--split", choices=("train", "test"), help="split to score (default evaluation.split)")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="output folder (default eval-out)")
    parser.add_argument("--concurrency", type=int, help="images in flight at once (default evaluation.concurrency)")
    parser.add_argument("--server", action="append", metavar="URL", help="vLLM OpenAI-compatible server (repeatable)")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run_eval)


def engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as settings overrides (shared with `promote`)."""
    overrides: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    if args.model:
        engine["model"] = args.model
    if getattr(args, "server", None):
        engine.update(server_urls=args.server, mode="server")
    if engine:
        overrides["engine"] = engine
    if getattr(args, "concurrency", None):
        overrides["evaluation"] = {"concurrency": args.concurrency}
    return overrides


def run_eval(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.app.config import load_settings
    from zoomguard.cli import _quiet_engine_logs
    from zoomguard.evaluation.runner import evaluate_dataset

    _quiet_engine_logs()
    settings = load_settings(args.config, engine_overrides(args))
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

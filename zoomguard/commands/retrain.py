"""`zoomguard retrain`: collect -> train -> eval -> promote in one command (what the CronJob runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("retrain", help="collect -> train (SFT, GRPO) -> eval -> promote, in one command")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--bootstrap-servers", help="Kafka host:port[,host:port...]")
    parser.add_argument("--model", help="base checkpoint directory or hub id (default engine.model)")
    parser.add_argument("--dataset", type=Path, help="dataset directory (default review.dataset_dir)")
    parser.add_argument(
        "--run-dir", type=Path, help="where this run's adapters and reports go (default retrain.run_dir)"
    )
    parser.add_argument("--skip-collect", action="store_true", help="train on the dataset as it is on disk")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and gate, but neither register nor publish")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(handler=run_retrain)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if args.bootstrap_servers:
        result["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    if args.model:
        result["engine"] = {"model": args.model}
    if args.dataset:
        result["review"] = {"dataset_dir": str(args.dataset)}
    if args.run_dir:
        result["retrain"] = {"run_dir": str(args.run_dir)}
    return result


def run_retrain(args: argparse.Namespace) -> int:
    """Exit 0 when the run finished (promoted, refused by the gate, or too little data); errors exit non-zero."""
    from zoomguard.app.config import load_settings
    from zoomguard.app.retrain import retrain
    from zoomguard.cli import _quiet_engine_logs

    _quiet_engine_logs()
    settings = load_settings(args.config, overrides(args))
    report = retrain(settings, skip_collect=args.skip_collect, dry_run=args.dry_run, progress=not args.no_progress)
    print(json.dumps({"outcome": report.outcome, "reason": report.reason, "run_dir": str(report.run_dir)}))
    return 0

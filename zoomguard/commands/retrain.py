"""`zoomguard retrain`: collect -> train -> eval -> promote in one command (what the CronJob runs)."""

from __future__ import annotations

import argparse
import json

from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.flags import config_flag, kafka_flags, model_flag, progress_flag, settings_flag, settings_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_flag(parser)
    kafka_flags(parser)
    model_flag(parser)
    settings_flag(parser, "--dataset", "review.dataset_dir", metavar="DIR")
    settings_flag(parser, "--run-dir", "retrain.run_dir", metavar="DIR")
    parser.add_argument("--skip-collect", action="store_true", help="train on the dataset as it is on disk")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and gate, but neither register nor publish")
    progress_flag(parser)


def run_retrain(args: argparse.Namespace) -> int:
    """Exit 0 when the run finished (promoted, refused by the gate, or too little data); errors exit non-zero."""
    from zoomguard.app.retrain import retrain

    quiet_engine_logs()
    settings = settings_from(args)
    report = retrain(settings, skip_collect=args.skip_collect, dry_run=args.dry_run, progress=not args.no_progress)
    print(json.dumps({"outcome": report.outcome, "reason": report.reason, "run_dir": str(report.run_dir)}))
    return 0


COMMAND = Command(
    "retrain", "collect -> train (SFT, GRPO) -> eval -> promote, in one command", add_arguments, run_retrain
)

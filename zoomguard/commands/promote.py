"""`zoomguard promote`: gate a candidate adapter against the serving model; on success register + announce it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.flags import config_flag, kafka_flags, model_flag, progress_flag, settings_flag, settings_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidate", type=Path, required=True, help="the candidate LoRA adapter directory (peft)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory written by `zoomguard collect`")
    model_flag(parser)
    settings_flag(parser, "--split", "evaluation.split")
    settings_flag(parser, "--margin", "evaluation.margin")
    settings_flag(parser, "--metric", "evaluation.primary_metric")
    settings_flag(parser, "--registry", "evaluation.registry_dir", metavar="DIR")
    parser.add_argument("--out", type=Path, default=Path("promote-out"), help="reports folder (default promote-out)")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and gate only: write and publish nothing")
    kafka_flags(parser)
    settings_flag(parser, "--concurrency", "evaluation.concurrency")
    config_flag(parser)
    progress_flag(parser)


def run_promote(args: argparse.Namespace) -> int:
    """Exit 0 when promoted (or would be, with --dry-run), 1 when the gate refuses."""
    from zoomguard.app.publish import model_update_publisher
    from zoomguard.promotion.promote import promote

    quiet_engine_logs()
    settings = settings_from(args)
    result = promote(
        settings.engine,
        settings.detector,
        settings.evaluation,
        args.candidate,
        args.dataset,
        publish=model_update_publisher(settings),
        out_dir=args.out,
        split=args.split,
        dry_run=args.dry_run,
        progress=not args.no_progress,
    )
    summary = result.to_json()
    print(json.dumps({k: summary[k] for k in ("accepted", "dry_run", "version", "reasons", "improvement")}))
    if result.accepted:
        done = "would be promoted (dry run)" if result.dry_run else f"promoted as {result.version}"
        print(f"candidate {done}; report: {result.report_path}", file=sys.stderr)
        return 0
    print("candidate refused: " + "; ".join(result.decision.reasons), file=sys.stderr)
    print(f"report: {result.report_path}", file=sys.stderr)
    return 1


COMMAND = Command(
    "promote",
    "promote a candidate adapter if it beats the serving model (registry + ModelUpdate)",
    add_arguments,
    run_promote,
)

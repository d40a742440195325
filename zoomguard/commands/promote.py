"""`zoomguard promote`: gate a candidate adapter against the serving model; on success register + announce it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from zoomguard.evaluation.settings import PrimaryMetric


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "promote", help="promote a candidate adapter if it beats the serving model (registry + ModelUpdate)"
    )
    parser.add_argument("--candidate", type=Path, required=True, help="the candidate LoRA adapter directory (peft)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory written by `zoomguard collect`")
    parser.add_argument("--model", help="base checkpoint directory or hub id (default engine.model)")
    parser.add_argument("--split", choices=("train", "test"), help="held-out split (default evaluation.split)")
    parser.add_argument("--margin", type=float, help="required improvement of the primary metric (evaluation.margin)")
    parser.add_argument("--metric", choices=get_args(PrimaryMetric), help="primary metric (evaluation.primary_metric)")
    parser.add_argument("--registry", help="model registry directory (evaluation.registry_dir)")
    parser.add_argument("--out", type=Path, default=Path("promote-out"), help="reports folder (default promote-out)")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and gate only: write and publish nothing")
    parser.add_argument("--bootstrap-servers", help="Kafka host:port[,host:port...]")
    parser.add_argument("--concurrency", type=int, help="images in flight at once (default evaluation.concurrency)")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run_promote)


def promote_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from zoomguard.commands.evaluate import engine_overrides

    overrides = engine_overrides(args)
    evaluation = dict(overrides.get("evaluation", {}))
    for flag, key in (("margin", "margin"), ("metric", "primary_metric"), ("registry", "registry_dir")):
        if getattr(args, flag) is not None:
            evaluation[key] = getattr(args, flag)
    if evaluation:
        overrides["evaluation"] = evaluation
    if args.bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    return overrides


def run_promote(args: argparse.Namespace) -> int:
    """Exit 0 when promoted (or would be, with --dry-run), 1 when the gate refuses."""
    from zoomguard.app.config import load_settings
    from zoomguard.app.publish import model_update_publisher
    from zoomguard.cli import _quiet_engine_logs
    from zoomguard.promotion.promote import promote

    _quiet_engine_logs()
    settings = load_settings(args.config, promote_overrides(args))
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

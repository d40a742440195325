"""`zoomguard eval`: score a model (base, or base + LoRA adapter) on a dataset in any of the formats public
benchmarks ship (image folders, JSON/JSONL manifests, Parquet, Hugging Face datasets, `collect` output), alone
or through the cascade; JSON reports, charts, the papers' table (table.md, table.json) and the problems."""

from __future__ import annotations

import argparse
import json
import shlex
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
COLUMNS = ("image", "label", "boxes", "explanation", "source", "id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model_flag(parser)
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (peft) applied to the base model")
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="SPEC",
        help="an image folder (0_real/ 1_fake/ per generator), a .json/.jsonl manifest, Parquet, a dataset saved by "
        "`datasets`, hf:NAME[:SPLIT] (the hub, when reachable), or a folder `zoomguard collect` wrote",
    )
    settings_flag(parser, "--format", "evaluation.dataset.format")
    settings_flag(parser, "--split", "evaluation.split")
    settings_flag(parser, "--stages", "evaluation.stages")
    settings_flag(parser, "--bank", "evaluation.bank_csv", metavar="CSV")
    settings_flag(parser, "--label-map", "evaluation.dataset.label_map", metavar="VALUE=LABEL[,...]")
    for column in COLUMNS:
        settings_flag(parser, f"--{column}-column", f"evaluation.dataset.columns.{column}", metavar="NAME")
    settings_flag(parser, "--image-root", "evaluation.dataset.image_root", metavar="DIR")
    settings_flag(parser, "--source-depth", "evaluation.dataset.source_depth")
    settings_flag(parser, "--dataset-name", "evaluation.dataset.name")
    settings_flag(parser, "--max-problem-rate", "evaluation.dataset.max_problem_rate")
    settings_flag(parser, "--ai-threshold", "detector.ai_threshold")
    settings_flag(parser, "--real-threshold", "detector.real_threshold")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="output folder (default eval-out)")
    settings_flag(parser, "--concurrency", "evaluation.concurrency")
    server_flag(parser)
    config_flag(parser)
    progress_flag(parser)


def run_eval(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.evaluation.runner import evaluate_stages

    quiet_engine_logs()
    settings = settings_from(args)
    run = asyncio.run(
        evaluate_stages(
            settings.engine,
            settings.detector,
            settings.evaluation,
            args.dataset,
            args.out,
            adapter=str(args.adapter) if args.adapter else None,
            split=args.split,
            evidence=settings.evidence,
            known=settings.known,
            command=shlex.join(["zoomguard", *getattr(args, "command_line", ["eval", "..."])]),
            progress=not args.no_progress,
        )
    )
    stages = {r.spec.role: {key: r.metrics.get(key) for key in SUMMARY_KEYS} for r in run.results}
    dataset = {key: run.dataset.get(key) for key in ("name", "format", "fingerprint", "items")}
    summary = {
        "model": run.results[0].model.model_dump(),
        "metrics": next(iter(stages.values())),
        "stages": stages,
        "dataset": {**dataset, "problems": len(run.problems)},
        "out": str(args.out),
    }
    print(json.dumps(summary))
    problems = f"{len(run.problems)} ({args.out / 'problems.jsonl'})"
    print(f"table: {args.out / 'table.md'}; problems: {problems}", file=sys.stderr)
    return 0


COMMAND = Command(
    "eval",
    "accuracy, per generator and per stage, F1, AUROC, ECE, box IoU of a model on a benchmark or collected split",
    add_arguments,
    run_eval,
)

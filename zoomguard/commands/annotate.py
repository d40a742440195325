"""`zoomguard annotate`: fill missing explanations and boxes in a dataset from a teacher model on vLLM."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zoomguard.commands.common import Command
from zoomguard.commands.flags import config_flag, progress_flag, settings_flag, settings_from

if TYPE_CHECKING:
    from zoomguard.app.config import Settings
    from zoomguard.dataset.teacher_report import AnnotateReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", type=Path, help="dataset directory from `zoomguard collect` (default review.dataset_dir)"
    )
    settings_flag(parser, "--server", "annotate.server_urls", metavar="URL")
    settings_flag(parser, "--model", "annotate.model")
    settings_flag(parser, "--family", "annotate.model_family")
    settings_flag(parser, "--concurrency", "annotate.concurrency")
    parser.add_argument("--no-cache", action="store_true", help="ask the teacher again even for cached answers")
    config_flag(parser)
    progress_flag(parser)


def run_annotate(args: argparse.Namespace) -> int:
    import asyncio

    settings = settings_from(args)
    dataset = args.dataset or Path(settings.review.dataset_dir)
    report = asyncio.run(_run(settings, dataset, use_cache=not args.no_cache, progress=not args.no_progress))
    print(json.dumps({**report.summary(), "dataset": str(dataset)}))
    unavailable = report.failed.get("teacher_unavailable", 0)
    return 1 if unavailable and not (report.annotated or report.from_cache) else 0


COMMAND = Command(
    "annotate",
    "a teacher model (vLLM OpenAI API) explains and grounds labels that lack them",
    add_arguments,
    run_annotate,
)


async def _run(settings: Settings, dataset: Path, *, use_cache: bool, progress: bool) -> AnnotateReport:
    from tqdm import tqdm

    from zoomguard.dataset.teacher_labels import annotate_with_teacher

    bar = tqdm(desc="annotate", unit="img", file=sys.stderr, disable=not progress)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        return await annotate_with_teacher(
            settings.annotate,
            settings.engine,
            settings.detector.limits,
            dataset,
            use_cache=use_cache,
            progress=advance,
        )
    finally:
        bar.close()

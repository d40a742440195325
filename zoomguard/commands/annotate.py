"""`zoomguard annotate`: fill missing explanations and boxes in a dataset from a teacher model on vLLM."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoomguard.app.config import Settings
    from zoomguard.dataset.teacher_report import AnnotateReport


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "annotate", help="a teacher model (vLLM OpenAI API) explains and grounds labels that lack them"
    )
    parser.add_argument(
        "--dataset", type=Path, help="dataset directory from `zoomguard collect` (default review.dataset_dir)"
    )
    parser.add_argument("--server", action="append", metavar="URL", help="teacher vLLM server (repeatable)")
    parser.add_argument("--model", help="the teacher's served model name (default: ask /v1/models)")
    parser.add_argument("--family", help="teacher family: qwen2_5_vl, qwen2_vl, qwen3_vl (default: auto)")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default annotate.concurrency)")
    parser.add_argument("--no-cache", action="store_true", help="ask the teacher again even for cached answers")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.app.config import load_settings

    teacher: dict[str, Any] = {}
    for key, value in (
        ("server_urls", args.server),
        ("model", args.model),
        ("model_family", args.family),
        ("concurrency", args.concurrency),
    ):
        if value:
            teacher[key] = value
    settings = load_settings(args.config, {"annotate": teacher} if teacher else {})
    dataset = args.dataset or Path(settings.review.dataset_dir)
    report = asyncio.run(_run(settings, dataset, use_cache=not args.no_cache, progress=not args.no_progress))
    print(json.dumps({**report.summary(), "dataset": str(dataset)}))
    unavailable = report.failed.get("teacher_unavailable", 0)
    return 1 if unavailable and not (report.annotated or report.from_cache) else 0


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

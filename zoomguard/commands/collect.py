"""`zoomguard collect`: the review decisions topic -> a training dataset directory (Parquet shards)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from zoomguard.commands.common import Command
from zoomguard.commands.flags import config_flag, kafka_flags, progress_flag, settings_from

MAX_PRINTED_SKIPS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="dataset directory (default review.dataset_dir)")
    kafka_flags(parser)
    config_flag(parser)
    progress_flag(parser)


def run_collect(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.app.retrain import collect_dataset

    settings = settings_from(args)
    out = args.out or Path(settings.review.dataset_dir)
    with _Bars(disabled=args.no_progress) as bars:
        report = asyncio.run(collect_dataset(settings, out, progress=bars.update))
    for skipped in report.skipped_events[:MAX_PRINTED_SKIPS]:
        print(f"skipped {skipped['event_id']}: {skipped['reason']} ({skipped['detail']})", file=sys.stderr)
    if len(report.skipped_events) > MAX_PRINTED_SKIPS:
        print(f"... and {len(report.skipped_events) - MAX_PRINTED_SKIPS} more (see manifest.json)", file=sys.stderr)
    print(json.dumps({**report.summary(), "dataset": str(out)}))
    return 0


COMMAND = Command(
    "collect",
    "review decisions -> training dataset (latest decision per event, images included)",
    add_arguments,
    run_collect,
)


class _Bars:
    """One tqdm bar per stage (decisions, review, images) on stderr."""

    def __init__(self, disabled: bool):
        self._disabled = disabled
        self._bars: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.close()

    def update(self, stage: str, done: int, total: int) -> None:
        if self._disabled:
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(desc=f"collect {stage}", unit="rec", file=sys.stderr)
        bar.total = total
        bar.n = done
        bar.refresh()

"""`zoomguard collect`: the review decisions topic -> a training dataset directory (Parquet shards)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MAX_PRINTED_SKIPS = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "collect", help="review decisions -> training dataset (latest decision per event, images included)"
    )
    parser.add_argument("--out", type=Path, help="dataset directory (default review.dataset_dir)")
    parser.add_argument("--bootstrap-servers", help="Kafka host:port[,host:port...]")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    import asyncio

    from zoomguard.app.config import load_settings
    from zoomguard.dataset.collect import collect

    overrides: dict[str, Any] = {}
    if args.bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    settings = load_settings(args.config, overrides)
    out = args.out or Path(settings.review.dataset_dir)
    with _Bars(disabled=args.no_progress) as bars:
        report = asyncio.run(
            collect(
                out,
                kafka=settings.kafka,
                decisions_topic=settings.topics.review_decisions,
                review_topic=settings.topics.review,
                review=settings.review,
                fetch=settings.fetch,
                limits=settings.detector.limits,
                progress=bars.update,
            )
        )
    for skipped in report.skipped_events[:MAX_PRINTED_SKIPS]:
        print(f"skipped {skipped['event_id']}: {skipped['reason']} ({skipped['detail']})", file=sys.stderr)
    if len(report.skipped_events) > MAX_PRINTED_SKIPS:
        print(f"... and {len(report.skipped_events) - MAX_PRINTED_SKIPS} more (see manifest.json)", file=sys.stderr)
    print(json.dumps({**report.summary(), "dataset": str(out)}))
    return 0


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

"""`zoomguard bank import|export|remove|feed`: the known-content bank as hash lists (CSV), in and out of its
topic, and reviewers' decisions into it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from zoomguard.commands.common import Command
from zoomguard.commands.flags import config_flag, kafka_flags, settings_from

MAX_LISTED_PROBLEMS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bank_command", required=True)
    importer = actions.add_parser("import", help="a hash list (CSV: pdq,label,quality,source,decided_at,note) -> bank")
    importer.add_argument("file", type=Path, help="the CSV file ('-': stdin)")
    importer.add_argument("--list-name", help="decided_by for rows without a source (default: the file's name)")
    importer.add_argument("--dry-run", action="store_true", help="check and report, publish nothing")
    exporter = actions.add_parser("export", help="the bank as it is now -> CSV")
    exporter.add_argument("--out", default="-", help="CSV file to write (default '-': stdout)")
    remover = actions.add_parser("remove", help="delete entries by id (tombstones: every worker drops them)")
    remover.add_argument("entry_ids", nargs="+", help="entry ids, e.g. review:<event_id> or import:<pdq>")
    feeder = actions.add_parser("feed", help="review decisions -> bank entries, until SIGTERM/SIGINT")
    for sub in (importer, exporter, remover, feeder):
        kafka_flags(sub)
        config_flag(sub)


def run(args: argparse.Namespace) -> int:
    actions = {"import": run_import, "export": run_export, "remove": run_remove, "feed": run_feed}
    return actions[args.bank_command](args)


COMMAND = Command(
    "bank", "the known-content bank: import and export hash lists, remove entries, feed decisions", add_arguments, run
)


def run_import(args: argparse.Namespace) -> int:
    from zoomguard.app.bank import ensure_bank_topic, publish_entries
    from zoomguard.known.csv_io import import_csv

    settings = settings_from(args)
    name = args.list_name or ("stdin" if str(args.file) == "-" else args.file.name)
    if str(args.file) == "-":
        result = import_csv(sys.stdin, now=datetime.now(UTC), list_name=name)
    else:
        with args.file.open(newline="", encoding="utf-8-sig") as stream:
            result = import_csv(stream, now=datetime.now(UTC), list_name=name)
    for problem in result.problems[:MAX_LISTED_PROBLEMS]:
        print(f"line {problem.line}: {problem.reason}", file=sys.stderr)
    if len(result.problems) > MAX_LISTED_PROBLEMS:
        print(f"... and {len(result.problems) - MAX_LISTED_PROBLEMS} more rows refused", file=sys.stderr)
    topic = settings.topics.known
    if args.dry_run:
        print(f"{len(result.entries)} entries would be published to {topic}; {len(result.problems)} rows refused")
        return 0
    ensure_bank_topic(settings.kafka, topic)
    sent = publish_entries(settings.kafka, topic, result.entries, settings.known.io_timeout_s)
    print(f"{sent} entries published to {topic}; {len(result.problems)} rows refused")
    return 1 if result.problems and not result.entries else 0


def run_export(args: argparse.Namespace) -> int:
    from zoomguard.app.bank import read_bank
    from zoomguard.known.csv_io import export_csv

    settings = settings_from(args)
    skipped: list[str] = []
    entries = read_bank(settings.kafka, settings.topics.known, settings.known.io_timeout_s, skipped.append)
    if args.out == "-":
        count = export_csv(entries, sys.stdout)
    else:
        with Path(args.out).open("w", newline="", encoding="utf-8") as stream:
            count = export_csv(entries, stream)
    print(f"{count} entries exported; {len(skipped)} unreadable records skipped", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from zoomguard.app.bank import ensure_bank_topic, publish_entries
    from zoomguard.known.bank import Removal

    settings = settings_from(args)
    ensure_bank_topic(settings.kafka, settings.topics.known)
    sent = publish_entries(
        settings.kafka, settings.topics.known, [Removal(i) for i in args.entry_ids], settings.known.io_timeout_s
    )
    print(f"{sent} entries removed from {settings.topics.known}")
    return 0


def run_feed(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from zoomguard.app.bank_feed import feed_bank
    from zoomguard.telemetry.logs import configure_logging

    settings = settings_from(args)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_json)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        stats = await feed_bank(settings, stop)
        print(f"{stats.published} entries published; {stats.unjoinable} decisions not joined, {stats.invalid} invalid")
        return 0

    return asyncio.run(serve())

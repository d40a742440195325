"""`zoomguard review export|import|webhook`: Label Studio tasks out, reviewers' decisions in."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoomguard.app.config import Settings
from zoomguard.commands.common import Command
from zoomguard.commands.flags import config_flag, kafka_flags, progress_flag, settings_flag, settings_from
from zoomguard.errors import BadInputError, UnavailableError

MAX_LISTED_SKIPS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="review_command", required=True)

    export = actions.add_parser("export", help="the review topic as a Label Studio task import file (JSON)")
    export.add_argument("--out", default="review-tasks.json", help="task file to write ('-': stdout)")
    progress_flag(export)
    _common(export)

    importer = actions.add_parser("import", help="a Label Studio export (JSON or JSON-MIN) -> ReviewDecision events")
    importer.add_argument("file", type=Path, help="the exported file")
    importer.add_argument("--dry-run", action="store_true", help="parse and report, publish nothing")
    _common(importer)

    webhook = actions.add_parser("webhook", help="receive Label Studio annotation webhooks (until SIGTERM/SIGINT)")
    settings_flag(webhook, "--host", "review.webhook_host")
    settings_flag(webhook, "--port", "review.webhook_port")
    _common(webhook)


def _common(parser: argparse.ArgumentParser) -> None:
    kafka_flags(parser)
    config_flag(parser)


def run(args: argparse.Namespace) -> int:
    action = {"export": run_export, "import": run_import, "webhook": run_webhook}[args.review_command]
    return action(args)


COMMAND = Command("review", "human review: Label Studio tasks out, decisions in (file or webhook)", add_arguments, run)


# ---------------------------------------------------------------- export


def run_export(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from tqdm import tqdm

    from zoomguard.kafka.reading import read_to_end
    from zoomguard.review.ls_export import ReadRequest, export_tasks
    from zoomguard.schemas.events import ReviewRequest

    settings = settings_from(args)
    topic = settings.topics.review
    bar = tqdm(desc=f"export {topic}", unit="rec", file=sys.stderr, disable=args.no_progress)
    unreadable = 0

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    def requests() -> Iterator[ReadRequest]:
        nonlocal unreadable
        for record in read_to_end(settings.kafka, topic, timeout_s=settings.review.export_timeout_s, progress=progress):
            try:
                yield ReadRequest(ReviewRequest.model_validate_json(record.value), record.partition, record.offset)
            except (ValidationError, ValueError, TypeError):
                unreadable += 1

    try:
        tasks, problems = export_tasks(requests())
    finally:
        bar.close()
    _write_json(args.out, tasks)
    where = "stdout" if args.out == "-" else args.out
    print(
        f"exported {len(tasks)} tasks from {topic} to {where}"
        + (f"; {unreadable} unreadable records skipped" if unreadable else "")
        + "".join(f"; {n} skipped: {reason}" for reason, n in sorted(problems.items())),
        file=sys.stderr,
    )
    return 0


def _write_json(out: str, document: Any) -> None:
    """Atomically (a temp file in the same folder, then renamed), so a failed export never leaves half a file."""
    text = json.dumps(document, indent=1, ensure_ascii=False)
    if out == "-":
        sys.stdout.write(text + "\n")
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            sink.write(text + "\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- import


def run_import(args: argparse.Namespace) -> int:
    from zoomguard.review.labelstudio import parse_export

    settings = settings_from(args)
    payload = _read_export(args.file, settings.review.import_max_bytes)
    result = parse_export(payload)
    for skipped in result.skipped[:MAX_LISTED_SKIPS]:
        detail = f" ({skipped.detail})" if skipped.detail else ""
        print(f"skipped {skipped.where}: {skipped.reason}{detail}", file=sys.stderr)
    if len(result.skipped) > MAX_LISTED_SKIPS:
        print(f"... and {len(result.skipped) - MAX_LISTED_SKIPS} more skipped", file=sys.stderr)
    for note in result.notes():
        print(f"note: {note}", file=sys.stderr)
    if result.decisions and not args.dry_run:
        _publish(settings, result.decisions)
    summary = {**result.summary(), "topic": settings.topics.review_decisions, "dry_run": bool(args.dry_run)}
    print(json.dumps(summary))
    return 0 if result.decisions else 1


def _read_export(path: Path, limit: int) -> Any:
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    size = path.stat().st_size
    if size > limit:
        raise BadInputError(f"{path} is {size} bytes; review.import_max_bytes allows {limit}")
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path} is not JSON: {exc}") from None


def _publish(settings: Settings, decisions: list[Any]) -> None:
    from kafka.errors import KafkaError

    from zoomguard.review.publisher import DecisionPublisher

    try:
        publisher = DecisionPublisher(settings.kafka, settings.topics.review_decisions, settings.review.ack_timeout_s)
    except KafkaError as exc:
        raise UnavailableError(f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc!r}") from exc
    try:
        publisher.publish(decisions)
    finally:
        publisher.close()


# ---------------------------------------------------------------- webhook


def run_webhook(args: argparse.Namespace) -> int:
    """Answers Label Studio once a decision is spooled; the flusher publishes it whenever the broker is up."""
    from zoomguard.review.publisher import DecisionPublisher, spool_publisher
    from zoomguard.review.webhook import WebhookService
    from zoomguard.telemetry.logs import configure_logging

    settings = settings_from(args)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_json)
    review = settings.review

    def connect() -> DecisionPublisher:
        return spool_publisher(settings.kafka, settings.topics.review_decisions, review.ack_timeout_s)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service = WebhookService(review, connect).start()
    print(
        f"review webhook on http://{review.webhook_host}:{service.port}{review.webhook_path}"
        f" (spool {review.webhook_spool_dir})",
        file=sys.stderr,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
    return 0

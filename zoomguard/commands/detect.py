"""`zoomguard detect`: run ZoomIn on files, many at once through one engine, results in input order."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from zoomguard.app.config import Settings
from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.flags import config_flag, family_flag, model_flag, progress_flag, server_flag, settings_from
from zoomguard.detector.drawing import annotate
from zoomguard.errors import ZoomguardError
from zoomguard.media.images import decode_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import SCHEMA_VERSION, Detection, ErrorInfo

if TYPE_CHECKING:
    from zoomguard.worker.cascade import Cascade


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="image files")
    model_flag(parser)
    server_flag(parser)
    family_flag(parser)
    config_flag(parser)
    parser.add_argument("--json", action="store_true", help="one JSON line per input, in input order")
    parser.add_argument("--annotate", metavar="OUTDIR", type=Path, help="write each image with its boxes (PNG)")
    parser.add_argument("--concurrency", type=int, default=64, help="images in flight at once (default 64)")
    progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    quiet_engine_logs()
    return asyncio.run(
        run_detect(
            settings_from(args),
            args.paths,
            as_json=args.json,
            annotate_dir=args.annotate,
            concurrency=args.concurrency,
            progress=not args.no_progress,
        )
    )


COMMAND = Command("detect", "run ZoomIn on image files and print one result per input", add_arguments, run)


@dataclass(frozen=True)
class DetectOutcome:
    """One input's result: a detection or an error, never both."""

    input: str
    detection: Detection | None = None
    error: ErrorInfo | None = None

    def to_json(self) -> dict[str, Any]:
        if self.detection is not None:
            return {"input": self.input, **self.detection.model_dump(mode="json")}
        assert self.error is not None
        return {"schema_version": SCHEMA_VERSION, "input": self.input, "error": self.error.model_dump()}


async def run_detect(
    settings: Settings,
    paths: Sequence[str],
    *,
    as_json: bool,
    annotate_dir: Path | None,
    concurrency: int,
    out: TextIO = sys.stdout,
    progress: bool = True,
) -> int:
    """Detect every path; print each result as soon as all earlier ones are printed. Exit status 0/1."""
    from zoomguard.detector.factory import build_detector, build_engine
    from zoomguard.evidence.reader import build_pixel_reader, build_reader
    from zoomguard.worker.cascade import Cascade

    engine = build_engine(settings.engine, settings.detector)
    await engine.start()
    try:
        detector = build_detector(settings.engine, settings.detector, engine)
        cascade = Cascade(
            detector,
            build_reader(settings.evidence),
            settings.evidence,
            settings.detector.limits,
            read_pixels=build_pixel_reader(settings.evidence),
        )
        annotations = _Annotations(annotate_dir, settings.detector.limits) if annotate_dir is not None else None
        outcomes = await _detect_all(cascade, paths, annotations, concurrency, out, as_json, progress)
    finally:
        await engine.close()
    if not as_json:
        _print_table(outcomes, out)
    return 0 if all(o.error is None for o in outcomes) else 1


async def _detect_all(
    detector: Cascade,
    paths: Sequence[str],
    annotations: _Annotations | None,
    concurrency: int,
    out: TextIO,
    as_json: bool,
    progress: bool,
) -> list[DetectOutcome]:
    limit = asyncio.Semaphore(concurrency)
    done: dict[int, DetectOutcome] = {}
    printed = 0
    bar = tqdm(total=len(paths), desc="detect", unit="img", file=sys.stderr, disable=not progress)

    async def one(index: int, path: str) -> None:
        nonlocal printed
        async with limit:
            done[index] = await _detect_one(detector, path, index, annotations)
        bar.update(1)
        while printed in done and as_json:
            print(json.dumps(done[printed].to_json()), file=out, flush=True)
            printed += 1

    try:
        await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
    finally:
        bar.close()
    return [done[i] for i in range(len(paths))]


@dataclass(frozen=True)
class _Annotations:
    """Where annotated copies go, decoded with the same limits as the detection itself."""

    out_dir: Path
    limits: ImageLimits


async def _detect_one(detector: Cascade, path: str, index: int, annotations: _Annotations | None) -> DetectOutcome:
    try:
        data = await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        return DetectOutcome(path, error=ErrorInfo(kind="io", message=f"{exc.strerror or exc}: {path}"))
    try:
        detection = await detector.detect_bytes(data, request_id=f"detect-{index}")
        if annotations is not None:
            await asyncio.to_thread(_write_annotation, data, detection, annotations, path, index)
    except ZoomguardError as exc:
        return DetectOutcome(path, error=ErrorInfo(kind=exc.kind, message=str(exc)))
    except Exception as exc:  # a bug on one input must not cost the other inputs their lines
        _log().exception("detect failed unexpectedly", input=path)
        return DetectOutcome(path, error=ErrorInfo(kind="internal_error", message=f"{type(exc).__name__}: {exc}"))
    return DetectOutcome(path, detection=detection)


def _write_annotation(data: bytes, detection: Detection, annotations: _Annotations, path: str, index: int) -> None:
    annotations.out_dir.mkdir(parents=True, exist_ok=True)
    image = decode_image(data, annotations.limits).image
    annotate(image, detection).save(annotations.out_dir / f"{index:04d}-{Path(path).stem}.png", format="PNG")


def _print_table(outcomes: Sequence[DetectOutcome], out: TextIO) -> None:
    rows = [("input", "decision", "by", "p_ai", "regions", "explanation / error")]
    for outcome in outcomes:
        name = Path(outcome.input).name
        if outcome.detection is not None:
            d = outcome.detection
            p_ai = "-" if d.p_ai is None else f"{d.p_ai:.3f}"
            explained = _short(d.explanation or d.reason or "")
            rows.append((name, d.decision, d.decision_source, p_ai, str(len(d.regions)), explained))
        elif outcome.error is not None:
            rows.append((name, "error", "-", "-", "-", f"{outcome.error.kind}: {_short(outcome.error.message)}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5], file=out)


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _log() -> Any:
    import structlog  # here, not at import: building the CLI's parser imports this module

    return structlog.get_logger("zoomguard.detect")

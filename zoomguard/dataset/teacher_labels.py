"""`zoomguard annotate`: a teacher model (vLLM's OpenAI-compatible API) explains and grounds known labels.

Records with a label but no explanation or no boxes get the teacher's, many requests at once; what a
reviewer wrote stays. Answers are also appended to a cache file in the dataset directory (keyed by event,
image digest and label), because `collect` rewrites the dataset and the teacher is the expensive part:
the next run reuses them instead of asking again.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoomguard.app.config import Settings
from zoomguard.dataset.records import MANIFEST, SPLITS, TrainingRecord, read_manifest, read_split, write_dataset
from zoomguard.dataset.teacher import (
    TeacherAnswer,
    fill,
    need_of,
    read_teacher_answer,
    teacher_prompt,
    teacher_schema,
)
from zoomguard.detector.engines.base import Engine, GenerationRequest, Turn
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.families import ModelFamily, resolve_family
from zoomguard.errors import BadInputError, ConfigError, EngineUnavailableError, UnavailableError
from zoomguard.media.images import decode_image, resize_to

Progress = Callable[[int, int], None]
MAX_CACHE_LINE = 1024 * 1024


@dataclass
class AnnotateReport:
    records: int = 0
    complete: int = 0  # needed nothing
    requests: int = 0
    from_cache: int = 0
    annotated: int = 0
    explanations_added: int = 0
    boxes_added: int = 0
    boxes_proposed: int = 0  # regions in the teacher's usable answers
    boxes_dropped: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    filled: dict[str, list[str]] = field(default_factory=dict)  # event_id -> fields the teacher wrote
    teacher: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "records": self.records,
            "complete": self.complete,
            "requests": self.requests,
            "from_cache": self.from_cache,
            "annotated": self.annotated,
            "explanations_added": self.explanations_added,
            "boxes_added": self.boxes_added,
            "boxes_proposed": self.boxes_proposed,
            "boxes_dropped": self.boxes_dropped,
            "failed": dict(sorted(self.failed.items())),
        }


def teacher_engine_settings(settings: Settings) -> EngineSettings:
    """Server-mode engine settings for the teacher: annotate's servers, else the detector's servers."""
    teacher = settings.annotate
    own = bool(teacher.server_urls)
    if not (own or settings.engine.server_urls):
        raise ConfigError("annotate needs a teacher server: --server URL (or annotate.server_urls)")
    return settings.engine.model_copy(
        update={
            "mode": "server",
            "model": "",
            "lora_adapter": "",
            "server_urls": teacher.server_urls if own else settings.engine.server_urls,
            "served_model_name": teacher.model or ("" if own else settings.engine.served_model_name),
            "api_key": teacher.api_key or (None if own else settings.engine.api_key),
            "request_timeout_s": teacher.request_timeout_s,
        }
    )


async def annotate_with_teacher(
    settings: Settings, dataset_dir: Path, *, use_cache: bool = True, progress: Progress | None = None
) -> AnnotateReport:
    """annotate_dataset with the configured teacher servers (what the command and `retrain` call)."""
    from zoomguard.detector.engines.openai_server import OpenAIServerEngine

    engine = OpenAIServerEngine(teacher_engine_settings(settings))
    await engine.start()
    try:
        return await annotate_dataset(settings, dataset_dir, engine, use_cache=use_cache, progress=progress)
    finally:
        await engine.close()


async def annotate_dataset(
    settings: Settings,
    dataset_dir: Path,
    engine: Engine,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> AnnotateReport:
    """Fill missing explanations and boxes from the teacher, then write the dataset back in place."""
    if not (dataset_dir / MANIFEST).is_file():
        raise BadInputError(f"{dataset_dir} is not a dataset (no {MANIFEST}; run `zoomguard collect` first)")
    splits = {split: await asyncio.to_thread(read_split, dataset_dir, split) for split in SPLITS}
    report = AnnotateReport(records=sum(len(rows) for rows in splits.values()))
    teacher = _Teacher(settings, engine, _family(settings, engine))
    report.teacher = engine.model_name
    cache = TeacherCache(dataset_dir / settings.annotate.cache_file, engine.model_name) if use_cache else None
    gate = asyncio.Semaphore(settings.annotate.concurrency)
    todo = [r for rows in splits.values() for r in rows if need_of(r, settings.annotate).any]
    report.complete = report.records - len(todo)
    done = 0

    async def one(record: TrainingRecord) -> TrainingRecord:
        nonlocal done
        answer = cache.get(record) if cache else None
        if answer is not None:
            report.from_cache += 1
        else:
            async with gate:
                answer = await teacher.ask(record)
            if cache and answer.error is None:
                cache.put(record, answer)
        updated = _apply(record, answer, report)
        done += 1
        if progress is not None:
            progress(done, len(todo))
        return updated

    updated = {r.event_id: r for r in await asyncio.gather(*(one(r) for r in todo))}
    report.requests = teacher.requests
    records = [updated.get(r.event_id, r) for rows in splits.values() for r in rows]
    manifest = {k: v for k, v in read_manifest(dataset_dir).items() if k != "counts"}
    manifest["annotate"] = {**report.summary(), "filled": dict(sorted(report.filled.items()))}
    await asyncio.to_thread(write_dataset, dataset_dir, records, manifest)
    return report


def _apply(record: TrainingRecord, answer: TeacherAnswer, report: AnnotateReport) -> TrainingRecord:
    if answer.error is not None:
        report.failed[answer.error] += 1
        return record
    report.boxes_proposed += len(answer.boxes) + answer.dropped
    report.boxes_dropped += answer.dropped
    updated, filled = fill(record, answer)
    if not (filled.explanation or filled.boxes):
        report.failed["nothing_usable"] += 1
        return updated
    report.annotated += 1
    report.explanations_added += filled.explanation
    report.boxes_added += len(updated.boxes) if filled.boxes else 0
    report.filled[record.event_id] = [
        name for name, on in (("explanation", filled.explanation), ("boxes", filled.boxes)) if on
    ]
    return updated


def _family(settings: Settings, engine: Engine) -> ModelFamily:
    name = settings.annotate.model or engine.model_name
    if not name and settings.annotate.model_family == "auto":
        raise UnavailableError("no teacher server answered /v1/models (set annotate.model and annotate.model_family)")
    return resolve_family(name, settings.annotate.model_family)


class _Teacher:
    """One request per record: the image at the teacher's size, the prompt, the pinned-verdict schema."""

    def __init__(self, settings: Settings, engine: Engine, family: ModelFamily):
        self._settings = settings.annotate
        self._limits = settings.detector.limits
        self._engine = engine
        self._family = family
        self.requests = 0  # requests sent to the teacher

    async def ask(self, record: TrainingRecord) -> TeacherAnswer:
        try:
            decoded = await asyncio.to_thread(decode_image, record.image_bytes, self._limits)
        except BadInputError as exc:
            return TeacherAnswer(error=exc.kind)
        original = (decoded.width, decoded.height)
        size = self._family.model_size(*original, self._settings.min_pixels, self._settings.max_pixels)
        image = await asyncio.to_thread(resize_to, decoded.image, size)
        request = GenerationRequest(
            request_id=f"annotate:{record.event_id}",
            turns=(Turn("user", teacher_prompt(record, self._family, size, self._settings), (image,)),),
            json_schema=teacher_schema(record.label, self._family, self._settings),
            max_tokens=self._settings.max_tokens,
            top_logprobs=1,
            temperature=self._settings.temperature,
        )
        self.requests += 1
        try:
            generation = await self._engine.generate(request)
        except EngineUnavailableError:
            return TeacherAnswer(error="teacher_unavailable")
        except BadInputError:  # the server refused this input (too large for its context, ...)
            return TeacherAnswer(error="teacher_refused")
        return read_teacher_answer(generation.text, record.label, self._family, size, original, self._settings)


class TeacherCache:
    """Usable teacher answers by (event_id, image sha256, label), appended as they arrive (JSON lines)."""

    def __init__(self, path: Path, teacher: str):
        self._path = path
        self._teacher = teacher
        self._answers: dict[tuple[str, str, str], TeacherAnswer] = {}
        if path.is_file():
            with path.open("rb") as source:
                for line in source:
                    self._load(line)

    def _load(self, line: bytes) -> None:
        if len(line) > MAX_CACHE_LINE:
            return
        try:
            item = json.loads(line)
            key = (str(item["event_id"]), str(item["image_sha256"]), str(item["label"]))
            answer = TeacherAnswer(
                explanation=str(item["explanation"]),
                boxes=tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in item["boxes"]),
                findings=tuple(str(f) for f in item["findings"]),
            )
        except (ValueError, KeyError, TypeError):
            return  # a torn or foreign line: ask the teacher again
        if len(answer.findings) == len(answer.boxes):
            self._answers[key] = answer

    def get(self, record: TrainingRecord) -> TeacherAnswer | None:
        return self._answers.get((record.event_id, record.image_sha256, record.label))

    def put(self, record: TrainingRecord, answer: TeacherAnswer) -> None:
        self._answers[(record.event_id, record.image_sha256, record.label)] = answer
        line = {
            "event_id": record.event_id,
            "image_sha256": record.image_sha256,
            "label": record.label,
            "teacher": self._teacher,
            "explanation": answer.explanation,
            "boxes": [list(box) for box in answer.boxes],
            "findings": list(answer.findings),
        }
        with self._path.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(line) + "\n")

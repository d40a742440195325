"""`zoomguard annotate`: a teacher model (vLLM's OpenAI-compatible API) explains and grounds known labels.

Records with a label but no explanation or no boxes get the teacher's, many requests at once; what a
reviewer wrote stays. Answers are also appended to a cache file in the dataset directory (teacher_cache.py),
because `collect` rewrites the dataset and the teacher is the expensive part: the next run reuses them
instead of asking again. This module does the I/O (the server, image decoding, the dataset files); what
to ask and how an answer fills a record are pure (teacher.py, teacher_report.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from zoomguard.dataset.records import MANIFEST, SPLITS, TrainingRecord, read_manifest, read_split, write_dataset
from zoomguard.dataset.settings import AnnotateSettings
from zoomguard.dataset.teacher import (
    TeacherAnswer,
    need_of,
    read_teacher_answer,
    teacher_engine_settings,
    teacher_family,
    teacher_request,
)
from zoomguard.dataset.teacher_cache import TeacherCache
from zoomguard.dataset.teacher_report import AnnotateReport, apply_answer
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.families import ModelFamily
from zoomguard.errors import BadInputError, EngineUnavailableError
from zoomguard.media.images import ImageLimits, decode_image, resize_to

Progress = Callable[[int, int], None]


async def annotate_with_teacher(
    annotate: AnnotateSettings,
    engine: EngineSettings,
    limits: ImageLimits,
    dataset_dir: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> AnnotateReport:
    """annotate_dataset with the configured teacher servers (what the command and `retrain` call).

    `engine` is the detector's engine section: its servers are the teacher's when annotate names none."""
    from zoomguard.detector.engines.openai_server import OpenAIServerEngine

    teacher = OpenAIServerEngine(teacher_engine_settings(annotate, engine))
    await teacher.start()
    try:
        return await annotate_dataset(annotate, limits, dataset_dir, teacher, use_cache=use_cache, progress=progress)
    finally:
        await teacher.close()


async def annotate_dataset(
    annotate: AnnotateSettings,
    limits: ImageLimits,
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
    teacher = _Teacher(annotate, limits, engine, teacher_family(annotate, engine.model_name))
    report.teacher = engine.model_name
    cache = TeacherCache(dataset_dir / annotate.cache_file, engine.model_name) if use_cache else None
    gate = asyncio.Semaphore(annotate.concurrency)
    todo = [r for rows in splits.values() for r in rows if need_of(r, annotate).any]
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
        updated = apply_answer(record, answer, report)
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


class _Teacher:
    """Decodes each record's image, sizes it for the teacher, asks, and reads the answer back."""

    def __init__(self, annotate: AnnotateSettings, limits: ImageLimits, engine: Engine, family: ModelFamily):
        self._settings = annotate
        self._limits = limits
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
        request = teacher_request(record, image, self._family, size, self._settings)
        self.requests += 1
        try:
            generation = await self._engine.generate(request)
        except EngineUnavailableError:
            return TeacherAnswer(error="teacher_unavailable")
        except BadInputError:  # the server refused this input (too large for its context, ...)
            return TeacherAnswer(error="teacher_refused")
        return read_teacher_answer(generation.text, record.label, self._family, size, original, self._settings)

"""The pure part of `zoomguard collect`: which decision counts, where its image comes from, the record.

Decisions are untrusted (any tool may publish them): unreadable ones are counted, never raised. The
image must be the ORIGINAL one (reviewers' boxes are in its pixels), so review thumbnails (data URIs in
Label Studio tasks) are never a source; when the review topic knows the image's sha256, an image with a
different digest is refused too (a URL whose content changed since the verdict).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from zoomguard.dataset.records import TrainingRecord, split_of
from zoomguard.detector.geometry import Box
from zoomguard.schemas.events import ImageEvent, ImageRef, ReviewRequest, SourceRecord
from zoomguard.schemas.review import ReviewDecision

MAX_SOURCE_CHARS = 200
MIN_BOX_SIDE = 1

CandidateKind = Literal["decision_image", "input_record", "task_url"]


@dataclass(frozen=True)
class RawRecord:
    """A Kafka record as far as collect cares: its value and where it sat."""

    value: bytes | None
    partition: int
    offset: int


@dataclass(frozen=True)
class ReviewContext:
    """What the review topic says about one event: where its input record is, what the model said."""

    content_id: str
    source: SourceRecord
    image_sha256: str
    width: int
    height: int
    served_p_ai: float | None
    served_model_version: str | None
    metadata_source: str
    task_image: str | None
    processed_at: datetime


@dataclass(frozen=True)
class ImageCandidate:
    """One place the original image may be found, tried in order."""

    kind: CandidateKind
    ref: ImageRef | None = None  # decision_image and task_url
    record: SourceRecord | None = None  # input_record


@dataclass(frozen=True)
class FoundImage:
    """The decoded original: bytes as received plus what decode_image measured."""

    data: bytes
    sha256: str
    width: int
    height: int
    event: ImageEvent | None = None  # the input record's event, when the image came from it


def latest_decisions(records: Iterable[RawRecord], skipped: Counter[str]) -> dict[str, ReviewDecision]:
    """One decision per event_id: the latest decided_at, ties broken by the later offset.

    Decisions are keyed by event_id, so one event's decisions share a partition and offsets order them.
    Unreadable records count as `invalid_decision`; superseded ones as `superseded`.
    """
    best: dict[str, tuple[datetime, int, ReviewDecision]] = {}
    for record in records:
        decision = _parse_decision(record.value)
        if decision is None:
            skipped["invalid_decision"] += 1
            continue
        rank = (decision.decided_at, record.offset)
        current = best.get(decision.event_id)
        if current is not None:
            skipped["superseded"] += 1
            if rank <= current[:2]:
                continue
        best[decision.event_id] = (*rank, decision)
    return {event_id: entry[2] for event_id, entry in best.items()}


def _parse_decision(value: bytes | None) -> ReviewDecision | None:
    if value is None:
        return None
    try:
        return ReviewDecision.model_validate_json(value)
    except (ValidationError, ValueError):
        return None


def review_contexts(records: Iterable[RawRecord], wanted: set[str], skipped: Counter[str]) -> dict[str, ReviewContext]:
    """The latest review request (by processed_at, then offset) of each wanted event."""
    best: dict[str, tuple[datetime, int, ReviewContext]] = {}
    for record in records:
        request = _parse_request(record.value)
        if request is None:
            skipped["invalid_review_request"] += 1
            continue
        if request.event_id not in wanted:
            continue
        context = _context(request)
        rank = (context.processed_at, record.offset)
        current = best.get(request.event_id)
        if current is None or rank > current[:2]:
            best[request.event_id] = (*rank, context)
    return {event_id: entry[2] for event_id, entry in best.items()}


def _parse_request(value: bytes | None) -> ReviewRequest | None:
    if value is None:
        return None
    try:
        return ReviewRequest.model_validate_json(value)
    except (ValidationError, ValueError):
        return None


def _context(request: ReviewRequest) -> ReviewContext:
    verdict = request.verdict
    data = request.label_studio_task.get("data")
    image = data.get("image") if isinstance(data, dict) else None
    raw_p_ai = verdict.p_ai_raw if verdict.p_ai_raw is not None else verdict.p_ai
    return ReviewContext(
        content_id=request.content_id,
        source=verdict.source,
        image_sha256=verdict.image.sha256,
        width=verdict.image.width,
        height=verdict.image.height,
        served_p_ai=raw_p_ai,
        served_model_version=verdict.model.version,
        metadata_source=_source_name(verdict.metadata),
        task_image=image if isinstance(image, str) else None,
        processed_at=verdict.processed_at,
    )


def image_candidates(decision: ReviewDecision, context: ReviewContext | None) -> list[ImageCandidate]:
    """Where to look, in order: the decision's own image, the original input record, the task's http(s) URL.

    A task's data URI is a reviewer thumbnail, never a training image, so it is not a candidate.
    """
    candidates: list[ImageCandidate] = []
    if decision.image is not None:
        candidates.append(ImageCandidate("decision_image", ref=decision.image))
    if context is not None:
        candidates.append(ImageCandidate("input_record", record=context.source))
        task_url = context.task_image
        if task_url and task_url.lower().startswith(("http://", "https://")):
            with contextlib.suppress(ValidationError):  # longer than ImageRef allows: not a usable URL
                candidates.append(ImageCandidate("task_url", ref=ImageRef(url=task_url)))
    return candidates


def event_from_record(value: bytes | None, event_id: str) -> ImageEvent:
    """The ImageEvent in an input record; ValueError when it is unreadable or belongs to another event."""
    if value is None:
        raise ValueError("the input record has no value")
    try:
        event = ImageEvent.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"the input record is not a valid ImageEvent ({exc.error_count()} errors)") from None
    if event.event_id != event_id:
        raise ValueError(f"the input record belongs to event {event.event_id!r}")
    return event


def check_digest(found: FoundImage, context: ReviewContext | None) -> str | None:
    """Why `found` is not the reviewed image (None when it is, or when the digest is unknown)."""
    if context is None or not context.image_sha256 or context.image_sha256 == found.sha256:
        return None
    return f"sha256 {found.sha256[:12]} differs from the reviewed image's {context.image_sha256[:12]}"


def build_record(
    decision: ReviewDecision, context: ReviewContext | None, image: FoundImage, test_fraction: float
) -> TrainingRecord:
    """The training record: reviewer's label, boxes (clamped to the image) and explanation, original bytes."""
    boxes: list[tuple[int, int, int, int]] = []
    findings: list[str] = []
    for region in decision.regions:
        box = Box(*map(float, region.box)).clamp(image.width, image.height)
        if box.width >= MIN_BOX_SIDE and box.height >= MIN_BOX_SIDE:
            boxes.append(box.rounded())
            findings.append(region.finding)
    event = image.event
    content_id = (context.content_id if context else "") or (event.content_id if event else "")
    return TrainingRecord(
        event_id=decision.event_id,
        content_id=content_id,
        label=decision.label,
        image_bytes=image.data,
        image_sha256=image.sha256,
        width=image.width,
        height=image.height,
        boxes=boxes,
        findings=findings,
        explanation=decision.explanation or None,
        source=_first_source(decision, context, event),
        reviewer=decision.reviewer,
        decided_at=decision.decided_at.isoformat(),
        served_p_ai=context.served_p_ai if context else None,
        served_model_version=context.served_model_version if context else None,
        split=split_of(image.sha256, test_fraction),
    )


def _first_source(decision: ReviewDecision, context: ReviewContext | None, event: ImageEvent | None) -> str:
    """The decision's source, else the upload's metadata["source"], else "unknown"."""
    for name in (
        decision.source,
        context.metadata_source if context else "",
        _source_name(event.metadata if event else {}),
    ):
        if name:
            return name
    return "unknown"


def _source_name(metadata: dict[str, Any]) -> str:
    value = metadata.get("source")
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_SOURCE_CHARS]
    return ""

"""Review requests -> a Label Studio task import file (the latest request per event_id)."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zoomguard.errors import BadInputError
from zoomguard.schemas.events import ReviewRequest


@dataclass(frozen=True)
class ReadRequest:
    """A ReviewRequest with where it was read from (to pick the latest per event_id)."""

    request: ReviewRequest
    partition: int
    offset: int


def latest_requests(items: Iterable[ReadRequest]) -> list[ReviewRequest]:
    """One request per event_id: the later offset in a partition, else the later processed_at."""
    latest: dict[str, ReadRequest] = {}
    for item in items:
        seen = latest.get(item.request.event_id)
        if seen is None or _newer(item, seen):
            latest[item.request.event_id] = item
    return [latest[key].request for key in sorted(latest)]


def _newer(item: ReadRequest, seen: ReadRequest) -> bool:
    if item.partition == seen.partition:
        return item.offset > seen.offset
    return item.request.verdict.processed_at > seen.request.verdict.processed_at


def export_task(request: ReviewRequest) -> dict[str, Any]:
    """The worker's Label Studio task, plus what import needs: the original size, sha256 and model version."""
    task = copy.deepcopy(request.label_studio_task)
    data = task.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("image"), str):
        raise BadInputError(f"review request {request.event_id}: its Label Studio task has no data.image")
    verdict = request.verdict
    data.update(
        event_id=request.event_id,
        image_width=verdict.image.width,
        image_height=verdict.image.height,
        image_sha256=verdict.image.sha256,
        model_version=verdict.model.version,
    )
    score = verdict.p_ai if verdict.p_ai is not None else 0.5
    predictions = task.get("predictions")
    task["predictions"] = [
        {**prediction, "score": prediction.get("score", score)}
        for prediction in (predictions if isinstance(predictions, list) else [])
        if isinstance(prediction, dict)
    ]
    return task


def export_tasks(items: Iterable[ReadRequest]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The task import file (sorted by event_id) and the requests that could not become tasks, by reason."""
    tasks, problems = [], Counter[str]()
    for request in latest_requests(items):
        try:
            tasks.append(export_task(request))
        except BadInputError:
            problems["task_without_image"] += 1
    return tasks, problems

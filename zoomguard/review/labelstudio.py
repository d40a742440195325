"""Label Studio in, as pure functions over parsed JSON (the export side is ls_export.py).

A Label Studio export (the JSON
format, or JSON-MIN) or a webhook payload becomes ReviewDecisions; what cannot be imported is reported
with a reason instead of being produced. The labeling config these names match is in the README:
rectanglelabels "regions", choices "verdict", an optional per-region textarea (findings) and an optional
textarea "review_explanation".

Boxes travel in percent of the image. Percent is converted with the *original* image size from the task
data (`image_width`/`image_height`, written by the export), because reviewers may see a thumbnail, and
Label Studio's `original_width`/`original_height` are then the thumbnail's.

What each source carries (the README has the same table):
- JSON export and webhook: boxes, per-region findings, the explanation; the reviewer is a numeric user id
  (`completed_by: 7`) unless the export expands users (snapshot option `annotations__completed_by:
  {only_id: false}` gives `{id, email, ...}`).
- JSON-MIN: boxes and the explanation but no per-region findings (they are not in the format); the
  reviewer is `annotator`, a user id, or the email when the snapshot expanded users.
The reviewer becomes the email when there is one, else `label-studio-user:<id>`, the same in every source.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from zoomguard.errors import BadInputError
from zoomguard.review.ls_boxes import percent_to_box
from zoomguard.schemas.events import ID_PATTERN, ImageRef
from zoomguard.schemas.review import MAX_REVIEW_BOXES, ReviewDecision, ReviewedRegion

REGIONS = "regions"
VERDICT = "verdict"
REVIEW_EXPLANATION = "review_explanation"
LABELS = ("ai_generated", "real")
RECTANGLE_TYPES = ("rectanglelabels", "rectangle")
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
MAX_FINDING = 2000
MAX_EXPLANATION = 8000
MAX_REVIEWER = 200
USER_ID_PREFIX = "label-studio-user:"
_ID = re.compile(ID_PATTERN)
_USER_ID = re.compile(r"^\d{1,20}$")


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class Skipped:
    """Something not imported: which task or annotation, and why (a short stable reason and a detail)."""

    where: str
    reason: str
    detail: str = ""


@dataclass
class ImportResult:
    decisions: list[ReviewDecision] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    regions_dropped: Counter[str] = field(default_factory=Counter)
    superseded: int = 0
    formats: Counter[str] = field(default_factory=Counter)  # items read per export format: json, json_min

    def reasons(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)

    def reviewers_by_user_id(self) -> int:
        """Decisions whose reviewer is only Label Studio's user id (the export did not expand users)."""
        return sum(d.reviewer.startswith(USER_ID_PREFIX) for d in self.decisions)

    def summary(self) -> dict[str, Any]:
        return {
            "imported": len(self.decisions),
            "skipped": dict(sorted(self.reasons().items())),
            "superseded": self.superseded,
            "regions_dropped": dict(sorted(self.regions_dropped.items())),
            "formats": dict(sorted(self.formats.items())),
            "reviewers_by_user_id": self.reviewers_by_user_id(),
        }

    def notes(self) -> list[str]:
        """What the export format could not carry, said once instead of silently imported without it."""
        notes = []
        if self.formats["json_min"]:
            notes.append(
                "JSON-MIN has no per-region findings: its boxes came without them (export as JSON to keep them)"
            )
        by_id = self.reviewers_by_user_id()
        if by_id:
            notes.append(
                f"{by_id} decisions name the reviewer by Label Studio user id ({USER_ID_PREFIX}<id>); for emails "
                "export a snapshot with the serialization option annotations__completed_by: {only_id: false}"
            )
        return notes


class Unusable(Exception):
    """An annotation that cannot become a ReviewDecision; `reason` is a short stable word."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_export(payload: Any, *, origin: str = "label_studio_import") -> ImportResult:
    """A Label Studio export (JSON: tasks with annotations; or JSON-MIN: one flat record per annotation)."""
    if not isinstance(payload, list):
        raise BadInputError("a Label Studio export is a JSON list of tasks (export as JSON or JSON-MIN)")
    result = ImportResult()
    candidates: list[ReviewDecision] = []
    for index, item in enumerate(payload):
        where = _where(item, index)
        if not isinstance(item, dict):
            result.skipped.append(Skipped(where, "not_an_object"))
            continue
        if isinstance(item.get("data"), dict) or "annotations" in item:
            result.formats["json"] += 1
            decision = _from_task(item, where, origin, result)
        else:
            result.formats["json_min"] += 1
            decision = _from_min_record(item, where, origin, result)
        if decision is not None:
            candidates.append(decision)
    result.decisions = _latest_per_event(candidates, result)
    return result


def _where(item: Any, index: int) -> str:
    task_id = item.get("id") if isinstance(item, dict) else None
    if isinstance(task_id, int | str) and not isinstance(task_id, bool):
        return f"task {str(task_id)[:50]}"
    return f"item {index}"


def _from_task(task: dict[str, Any], where: str, origin: str, result: ImportResult) -> ReviewDecision | None:
    data = task.get("data")
    annotations = task.get("annotations")
    if not isinstance(data, dict):
        result.skipped.append(Skipped(where, "no_data"))
        return None
    if not isinstance(annotations, list) or not annotations:
        result.skipped.append(Skipped(where, "no_annotations"))
        return None
    return _latest_usable(data, annotations, where, origin, result, fallback_time=None)


def _latest_usable(
    data: Mapping[str, Any],
    annotations: Sequence[Any],
    where: str,
    origin: str,
    result: ImportResult,
    fallback_time: datetime | None,
) -> ReviewDecision | None:
    """The latest annotation that gives a decision wins; the others are reported (or counted as superseded)."""
    ordered = sorted(annotations, key=_annotation_order, reverse=True)
    winner: ReviewDecision | None = None
    for annotation in ordered:
        label = f"{where} annotation {annotation.get('id')}" if isinstance(annotation, dict) else where
        if not isinstance(annotation, dict):
            result.skipped.append(Skipped(label, "bad_annotation", "not an object"))
            continue
        dropped: Counter[str] = Counter()
        try:
            decision = decision_from_annotation(
                data, annotation, origin=origin, dropped=dropped, fallback_time=fallback_time
            )
        except Unusable as exc:
            result.skipped.append(Skipped(label, exc.reason, exc.detail))
            continue
        if winner is None:
            winner = decision
            result.regions_dropped.update(dropped)  # only the winner's boxes count
        else:
            result.superseded += 1
    return winner


def _annotation_order(annotation: Any) -> tuple[datetime, str]:
    if not isinstance(annotation, dict):
        return (datetime.min.replace(tzinfo=UTC), "")
    stamp = _timestamp(annotation.get("updated_at")) or _timestamp(annotation.get("created_at"))
    return (stamp or datetime.min.replace(tzinfo=UTC), str(annotation.get("id", "")).zfill(20))


def _from_min_record(record: dict[str, Any], where: str, origin: str, result: ImportResult) -> ReviewDecision | None:
    """JSON-MIN flattens one annotation into the task data: control names become keys.

    It keeps no region ids, so per-region texts cannot be matched to their boxes: regions get no findings.
    """
    results: list[dict[str, Any]] = []
    choices = _flat(record.get(VERDICT), "choices")
    if choices:
        results.append({"from_name": VERDICT, "type": "choices", "value": {"choices": choices}})
    regions = record.get(REGIONS)
    for region in regions if isinstance(regions, list) else [regions] if isinstance(regions, dict) else []:
        if isinstance(region, dict):
            value = {k: v for k, v in region.items() if k not in ("original_width", "original_height")}
            results.append(
                {
                    "from_name": REGIONS,
                    "type": "rectanglelabels",
                    "value": value,
                    "original_width": region.get("original_width"),
                    "original_height": region.get("original_height"),
                }
            )
    texts = _flat(record.get(REVIEW_EXPLANATION), "text")
    if texts:
        results.append({"from_name": REVIEW_EXPLANATION, "type": "textarea", "value": {"text": texts}})
    annotation = {
        "id": record.get("annotation_id"),
        "result": results,
        "completed_by": record.get("annotator"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }
    try:
        return decision_from_annotation(record, annotation, origin=origin, dropped=result.regions_dropped)
    except Unusable as exc:
        result.skipped.append(Skipped(where, exc.reason, exc.detail))
        return None


def _flat(value: Any, key: str) -> list[str]:
    """JSON-MIN writes a single choice or text as a string, several as a list of {key: [...]} objects."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get(key), list):
            out += [v for v in item[key] if isinstance(v, str)]
    return out


def _latest_per_event(decisions: list[ReviewDecision], result: ImportResult) -> list[ReviewDecision]:
    latest: dict[str, ReviewDecision] = {}
    for decision in decisions:
        seen = latest.get(decision.event_id)
        if seen is not None:
            result.superseded += 1
            if seen.decided_at > decision.decided_at:
                continue
        latest[decision.event_id] = decision
    return [latest[key] for key in sorted(latest)]


def decision_from_annotation(
    data: Mapping[str, Any],
    annotation: Mapping[str, Any],
    *,
    origin: str,
    dropped: Counter[str] | None = None,
    fallback_time: datetime | None = None,
) -> ReviewDecision:
    """One Label Studio annotation of one task -> a ReviewDecision, or Unusable with the reason."""
    dropped = Counter() if dropped is None else dropped
    if annotation.get("was_cancelled"):
        raise Unusable("cancelled", "the reviewer skipped the task")
    results = annotation.get("result") or []
    if not isinstance(results, list):
        raise Unusable("bad_annotation", "result is not a list")
    event_id = data.get("event_id")
    if not isinstance(event_id, str) or not _ID.match(event_id):
        raise Unusable("no_event_id", "task data has no valid event_id (was it exported by zoomguard?)")
    items = [r for r in results if isinstance(r, dict)]
    label = _verdict(items)
    decided_at = _timestamp(annotation.get("updated_at")) or _timestamp(annotation.get("created_at")) or fallback_time
    if decided_at is None:
        raise Unusable("no_timestamp", "the annotation has neither updated_at nor created_at")
    try:
        return ReviewDecision(
            event_id=event_id,
            label=label,
            regions=_regions(items, data, dropped),
            explanation=_explanation(items),
            reviewer=_reviewer(annotation.get("completed_by")),
            decided_at=decided_at,
            image=_image(data.get("image")),
            source=_short(data.get("source"), 200),
            origin=origin,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise Unusable("invalid_decision", problems) from None


def _verdict(items: list[dict[str, Any]]) -> str:
    chosen: list[str] = []
    for item in items:
        if item.get("from_name") == VERDICT and item.get("type") == "choices":
            value = item.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            if isinstance(choices, list):
                chosen += [c for c in choices if isinstance(c, str)]
    if not chosen:
        raise Unusable("no_verdict", f"no '{VERDICT}' choice in the annotation")
    labels = set(chosen)
    if len(labels) > 1 or chosen[0] not in LABELS:
        raise Unusable("unknown_verdict", f"verdict {sorted(labels)} is not one of {list(LABELS)}")
    return chosen[0]


def _regions(items: list[dict[str, Any]], data: Mapping[str, Any], dropped: Counter[str]) -> list[ReviewedRegion]:
    texts = _per_region_texts(items)
    regions: list[ReviewedRegion] = []
    for item in items:
        if item.get("type") not in RECTANGLE_TYPES:
            continue
        value = item.get("value")
        size = _size(data.get("image_width"), data.get("image_height")) or _size(
            item.get("original_width"), item.get("original_height")
        )
        if not isinstance(value, dict):
            dropped["bad_region"] += 1
            continue
        if size is None:
            dropped["no_image_size"] += 1
            continue
        if item.get("image_rotation") not in (None, 0, 0.0):
            dropped["rotated_image"] += 1
            continue
        try:
            box = percent_to_box(value, *size)
        except ValueError:
            dropped["bad_region"] += 1
            continue
        if box is None:
            dropped["degenerate_box"] += 1
            continue
        if len(regions) >= MAX_REVIEW_BOXES:
            dropped["too_many_regions"] += 1
            continue
        finding = texts.get(str(item.get("id"))) or _meta_text(item.get("meta"))
        regions.append(ReviewedRegion(box=box, finding=finding[:MAX_FINDING]))
    return regions


def _per_region_texts(items: list[dict[str, Any]]) -> dict[str, str]:
    """Per-region textareas share their region's id (Label Studio's perRegion="true")."""
    region_ids = {str(i.get("id")) for i in items if i.get("type") in RECTANGLE_TYPES and i.get("id") is not None}
    texts: dict[str, str] = {}
    for item in items:
        if item.get("type") == "textarea" and str(item.get("id")) in region_ids:
            texts[str(item.get("id"))] = _text(item.get("value"))
    return texts


def _explanation(items: list[dict[str, Any]]) -> str | None:
    parts = [_text(i.get("value")) for i in items if i.get("from_name") == REVIEW_EXPLANATION]
    text = "\n".join(p for p in parts if p).strip()
    return text[:MAX_EXPLANATION] or None


def _text(value: Any) -> str:
    texts = value.get("text") if isinstance(value, dict) else None
    if isinstance(texts, str):
        return texts.strip()
    if isinstance(texts, list):
        return "\n".join(t.strip() for t in texts if isinstance(t, str)).strip()
    return ""


def _meta_text(meta: Any) -> str:
    return _text(meta) if isinstance(meta, dict) else ""


def _size(width: Any, height: Any) -> tuple[int, int] | None:
    if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool) and width > 0 and height > 0:
        return (width, height)
    return None


def _reviewer(completed_by: Any) -> str:
    """The email when the source has one, else `label-studio-user:<id>`: the same person reads the same everywhere.

    JSON and webhooks give `completed_by` as a user id, or expanded as {id, email, ...}; JSON-MIN gives
    `annotator`, the id (a number, or its digits as text) or the email.
    """
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()[:MAX_REVIEWER]
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by is None:
        return "unknown"
    if isinstance(completed_by, int):
        return f"{USER_ID_PREFIX}{completed_by}"
    text = str(completed_by).strip()
    if _USER_ID.match(text):
        return f"{USER_ID_PREFIX}{int(text)}"
    return text[:MAX_REVIEWER] or "unknown"


def _image(value: Any) -> ImageRef | None:
    """Only http(s) URLs: a data URI in a task is a thumbnail, never the original image."""
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")) and len(value) <= 4096:
        return ImageRef(url=value)
    return None


def _short(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 as Label Studio writes it ('...Z'); a naive time is taken as UTC (Label Studio stores UTC)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


# ---------------------------------------------------------------- webhook


@dataclass
class WebhookResult:
    """What one webhook call gives: decisions to publish, or why nothing is published."""

    action: str
    decisions: list[ReviewDecision] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)


def decisions_from_webhook(payload: Any, *, now: datetime) -> WebhookResult:
    """Label Studio's ANNOTATION_CREATED / ANNOTATION_UPDATED (and bulk ANNOTATIONS_CREATED) payloads.

    Other actions are ignored. Raises BadInputError when an annotation event lacks its annotation or task
    (Label Studio sends the task only when the webhook has "Send payload" on).
    """
    if not isinstance(payload, dict):
        raise BadInputError("the webhook body must be a JSON object")
    action = payload.get("action")
    if not isinstance(action, str):
        raise BadInputError("the webhook body has no 'action'")
    result = WebhookResult(action)
    if action not in WEBHOOK_ACTIONS:
        result.ignored.append(Skipped("payload", "action_ignored", action[:100]))
        return result
    annotations = payload.get("annotation")
    tasks = payload.get("task")
    annotations = annotations if isinstance(annotations, list) else [annotations]
    tasks = tasks if isinstance(tasks, list) else [tasks]
    if not annotations or not all(isinstance(a, dict) for a in annotations):
        raise BadInputError(f"{action} without an 'annotation' object")
    by_id = {t.get("id"): t for t in tasks if isinstance(t, dict)}
    sink = ImportResult()
    for annotation in annotations:
        task = by_id.get(annotation.get("task")) or (tasks[0] if len(tasks) == 1 else None)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise BadInputError(f"{action} without the task's data: turn on 'Send payload' for this webhook")
        where = f"task {task.get('id')} annotation {annotation.get('id')}"
        decision = _latest_usable(task["data"], [annotation], where, "label_studio_webhook", sink, fallback_time=now)
        if decision is not None:
            result.decisions.append(decision)
    result.ignored += sink.skipped
    return result

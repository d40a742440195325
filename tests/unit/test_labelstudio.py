"""Label Studio conversions: percent <-> pixels, the export file, import of both export formats, webhooks."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from zoomguard.errors import BadInputError, UnavailableError
from zoomguard.review.labelstudio import Unusable, decision_from_annotation, decisions_from_webhook, parse_export
from zoomguard.review.ls_boxes import box_to_percent, percent_to_box
from zoomguard.review.ls_export import ReadRequest, export_task, export_tasks, latest_requests
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.review.settings import ReviewSettings
from zoomguard.review.spool import SpoolRefused
from zoomguard.review.webhook import Reply, WebhookApp
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Region, Timings, Usage
from zoomguard.schemas.events import ImageEvent, ReviewRequest, SourceRecord
from zoomguard.schemas.review import ReviewDecision
from zoomguard.worker.routing import route

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# ---------------------------------------------------------------- coordinates


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ({"x": 25, "y": 10, "width": 50, "height": 40}, (400, 500), (100, 50, 300, 250)),
        ({"x": 33.3333, "y": 0, "width": 33.3333, "height": 100}, (300, 300), (100, 0, 200, 300)),  # rounding
        ({"x": 90, "y": 90, "width": 20, "height": 20}, (1024, 768), (922, 691, 1024, 768)),  # clamped at the edge
        ({"x": -10, "y": -10, "width": 20, "height": 20}, (100, 100), (0, 0, 10, 10)),  # clamped at zero
        ({"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 90}, (1000, 1000), (400, 500, 500, 600)),
        ({"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 180}, (1000, 1000), (400, 400, 500, 500)),
        ({"x": 10, "y": 10, "width": 10, "height": 10, "rotation": None}, (200, 100), (20, 10, 40, 20)),
        ({"x": 30, "y": 30, "width": 0, "height": 10}, (1024, 768), None),  # zero width
        ({"x": 10, "y": 10, "width": 0.01, "height": 10}, (100, 100), None),  # under a pixel
        ({"x": 120, "y": 10, "width": 10, "height": 10}, (100, 100), None),  # entirely outside
    ],
)
def test_percent_to_box(value: dict[str, Any], size: tuple[int, int], expected: tuple[int, ...] | None) -> None:
    assert percent_to_box(value, *size) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"x": "10", "y": 0, "width": 5, "height": 5},
        {"x": None, "y": 0, "width": 5, "height": 5},
        {"y": 0, "width": 5, "height": 5},
        {"x": float("nan"), "y": 0, "width": 5, "height": 5},
        {"x": True, "y": 0, "width": 5, "height": 5},
        {"x": 0, "y": 0, "width": -5, "height": 5},
        {"x": 0, "y": 0, "width": 5, "height": 5, "rotation": "a lot"},
    ],
)
def test_percent_to_box_rejects_non_numbers(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        percent_to_box(value, 100, 100)


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((100, 50, 300, 250), (400, 500), {"x": 25.0, "y": 10.0, "width": 50.0, "height": 40.0}),
        ((0, 0, 1, 1), (3, 3), {"x": 0.0, "y": 0.0, "width": 33.3333, "height": 33.3333}),
        ((0, 0, 4000, 3000), (4000, 3000), {"x": 0.0, "y": 0.0, "width": 100.0, "height": 100.0}),
    ],
)
def test_box_to_percent(box: tuple[int, int, int, int], size: tuple[int, int], expected: dict[str, float]) -> None:
    assert box_to_percent(box, *size) == expected


def test_pixels_survive_the_percent_round_trip() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        width, height = rng.randint(1, 12000), rng.randint(1, 12000)
        x1, x2 = sorted(rng.sample(range(width + 1), 2)) if width > 1 else (0, 1)
        y1, y2 = sorted(rng.sample(range(height + 1), 2)) if height > 1 else (0, 1)
        assert percent_to_box(box_to_percent((x1, y1, x2, y2), width, height), width, height) == (x1, y1, x2, y2)


# ---------------------------------------------------------------- export


def detection(decision: str = "uncertain", p_ai: float | None = 0.55, boxes: int = 1) -> Detection:
    return Detection(
        decision=decision,  # type: ignore[arg-type]
        p_ai=p_ai,
        reason="low_confidence" if decision == "uncertain" else None,
        regions=[
            Region(box=(100 + i, 50, 300, 250 - i), box_norm=(0.25, 0.1, 0.75, 0.5), finding=f"odd {i}")
            for i in range(boxes)
        ],
        explanation="the reflection may be inconsistent",
        first_pass=FirstPass(verdict="real", explanation="", p_ai=0.4),
        examined=True,
        crops=boxes,
        model=ModelInfo(name="m", version="v7", family="qwen2_5_vl"),
        image=ImageInfo(sha256="cd" * 32, width=400, height=500, format="PNG"),
        timings_ms=Timings(),
        usage=Usage(),
    )


def request(event_id: str, when: datetime = NOW, **kwargs: Any) -> ReviewRequest:
    event = ImageEvent.model_validate(
        {
            "event_id": event_id,
            "content_id": "c-" + event_id,
            "submitted_at": "2026-11-24T10:00:00Z",
            "image": {"url": "https://x/y.png"},
        }
    )
    source = SourceRecord(topic="images.submitted", partition=0, offset=1)
    routed = route(
        detection(**kwargs),
        event,
        source,
        audit_rate=0,
        review_image="https://x/y.png",
        review_task=label_studio_task,
        now=when,
    )
    assert routed.review is not None
    return routed.review


def test_export_task_adds_original_size_and_keeps_the_predictions() -> None:
    review = request("e-1", boxes=2)
    task = export_task(review)
    assert task["data"] == {
        **review.label_studio_task["data"],
        "image_width": 400,
        "image_height": 500,
        "image_sha256": "cd" * 32,
        "model_version": "v7",
    }
    prediction = task["predictions"][0]
    assert prediction["score"] == 0.55 and prediction["model_version"] == "v7"
    boxes = [r["value"] for r in prediction["result"] if r["type"] == "rectanglelabels"]
    for value, region in zip(boxes, review.verdict.regions, strict=True):
        assert {k: value[k] for k in ("x", "y", "width", "height")} == box_to_percent(region.box, 400, 500)
    assert review.label_studio_task.get("data", {}).get("image_width") is None  # the request itself is not mutated


def test_latest_request_per_event_wins() -> None:
    early, late = request("e-1", NOW, p_ai=0.5), request("e-1", NOW + timedelta(minutes=5), p_ai=0.6)
    other = request("e-2")
    same_partition = latest_requests([ReadRequest(late, 0, 3), ReadRequest(early, 0, 9), ReadRequest(other, 1, 0)])
    assert [(r.event_id, r.verdict.p_ai) for r in same_partition] == [("e-1", 0.5), ("e-2", 0.55)]
    across = latest_requests([ReadRequest(late, 2, 0), ReadRequest(early, 0, 9)])
    assert [(r.event_id, r.verdict.p_ai) for r in across] == [("e-1", 0.6)]


def test_export_reports_tasks_without_an_image() -> None:
    good = request("e-1")
    broken = good.model_copy(update={"event_id": "e-2", "label_studio_task": {"data": {"event_id": "e-2"}}})
    tasks, problems = export_tasks([ReadRequest(good, 0, 0), ReadRequest(broken, 0, 1)])
    assert [t["data"]["event_id"] for t in tasks] == ["e-1"]
    assert problems == Counter(task_without_image=1)


# ---------------------------------------------------------------- import: the JSON export format


def test_import_of_the_json_export() -> None:
    result = parse_export(fixture("export_json.json"))
    decisions = {d.event_id: d for d in result.decisions}
    assert sorted(decisions) == ["evt-ls-1", "evt-ls-2", "evt-ls-7", "evt-ls-8"]

    first = decisions["evt-ls-1"]
    assert (first.label, first.reviewer, first.origin) == ("ai_generated", "label-studio-user:7", "label_studio_import")
    assert [(r.box, r.finding) for r in first.regions] == [
        ((100, 50, 300, 250), "six fingers"),  # per-region textarea
        ((42, 101, 62, 121), "melted ring"),  # region meta text
    ]
    assert first.explanation == "Zoomed in, the hand has six fingers."
    assert first.decided_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert first.image is not None and first.image.url == "https://cdn.example.com/uploads/evt-ls-1.png"

    second = decisions["evt-ls-2"]  # the later of two annotations, expanded completed_by, a rotated box
    assert (second.label, second.reviewer) == ("ai_generated", "carol@example.com")
    assert [r.box for r in second.regions] == [(400, 500, 500, 600)]
    assert second.decided_at == datetime(2026, 11, 24, 11, 30, tzinfo=UTC)

    assert decisions["evt-ls-7"].label == "real"
    assert [r.box for r in decisions["evt-ls-7"].regions] == [(922, 691, 1024, 768)]
    assert decisions["evt-ls-8"].label == "real"  # a later skip does not erase the decision

    assert result.reasons() == Counter(
        cancelled=2, no_verdict=1, no_annotations=1, no_event_id=1, not_an_object=1, unknown_verdict=1
    )
    assert result.superseded == 1
    assert result.regions_dropped == Counter(degenerate_box=1)
    assert {s.where for s in result.skipped if s.reason == "cancelled"} == {
        "task 3 annotation 204",
        "task 8 annotation 209",
    }


def test_import_of_the_json_min_export() -> None:
    result = parse_export(fixture("export_json_min.json"))
    decisions = {d.event_id: d for d in result.decisions}
    assert sorted(decisions) == ["evt-min-1", "evt-min-2"]
    first = decisions["evt-min-1"]  # alice's later annotation wins over bob's
    assert (first.label, first.reviewer, first.explanation) == (
        "ai_generated",
        "alice@example.com",
        "Six fingers on the left hand.",
    )
    assert [r.box for r in first.regions] == [(100, 50, 300, 250)]
    assert (decisions["evt-min-2"].label, decisions["evt-min-2"].reviewer) == ("real", "label-studio-user:7")
    assert result.reasons() == Counter(no_verdict=1) and result.superseded == 1
    assert all(r.finding == "" for d in result.decisions for r in d.regions)  # JSON-MIN has no findings
    assert result.formats == Counter(json_min=4) and result.summary()["reviewers_by_user_id"] == 1


def test_both_export_formats_give_the_same_decision_except_findings() -> None:
    """One annotation as Label Studio exports it in JSON and in JSON-MIN (numeric user ids in both)."""
    data = {"image": "https://cdn.example.com/a.png", "event_id": "evt-both", "image_width": 400, "image_height": 500}
    box = {"x": 25.0, "y": 10.0, "width": 50.0, "height": 40.0, "rotation": 0}
    result = [
        {"id": "r1", "from_name": "regions", "to_name": "image", "type": "rectanglelabels",
         "original_width": 400, "original_height": 500, "value": {**box, "rectanglelabels": ["suspicious"]}},
        {"id": "r1", "from_name": "finding", "to_name": "image", "type": "textarea",
         "value": {**box, "text": ["six fingers"]}},
        {"id": "v", "from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": ["real"]}},
        {"id": "e", "from_name": "review_explanation", "to_name": "image", "type": "textarea",
         "value": {"text": ["looks fine"]}},
    ]  # fmt: skip
    stamps = {"created_at": "2026-11-24T12:00:00.000000Z", "updated_at": "2026-11-24T12:05:00.000000Z"}
    as_json = [{"id": 9, "data": data, "annotations": [{"id": 90, "completed_by": 1, "result": result, **stamps}]}]
    # JSON-MIN flattens the same annotation and writes no per-region text
    as_min = [{**data, "id": 9, "annotation_id": 90, "annotator": 1, **stamps, "verdict": "real",
               "regions": [{**box, "rectanglelabels": ["suspicious"], "original_width": 400, "original_height": 500}],
               "review_explanation": "looks fine"}]  # fmt: skip

    (full,) = parse_export(as_json).decisions
    (flat,) = parse_export(as_min).decisions

    assert [(r.box, r.finding) for r in full.regions] == [((100, 50, 300, 250), "six fingers")]
    assert [(r.box, r.finding) for r in flat.regions] == [((100, 50, 300, 250), "")]  # JSON-MIN: no findings
    assert flat == full.model_copy(update={"regions": flat.regions})  # everything else is the same
    assert full.reviewer == "label-studio-user:1"


@pytest.mark.parametrize(
    ("completed_by", "reviewer"),
    [
        (7, "label-studio-user:7"),  # what JSON exports and webhooks carry by default
        ({"id": 3, "email": "carol@example.com", "first_name": ""}, "carol@example.com"),  # expanded users
        ({"id": 3, "email": " "}, "label-studio-user:3"),
        ({"id": 3}, "label-studio-user:3"),
        (None, "unknown"),
        (True, "unknown"),
    ],
)
def test_the_reviewer_reads_the_same_in_the_json_export_and_the_webhook(completed_by: Any, reviewer: str) -> None:
    exported = parse_export([task([annotation([VERDICT], completed_by=completed_by)])])
    hook = {"action": "ANNOTATION_CREATED", "annotation": annotation([VERDICT], completed_by=completed_by),
            "task": task([])}  # fmt: skip
    assert [d.reviewer for d in exported.decisions] == [reviewer]
    assert [d.reviewer for d in decisions_from_webhook(hook, now=NOW).decisions] == [reviewer]


@pytest.mark.parametrize(
    ("annotator", "reviewer"),
    [
        (1, "label-studio-user:1"),  # JSON-MIN by default
        ("1", "label-studio-user:1"),  # the same id written as text
        ("alice@example.com", "alice@example.com"),  # a snapshot that expanded users
        ("", "unknown"),
    ],
)
def test_the_json_min_annotator_reads_like_completed_by(annotator: Any, reviewer: str) -> None:
    record = {"event_id": "e-1", "verdict": "real", "annotator": annotator, "updated_at": "2026-11-24T12:00:00Z"}
    assert [d.reviewer for d in parse_export([record]).decisions] == [reviewer]


def test_import_notes_say_what_the_format_did_not_carry() -> None:
    expanded = parse_export([task([annotation([VERDICT], completed_by={"id": 3, "email": "c@example.com"})])])
    assert expanded.notes() == [] and expanded.summary()["formats"] == {"json": 1}
    by_id = parse_export([task([annotation([VERDICT], completed_by=3)])])
    (note,) = by_id.notes()
    assert "1 decisions" in note and "annotations__completed_by: {only_id: false}" in note
    flat = parse_export(fixture("export_json_min.json"))
    assert any("no per-region findings" in n for n in flat.notes())
    assert flat.summary()["formats"] == {"json_min": 4}


@pytest.mark.parametrize("payload", [{"tasks": []}, "text", 3, None])
def test_import_refuses_what_is_not_an_export(payload: Any) -> None:
    with pytest.raises(BadInputError, match="JSON list of tasks"):
        parse_export(payload)


def task(annotations: Any, **data: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "data": {"image": "data:image/jpeg;base64,AAAA", "event_id": "e-1", **data},
        "annotations": annotations,
    }


def annotation(result: Any, **fields: Any) -> dict[str, Any]:
    return {"id": 5, "completed_by": 3, "result": result, "updated_at": "2026-11-24T12:00:00Z", **fields}


VERDICT = {"from_name": "verdict", "type": "choices", "value": {"choices": ["real"]}}


def rect(x: float = 10, rotation: int = 0, **fields: Any) -> dict[str, Any]:
    value = {"x": x, "y": 10, "width": 10, "height": 10, "rectanglelabels": ["suspicious"]}
    return {
        "type": "rectanglelabels",
        "from_name": "regions",
        "original_width": 100,
        "original_height": 100,
        "image_rotation": rotation,
        "value": value,
        **fields,
    }


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"data": {"event_id": "e-1"}, "annotations": "lots"}, "no_annotations"),
        ({"data": "e-1", "annotations": []}, "no_data"),
        (task([annotation("not a list")]), "bad_annotation"),
        (task(["not an object"]), "bad_annotation"),
        (task([annotation([VERDICT], updated_at="yesterday")]), "no_timestamp"),
        (task([annotation([VERDICT])], event_id="has spaces"), "no_event_id"),
        (task([annotation([VERDICT])], event_id=12), "no_event_id"),
        (task([annotation([{**VERDICT, "value": {"choices": ["real", "ai_generated"]}}])]), "unknown_verdict"),
        (task([annotation([{**VERDICT, "value": "real"}])]), "no_verdict"),
        (task([annotation([VERDICT], was_cancelled=True)]), "cancelled"),
    ],
)
def test_import_reports_garbage(item: dict[str, Any], reason: str) -> None:
    result = parse_export([item])
    assert result.decisions == [] and result.reasons() == Counter({reason: 1})


def test_import_bounds_and_defaults() -> None:
    boxes = [rect(x=i, id=f"r{i}") for i in range(40)]
    long = {"from_name": "review_explanation", "type": "textarea", "value": {"text": ["x" * 9000]}}
    result = parse_export([task([annotation([VERDICT, *boxes, rect(rotation=90), long], completed_by=None)])])
    (decision,) = result.decisions
    assert len(decision.regions) == 32 and decision.explanation == "x" * 8000
    assert decision.reviewer == "unknown" and decision.image is None  # a data URI is a thumbnail, not the image
    assert result.regions_dropped == Counter(too_many_regions=8, rotated_image=1)


def test_import_prefers_the_original_size_over_the_thumbnail_size() -> None:
    thumbnail = rect(x=25, original_width=64, original_height=80)  # what Label Studio saw
    result = parse_export([task([annotation([VERDICT, thumbnail])], image_width=400, image_height=500)])
    assert [r.box for r in result.decisions[0].regions] == [(100, 50, 140, 100)]


def test_duplicate_tasks_of_one_event_keep_the_latest_decision() -> None:
    older = task([annotation([VERDICT], updated_at="2026-11-24T10:00:00Z")])
    newer = task([annotation([{**VERDICT, "value": {"choices": ["ai_generated"]}}], updated_at="2026-11-24T11:00:00Z")])
    result = parse_export([newer, older])
    assert [(d.event_id, d.label) for d in result.decisions] == [("e-1", "ai_generated")] and result.superseded == 1


def test_decision_from_annotation_uses_the_fallback_time_only_when_needed() -> None:
    data = {"event_id": "e-1"}
    decision = decision_from_annotation(data, {"result": [VERDICT]}, origin="t", fallback_time=NOW)
    assert decision.decided_at == NOW
    with pytest.raises(Unusable, match="no_timestamp"):
        decision_from_annotation(data, {"result": [VERDICT]}, origin="t")


# ---------------------------------------------------------------- webhook payloads


def test_webhook_annotation_created_and_updated() -> None:
    created = decisions_from_webhook(fixture("webhook_annotation_created.json"), now=NOW)
    (decision,) = created.decisions
    assert (decision.event_id, decision.label, decision.origin) == (
        "evt-hook-1",
        "ai_generated",
        "label_studio_webhook",
    )
    assert [r.box for r in decision.regions] == [(100, 50, 300, 250)] and decision.explanation == "Melted ring."
    updated = decisions_from_webhook(fixture("webhook_annotation_updated.json"), now=NOW)
    assert [(d.label, d.decided_at) for d in updated.decisions] == [
        ("real", datetime(2026, 11, 24, 12, 45, tzinfo=UTC))
    ]


def test_webhook_ignores_skips_and_other_actions() -> None:
    skipped = decisions_from_webhook(fixture("webhook_annotation_skipped.json"), now=NOW)
    assert skipped.decisions == [] and [s.reason for s in skipped.ignored] == ["cancelled"]
    other = decisions_from_webhook(fixture("webhook_project_updated.json"), now=NOW)
    assert other.decisions == [] and [(s.reason, s.detail) for s in other.ignored] == [
        ("action_ignored", "PROJECT_UPDATED")
    ]


def test_webhook_bulk_annotations_pair_with_their_tasks() -> None:
    payload = {
        "action": "ANNOTATIONS_CREATED",
        "annotation": [{**annotation([VERDICT]), "task": 2}, {**annotation([VERDICT]), "task": 1}],
        "task": [{"id": 1, "data": {"event_id": "e-1"}}, {"id": 2, "data": {"event_id": "e-2"}}],
    }
    assert [d.event_id for d in decisions_from_webhook(payload, now=NOW).decisions] == ["e-2", "e-1"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"annotation": {}}, "no 'action'"),
        ({"action": "ANNOTATION_CREATED"}, "without an 'annotation'"),
        ({"action": "ANNOTATION_CREATED", "annotation": annotation([VERDICT], task=4)}, "Send payload"),
        ({"action": "ANNOTATION_UPDATED", "annotation": annotation([VERDICT]), "task": 4}, "Send payload"),
    ],
)
def test_webhook_payload_errors(payload: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        decisions_from_webhook(payload, now=NOW)


# ---------------------------------------------------------------- webhook requests (a fake spool)


class FakeAccept:
    """Stands in for the spool: keeps what it was given, or refuses it as the spool would."""

    def __init__(self, refuse: Exception | None = None):
        self.accepted: list[ReviewDecision] = []
        self.refuse = refuse

    def __call__(self, decisions: list[ReviewDecision]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.accepted += decisions


SETTINGS = ReviewSettings(webhook_token=SecretStr("s3cret"), webhook_max_body_bytes=4096)
PATH = SETTINGS.webhook_path
TOKEN = {"x-zoomguard-token": "s3cret"}
CREATED = (FIXTURES / "webhook_annotation_created.json").read_bytes()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "error"),
    [
        ("POST", PATH, TOKEN, CREATED, 200, None),
        ("POST", PATH + "?project=12", TOKEN, CREATED, 200, None),
        ("POST", PATH, {}, CREATED, 401, "unauthorized"),
        ("POST", PATH, {"x-zoomguard-token": "s3cre"}, CREATED, 401, "unauthorized"),
        ("POST", "/elsewhere", TOKEN, CREATED, 404, "not_found"),
        ("GET", PATH, TOKEN, None, 405, "method_not_allowed"),
        ("POST", PATH, TOKEN, b"{not json", 400, "invalid_json"),
        ("POST", PATH, TOKEN, b"\xff\xfe", 400, "invalid_json"),
        ("POST", PATH, TOKEN, b"[1, 2]", 422, "bad_payload"),
        ("POST", PATH, TOKEN, None, 400, "no_body"),
        ("GET", "/health", {}, None, 200, None),
    ],
)
def test_webhook_answers(
    method: str, path: str, headers: dict[str, str], body: bytes | None, status: int, error: str | None
) -> None:
    accept = FakeAccept()
    reply = WebhookApp(SETTINGS, accept, clock=lambda: NOW).handle(method, path, headers, body)
    assert reply.status == status and reply.body.get("error") == error
    accepted = status == 200 and path.startswith(PATH)
    assert [d.event_id for d in accept.accepted] == (["evt-hook-1"] if accepted else [])
    if accepted:
        assert reply.body == {
            "status": "accepted",
            "action": "ANNOTATION_CREATED",
            "event_ids": ["evt-hook-1"],
            "ignored": [],
        }


@pytest.mark.parametrize(
    ("refusal", "status", "error"),
    [
        (SpoolRefused(507, "spool_full", "the webhook spool is full"), 507, "spool_full"),
        (SpoolRefused(507, "disk_full", "no space left"), 507, "disk_full"),
        (SpoolRefused(503, "spool_unwritable", "read-only file system"), 503, "spool_unwritable"),
        (UnavailableError("cannot take it now"), 503, "unavailable"),
    ],
)
def test_webhook_answers_the_refusal_when_a_decision_cannot_be_kept(
    refusal: Exception, status: int, error: str
) -> None:
    reply = WebhookApp(SETTINGS, FakeAccept(refuse=refusal)).handle("POST", PATH, TOKEN, CREATED)
    assert (reply.status, reply.body["error"], reply.body["message"]) == (status, error, str(refusal))


def test_webhook_health_reports_what_it_is_given() -> None:
    app = WebhookApp(SETTINGS, FakeAccept(), health=lambda: (True, {"spool": {"files": 3}}))
    assert app.handle("GET", "/health", {}, None) == Reply(200, {"status": "ok", "spool": {"files": 3}})
    sick = WebhookApp(SETTINGS, FakeAccept(), health=lambda: (False, {"flusher": {"running": False}}))
    assert sick.handle("GET", "/health", {}, None).status == 503


def test_webhook_acknowledges_what_it_ignores() -> None:
    accept = FakeAccept()
    body = (FIXTURES / "webhook_annotation_skipped.json").read_bytes()
    reply = WebhookApp(SETTINGS, accept).handle("POST", PATH, TOKEN, body)
    assert reply.status == 200 and reply.body["status"] == "ignored" and accept.accepted == []
    assert [i["reason"] for i in reply.body["ignored"]] == ["cancelled"]


def test_webhook_without_a_token_setting_accepts_any_caller() -> None:
    accept = FakeAccept()
    reply = WebhookApp(ReviewSettings(), accept).handle("POST", ReviewSettings().webhook_path, {}, CREATED)
    assert reply.status == 200 and len(accept.accepted) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-length": "100"}, None),
        ({"content-length": "4096"}, None),
        ({"content-length": "4097"}, 413),
        ({}, 411),
        ({"content-length": "10", "transfer-encoding": "chunked"}, 411),
        ({"content-length": "ten"}, 400),
        ({"content-length": "-1"}, 400),
    ],
)
def test_webhook_body_limits(headers: dict[str, str], status: int | None) -> None:
    problem = WebhookApp(SETTINGS, FakeAccept()).body_problem(headers)
    assert (problem.status if problem else None) == status


def test_the_token_is_never_in_a_reply() -> None:
    app = WebhookApp(SETTINGS, FakeAccept())
    for headers in ({}, {"x-zoomguard-token": "wrong"}):
        assert "s3cret" not in json.dumps(app.handle("POST", PATH, headers, CREATED).body)
    assert "s3cret" not in repr(SETTINGS)


def test_only_the_winning_annotation_reports_dropped_boxes() -> None:
    older = annotation(
        [VERDICT, rect(x=10, id="a", value={"x": 1, "y": 1, "width": 0, "height": 1})],
        updated_at="2026-11-24T10:00:00Z",
    )
    newer = annotation([VERDICT, rect(x=20, id="b")], updated_at="2026-11-24T11:00:00Z")
    result = parse_export([task([older, newer])])
    assert [r.box for r in result.decisions[0].regions] == [(20, 10, 30, 20)]
    assert result.regions_dropped == Counter() and result.superseded == 1

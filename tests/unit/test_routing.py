"""Routing and review tasks: pure functions over typed values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Region, Timings, Usage
from zoomguard.schemas.events import ImageEvent, SourceRecord
from zoomguard.worker.routing import in_audit_sample, review_reason, route


def detection(decision: str = "ai_generated", p_ai: float | None = 0.93, reason: str | None = None) -> Detection:
    return Detection(
        decision=decision,  # type: ignore[arg-type]
        p_ai=p_ai,
        reason=reason,  # type: ignore[arg-type]
        regions=[Region(box=(100, 50, 300, 250), box_norm=(0.25, 0.1, 0.75, 0.5), finding="melted hand")],
        explanation="the hand has six fingers",
        first_pass=FirstPass(verdict="ai_generated", explanation="", p_ai=0.7),
        examined=True,
        crops=1,
        model=ModelInfo(name="m", version="v7", family="qwen2_5_vl"),
        image=ImageInfo(sha256="ab" * 32, width=400, height=500, format="PNG"),
        timings_ms=Timings(),
        usage=Usage(),
    )


EVENT = ImageEvent.model_validate(
    {
        "event_id": "e-1",
        "content_id": "c-1",
        "submitted_at": "2026-11-24T10:00:00Z",
        "image": {"url": "https://x/y.png"},
    }
)
SOURCE = SourceRecord(topic="images.submitted", partition=2, offset=41)


@pytest.mark.parametrize(
    ("decision", "reason", "audit", "expected"),
    [
        ("uncertain", "low_confidence", 0.0, "uncertain"),
        ("uncertain", "unparseable_examine", 0.0, "unparseable"),
        ("uncertain", "unparseable_locate", 1.0, "unparseable"),
        ("ai_generated", None, 0.0, None),
        ("real", None, 1.0, "audit"),
    ],
)
def test_review_reasons(decision: str, reason: str | None, audit: float, expected: str | None) -> None:
    assert review_reason(detection(decision, reason=reason), "e-1", audit) == expected


def test_audit_sample_is_deterministic_and_near_its_rate() -> None:
    ids = [f"event-{i}" for i in range(20000)]
    picked = [i for i in ids if in_audit_sample(i, 0.05)]
    assert picked == [i for i in ids if in_audit_sample(i, 0.05)]
    assert 0.04 < len(picked) / len(ids) < 0.06
    assert not any(in_audit_sample(i, 0.0) for i in ids[:100])


def test_route_builds_verdict_and_review() -> None:
    now = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
    routed = route(
        detection("uncertain", 0.5, "low_confidence"),
        EVENT,
        SOURCE,
        audit_rate=0,
        review_image="img",
        review_task=label_studio_task,
        now=now,
    )
    assert routed.verdict.event_id == "e-1" and routed.verdict.source == SOURCE
    assert routed.verdict.review_requested and routed.review is not None
    assert routed.review.reason == "uncertain" and routed.review.verdict == routed.verdict
    confident = route(
        detection(), EVENT, SOURCE, audit_rate=0, review_image="img", review_task=label_studio_task, now=now
    )
    assert confident.review is None and not confident.verdict.review_requested


def test_label_studio_task_uses_percent_of_original_image() -> None:
    verdict = route(
        detection(), EVENT, SOURCE, audit_rate=0, review_image="https://x/y.png", review_task=label_studio_task
    ).verdict
    task = label_studio_task(verdict, "https://x/y.png", "audit")
    assert task["data"]["image"] == "https://x/y.png"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "v7" and prediction["score"] == 0.93
    box, choice = prediction["result"]
    assert box["type"] == "rectanglelabels"
    assert box["value"] == {
        "x": 25.0, "y": 10.0, "width": 50.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["suspicious"]
    }  # fmt: skip
    assert (box["original_width"], box["original_height"]) == (400, 500)
    assert choice["value"] == {"choices": ["ai_generated"]}

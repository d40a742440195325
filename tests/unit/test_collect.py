"""Collect's pure part: which decision wins, where the image comes from, the record it becomes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from zoomguard.dataset.collect import ImageResolver, Miss
from zoomguard.dataset.joining import (
    FoundImage,
    RawRecord,
    ReviewContext,
    build_record,
    check_digest,
    event_from_record,
    image_candidates,
    latest_decisions,
    review_contexts,
)
from zoomguard.dataset.records import split_of
from zoomguard.errors import BadInputError
from zoomguard.media.settings import ImageLimits
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Timings, Usage
from zoomguard.schemas.events import ImageEvent, ImageRef, ReviewRequest, SourceRecord
from zoomguard.schemas.review import ReviewDecision, ReviewedRegion
from zoomguard.worker.routing import route

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
INPUT = SourceRecord(topic="images.submitted", partition=2, offset=41)


def png(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def decision(event_id: str = "ev-1", *, minutes: int = 0, label: str = "ai_generated", **extra: Any) -> ReviewDecision:
    return ReviewDecision.model_validate(
        {
            "event_id": event_id,
            "label": label,
            "reviewer": "ann",
            "decided_at": T0 + timedelta(minutes=minutes),
            **extra,
        }
    )


def raw(value: ReviewDecision | ReviewRequest | bytes | None, offset: int, partition: int = 0) -> RawRecord:
    data = value.model_dump_json().encode() if isinstance(value, ReviewDecision | ReviewRequest) else value
    return RawRecord(data, partition, offset)


def request(
    event_id: str,
    *,
    sha: str = "ab" * 32,
    image: str = "https://cdn.example.com/x.png",
    processed: datetime = T0,
    p_ai: float = 0.6,
    p_ai_raw: float | None = 0.7,
    metadata: dict[str, Any] | None = None,
) -> ReviewRequest:
    detection = Detection(
        decision="uncertain",
        p_ai=p_ai,
        p_ai_raw=p_ai_raw,
        reason="low_confidence",
        regions=[],
        explanation="",
        first_pass=FirstPass(verdict=None, explanation="", p_ai=None),
        examined=False,
        model=ModelInfo(name="m", version="v7", family="qwen2_5_vl"),
        image=ImageInfo(sha256=sha, width=64, height=48, format="PNG"),
        timings_ms=Timings(),
        usage=Usage(),
    )
    event = ImageEvent.model_validate(
        {"event_id": event_id, "content_id": f"c-{event_id}", "submitted_at": T0, "image": {"url": image},
         "metadata": metadata or {}}
    )  # fmt: skip
    routed = route(
        detection, event, INPUT, audit_rate=0, review_image=image, review_task=label_studio_task, now=processed
    )
    assert routed.review is not None
    return routed.review


def context(**changes: Any) -> ReviewContext:
    base = review_contexts([raw(request("ev-1"), 0)], {"ev-1"}, Counter())["ev-1"]
    return ReviewContext(**{**base.__dict__, **changes})


# ---------------------------------------------------------------- latest decision wins


def test_latest_decided_at_wins_whatever_the_order() -> None:
    skipped: Counter[str] = Counter()
    records = [
        raw(decision(minutes=5, label="real"), 0),
        raw(decision(minutes=1, label="ai_generated"), 1),  # older, arrived later
        raw(decision("ev-2", minutes=0), 2),
    ]
    latest = latest_decisions(records, skipped)
    assert latest["ev-1"].label == "real"
    assert sorted(latest) == ["ev-1", "ev-2"]
    assert skipped == Counter({"superseded": 1})


def test_a_tie_on_decided_at_goes_to_the_later_offset() -> None:
    first = decision(minutes=3, reviewer="ann", label="real")
    second = decision(minutes=3, label="ai_generated").model_copy(update={"reviewer": "bob"})
    assert latest_decisions([raw(second, 8), raw(first, 4)], Counter())["ev-1"].reviewer == "bob"
    assert latest_decisions([raw(first, 4), raw(second, 8)], Counter())["ev-1"].reviewer == "bob"


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        None,
        b'{"event_id": "ev-9", "label": "maybe", "reviewer": "x", "decided_at": "2026-11-24T10:00:00Z"}',
        b'{"event_id": "ev-9", "label": "real", "reviewer": "x", "decided_at": "2026-11-24T10:00:00"}',  # naive
        b'{"event_id": "ev 9", "label": "real", "reviewer": "x", "decided_at": "2026-11-24T10:00:00Z"}',
        b'{"event_id": "ev-9", "label": "real", "reviewer": "x", "decided_at": "2026-11-24T10:00:00Z", "x": 1}',
        b"[1, 2]",
    ],
)
def test_invalid_decisions_are_counted_not_raised(value: bytes | None) -> None:
    skipped: Counter[str] = Counter()
    assert latest_decisions([raw(value, 0), raw(decision(), 1)], skipped) == {"ev-1": decision()}
    assert skipped == Counter({"invalid_decision": 1})


# ---------------------------------------------------------------- review context


def test_review_context_keeps_the_latest_request_and_the_served_model() -> None:
    skipped: Counter[str] = Counter()
    old = request("ev-1", processed=T0, p_ai_raw=0.1)
    new = request("ev-1", processed=T0 + timedelta(seconds=5), p_ai_raw=0.9, metadata={"source": " camera "})
    other = request("ev-other")
    contexts = review_contexts([raw(new, 3), raw(old, 4), raw(other, 5), raw(b"{}", 6)], {"ev-1"}, skipped)
    assert list(contexts) == ["ev-1"]
    found = contexts["ev-1"]
    assert (found.served_p_ai, found.served_model_version, found.metadata_source) == (0.9, "v7", "camera")
    assert found.source == INPUT and found.content_id == "c-ev-1"
    assert skipped == Counter({"invalid_review_request": 1})


def test_served_p_ai_falls_back_to_p_ai_for_verdicts_without_a_raw_one() -> None:
    contexts = review_contexts([raw(request("ev-1", p_ai=0.33, p_ai_raw=None), 0)], {"ev-1"}, Counter())
    assert contexts["ev-1"].served_p_ai == 0.33


# ---------------------------------------------------------------- image source


def test_candidates_come_in_order_decision_then_input_record_then_task_url() -> None:
    own = ImageRef(url="https://img.example.com/full.png")
    kinds = image_candidates(decision(image=own.model_dump()), context())
    assert [c.kind for c in kinds] == ["decision_image", "input_record", "task_url"]
    assert kinds[0].ref == own and kinds[1].record == INPUT
    assert kinds[2].ref == ImageRef(url="https://cdn.example.com/x.png")


def test_a_thumbnail_data_uri_is_never_a_candidate() -> None:
    kinds = image_candidates(decision(), context(task_image="data:image/jpeg;base64,/9j/4AAQ"))
    assert [c.kind for c in kinds] == ["input_record"]


def test_without_a_review_request_only_the_decisions_own_image_counts() -> None:
    assert image_candidates(decision(), None) == []
    inline = {"data_b64": base64.b64encode(png()).decode()}
    assert [c.kind for c in image_candidates(decision(image=inline), None)] == ["decision_image"]


def test_the_input_record_must_be_the_same_event() -> None:
    event = ImageEvent.model_validate(
        {"event_id": "ev-1", "content_id": "c", "submitted_at": T0, "image": {"url": "https://a.example/x"}}
    )
    assert event_from_record(event.model_dump_json().encode(), "ev-1") == event
    with pytest.raises(ValueError, match="belongs to event 'ev-1'"):
        event_from_record(event.model_dump_json().encode(), "ev-2")
    with pytest.raises(ValueError, match="not a valid ImageEvent"):
        event_from_record(b'{"event_id": "ev-1"}', "ev-1")
    with pytest.raises(ValueError, match="no value"):
        event_from_record(None, "ev-1")


def test_digest_check() -> None:
    found = FoundImage(b"x", "cd" * 32, 10, 10)
    assert check_digest(found, context(image_sha256="cd" * 32)) is None
    assert check_digest(found, None) is None
    assert "differs" in (check_digest(found, context(image_sha256="ab" * 32)) or "")


# ---------------------------------------------------------------- the record


def test_record_keeps_reviewer_fields_clamps_boxes_and_splits_by_image() -> None:
    regions = [
        ReviewedRegion(box=(10, 10, 30, 20), finding="hand"),
        ReviewedRegion(box=(50, 40, 90, 90), finding="edge"),  # past the 64x48 image: clamped
        ReviewedRegion(box=(70, 50, 80, 60)),  # entirely outside: dropped
    ]
    chosen = decision(regions=[r.model_dump() for r in regions], explanation="six fingers", source="")
    image = FoundImage(png(), "ef" * 32, 64, 48)
    record = build_record(chosen, context(), image, 0.5)
    assert record.boxes == [(10, 10, 30, 20), (50, 40, 64, 48)]
    assert record.findings == ["hand", "edge"]
    assert (record.label, record.explanation, record.reviewer) == ("ai_generated", "six fingers", "ann")
    assert (record.served_p_ai, record.served_model_version, record.content_id) == (0.7, "v7", "c-ev-1")
    assert record.split == split_of("ef" * 32, 0.5)
    assert record.decided_at == T0.isoformat()
    assert record.image_bytes == image.data


@pytest.mark.parametrize(
    ("decision_source", "metadata_source", "event_source", "expected"),
    [
        ("label-studio", "camera", "upload", "label-studio"),
        ("", "camera", "upload", "camera"),
        ("", "", "upload", "upload"),
        ("", "", "", "unknown"),
    ],
)
def test_source_priority(decision_source: str, metadata_source: str, event_source: str, expected: str) -> None:
    event = ImageEvent.model_validate(
        {"event_id": "ev-1", "content_id": "c", "submitted_at": T0, "image": {"url": "https://a.example/x"},
         "metadata": {"source": event_source} if event_source else {}}
    )  # fmt: skip
    image = FoundImage(png(), "ef" * 32, 64, 48, event)
    record = build_record(decision(source=decision_source), context(metadata_source=metadata_source), image, 0.2)
    assert record.source == expected


def test_split_is_stable_per_image_whatever_else_changes() -> None:
    images = [FoundImage(png(colour=(i, 0, 0)), hashlib.sha256(bytes([i])).hexdigest(), 64, 48) for i in range(200)]
    first = [build_record(decision(f"e{i}"), None, img, 0.25).split for i, img in enumerate(images)]
    again = [build_record(decision(f"other{i}", label="real"), None, img, 0.25).split for i, img in enumerate(images)]
    assert first == again
    assert 20 < first.count("test") < 80  # a real mix, so the assertion above compares both splits


# ---------------------------------------------------------------- resolving, with fakes for the I/O


class FakeReader:
    def __init__(self, values: dict[SourceRecord, bytes | Miss | None]):
        self.values = values
        self.asked: list[SourceRecord] = []

    async def get(self, source: SourceRecord) -> bytes | Miss | None:
        self.asked.append(source)
        return self.values.get(source, Miss("input_record_missing", "gone"))


class FakeFetcher:
    def __init__(self, bodies: dict[str, bytes]):
        self.bodies = bodies
        self.asked: list[str] = []

    async def fetch(self, url: str) -> tuple[bytes, int]:
        self.asked.append(url)
        if url not in self.bodies:
            raise BadInputError(f"HTTP 404 from {url}")
        return self.bodies[url], 1


def resolve(reader: FakeReader, fetcher: FakeFetcher, chosen: ReviewDecision, ctx: ReviewContext | None) -> Any:
    resolver = ImageResolver(reader, fetcher, ImageLimits())  # type: ignore[arg-type]
    return asyncio.run(resolver.resolve(chosen, ctx))


def test_resolver_falls_back_from_a_broken_decision_image_to_the_input_record() -> None:
    original = png()
    sha = hashlib.sha256(original).hexdigest()
    event = ImageEvent.model_validate(
        {"event_id": "ev-1", "content_id": "c", "submitted_at": T0,
         "image": {"data_b64": base64.b64encode(original).decode()}, "metadata": {"source": "feed"}}
    )  # fmt: skip
    reader = FakeReader({INPUT: event.model_dump_json().encode()})
    broken = decision(image={"data_b64": base64.b64encode(b"not an image").decode()})
    found, kind = resolve(reader, FakeFetcher({}), broken, context(image_sha256=sha))
    assert kind == "input_record" and isinstance(found, FoundImage)
    assert (found.sha256, found.width, found.height, found.event) == (sha, 64, 48, event)


def test_resolver_refuses_an_image_that_is_not_the_reviewed_one_then_tries_the_task_url() -> None:
    original, changed = png(colour=(1, 2, 3)), png(colour=(9, 9, 9))
    event = ImageEvent.model_validate(
        {"event_id": "ev-1", "content_id": "c", "submitted_at": T0, "image": {"url": "https://cdn.example.com/v2.png"}}
    )
    reader = FakeReader({INPUT: event.model_dump_json().encode()})
    fetcher = FakeFetcher({"https://cdn.example.com/v2.png": changed, "https://cdn.example.com/x.png": original})
    found, kind = resolve(reader, fetcher, decision(), context(image_sha256=hashlib.sha256(original).hexdigest()))
    assert kind == "task_url" and found.data == original
    assert fetcher.asked == ["https://cdn.example.com/v2.png", "https://cdn.example.com/x.png"]


def test_resolver_reports_the_last_reason_when_nothing_works() -> None:
    found, kind = resolve(FakeReader({}), FakeFetcher({}), decision(), context())
    assert kind == "" and isinstance(found, Miss)
    assert found.reason == "bad_input" and found.detail.startswith("task_url: HTTP 404")
    nothing, _ = resolve(FakeReader({}), FakeFetcher({}), decision(), None)
    assert nothing.reason == "no_image_source"


def test_resolver_counts_a_foreign_input_record_as_invalid() -> None:
    event = ImageEvent.model_validate(
        {"event_id": "someone-else", "content_id": "c", "submitted_at": T0, "image": {"url": "https://a.example/x"}}
    )
    reader = FakeReader({INPUT: event.model_dump_json().encode()})
    found, _ = resolve(reader, FakeFetcher({}), decision(), context(task_image=None))
    assert isinstance(found, Miss) and found.reason == "input_record_invalid"

"""Review decisions into the bank: the join table learns hashes from verdicts and review requests (and ignores
everything else), stays bounded, and a decision becomes the entry that replaces its event's earlier one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from zoomguard.known.feed import Hashed, JoinTable, review_entry
from zoomguard.schemas.review import ReviewDecision

PDQ = "3f18cef3407e8678e483fb1937d14067188e58d21c6eac5f783103f157a3f50e"


def verdict(event_id: str, pdq: str | None = PDQ, quality: int | None = 100) -> bytes:
    return json.dumps({"event_id": event_id, "image": {"sha256": "x", "pdq": pdq, "pdq_quality": quality}}).encode()


def test_hashes_are_learned_from_verdicts_and_review_requests() -> None:
    table = JoinTable(10)
    assert table.learn(verdict("e1"))
    review_request = {"event_id": "e2", "verdict": {"image": {"pdq": PDQ.upper(), "pdq_quality": 80}}}
    assert table.learn(json.dumps(review_request).encode())
    assert table.get("e1") == Hashed(PDQ, 100) and table.get("e2") == Hashed(PDQ, 80)
    assert table.get("e3") is None


@pytest.mark.parametrize(
    "value",
    [
        verdict("e1", pdq=None, quality=None),  # decided before decoding: no hash
        verdict("e1", pdq="zz" * 32),
        verdict("e1", pdq=PDQ[:-1]),
        b"not json",
        b"[1, 2]",
        b'{"image": {"pdq": "%s", "pdq_quality": 100}}' % PDQ.encode(),  # no event id
        None,
        json.dumps({"event_id": 7, "image": {"pdq": PDQ, "pdq_quality": 100}}).encode(),
    ],
    ids=["no-hash", "not-hex", "short", "not-json", "a-list", "no-event-id", "tombstone", "event-id-not-a-string"],
)
def test_records_without_a_usable_hash_are_ignored(value: bytes | None) -> None:
    table = JoinTable(10)
    assert not table.learn(value) and len(table) == 0


def test_the_table_keeps_the_newest_events() -> None:
    table = JoinTable(2)
    for event_id in ("e1", "e2", "e3"):
        table.learn(verdict(event_id))
    assert table.get("e1") is None and table.get("e2") and table.get("e3") and len(table) == 2
    table.learn(verdict("e2"))  # learned again: newest now
    table.learn(verdict("e4"))
    assert table.get("e3") is None and table.get("e2") is not None


def test_a_decision_becomes_its_events_entry() -> None:
    decision = ReviewDecision(
        event_id="evt-1", label="real", reviewer="alice", decided_at=datetime(2026, 12, 1, tzinfo=UTC),
        explanation="  a photo of a real street  ",
    )  # fmt: skip
    entry = review_entry(decision, Hashed(PDQ, 90))
    assert (entry.entry_id, entry.pdq, entry.quality, entry.label) == ("review:evt-1", PDQ, 90, "real")
    assert (entry.source, entry.decided_by, entry.event_id, entry.note) == (
        "review",
        "alice",
        "evt-1",
        "a photo of a real street",
    )
    later = review_entry(decision.model_copy(update={"label": "ai_generated", "explanation": None}), Hashed(PDQ, 90))
    assert later.entry_id == entry.entry_id and later.note is None  # the same key: it replaces the earlier entry

"""The bank's records on the compacted topic: round trips, tombstones, stable ids, malformed records refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from zoomguard.errors import BadInputError
from zoomguard.known.bank import (
    MAX_RECORD_BYTES,
    BankEntry,
    Removal,
    decode_record,
    evidence_entry_id,
    import_entry_id,
    record_of,
    review_entry_id,
    tombstone_of,
)

PDQ = "3f18cef3407e8678e483fb1937d14067188e58d21c6eac5f783103f157a3f50e"
WHEN = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)


def entry(**changes: Any) -> BankEntry:
    fields: dict[str, Any] = {
        "entry_id": review_entry_id("evt-1"),
        "pdq": PDQ,
        "quality": 100,
        "label": "ai_generated",
        "source": "review",
        "decided_by": "alice",
        "decided_at": WHEN,
        "event_id": "evt-1",
        "note": "same image as the viral one",
    }
    fields.update(changes)
    return BankEntry.model_validate(fields)


@pytest.mark.parametrize(
    "value",
    [
        entry(),
        entry(entry_id=import_entry_id(PDQ), source="import", quality=None, decided_by=None, event_id=None, note=None),
        entry(entry_id=evidence_entry_id("evt-2"), source="evidence", label="ai_generated", event_id="evt-2"),
        entry(label="real", pdq=PDQ.upper()),
    ],
    ids=["review", "import", "evidence", "uppercase hash"],
)
def test_records_round_trip(value: BankEntry) -> None:
    key, body = record_of(value)
    assert key == value.entry_id.encode()
    assert decode_record(key, body) == value
    assert value.pdq == PDQ
    assert None not in json.loads(body).values()  # absent fields are left out, not written as null


def test_a_tombstone_removes() -> None:
    key, body = tombstone_of("review:evt-1")
    assert body is None
    assert decode_record(key, body) == Removal("review:evt-1")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: review_entry_id("evt-1"), "review:evt-1"),
        (lambda: evidence_entry_id("evt-1"), "evidence:evt-1"),
        (lambda: import_entry_id(" " + PDQ.upper()), f"import:{PDQ}"),
    ],
    ids=["review", "evidence", "import"],
)
def test_entry_ids_are_stable(make: Any, expected: str) -> None:
    """A later decision on the same event, or the same hash imported again, lands on the same key."""
    assert make() == expected == make()


def body(**changes: Any) -> bytes:
    fields = json.loads(record_of(entry())[1])
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


KEY = b"review:evt-1"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, body(), "without a key"),
        (b"\xff\xfe", body(), "not UTF-8"),
        (b"", body(), "not an entry id"),
        (b"review:evt 1", body(), "not an entry id"),
        (b"review:evt-1\n", None, "not an entry id"),
        (b"x" * 257, None, "not an entry id"),
        (KEY, b"{not json", "not a bank entry"),
        (KEY, b"[]", "not a bank entry"),
        (KEY, b'"text"', "not a bank entry"),
        (KEY, body(pdq=PDQ[:-1]), "pdq"),
        (KEY, body(pdq="z" * 64), "pdq"),
        (KEY, body(label="fake"), "label"),
        (KEY, body(source="rumour"), "source"),
        (KEY, body(quality=101), "quality"),
        (KEY, body(decided_at="2026-12-02T10:30:00"), "decided_at"),  # no offset: when is ambiguous
        (KEY, body(decided_at=...), "decided_at"),  # missing
        (KEY, body(note="n" * 1001), "note"),
        (KEY, body(event_id="evt 1"), "event_id"),
        (KEY, body(colour="red"), "colour"),
        (KEY, body(schema_version=2), "schema_version"),
        (b"review:evt-2", body(), "differs from its entry_id"),
        (KEY, b" " * (MAX_RECORD_BYTES + 1), "the limit is"),
    ],
)
def test_malformed_records_are_refused(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(BadInputError, match=reason):
        decode_record(key, value)


def test_entries_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        entry().label = "real"  # type: ignore[misc]

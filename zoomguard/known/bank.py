"""The bank's records on its compacted Kafka topic: one record per known image, keyed by entry id.

Why a compacted topic: the bank is a table that every worker rebuilds by reading the topic from the beginning,
then follows; compaction keeps the latest record per key, so a correction (same key, new value) replaces the
earlier decision and a tombstone (same key, no value) deletes it, on every worker and across restarts.
Records are written by zoomguard and by people's tools alike, so they are validated like any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from zoomguard.errors import BadInputError
from zoomguard.known.hashing import normalise_pdq
from zoomguard.schemas.events import ID_PATTERN
from zoomguard.schemas.review import Label

BankSource = Literal["review", "evidence", "import"]
ENTRY_ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,256}$"  # an event id (ID_PATTERN) behind a prefix fits
MAX_NOTE_LENGTH = 1000
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
MAX_RECORD_BYTES = 16 * 1024  # a valid record is well under 2 kB; anything larger is refused unread


class BankEntry(BaseModel):
    """One known image: its PDQ hash, the label it gets, and who decided it, where and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    entry_id: str = Field(pattern=ENTRY_ID_PATTERN, description="the record key: one entry per id, latest wins")
    pdq: str = Field(description="PDQ hash, 64 hex digits (stored lowercase)")
    quality: int | None = Field(
        None, ge=0, le=100, description="PDQ quality of the hashed image; None: an imported list did not say"
    )
    label: Label = Field(description="what a matching upload is decided as")
    source: BankSource = Field(description="review: a reviewer's decision; evidence: conclusive marks; import: a list")
    decided_by: str | None = Field(None, min_length=1, max_length=200, description="reviewer, tool or list name")
    decided_at: AwareDatetime = Field(description="when the decision was made (ISO 8601 with offset)")
    event_id: str | None = Field(None, pattern=ID_PATTERN, description="the upload it was decided on, if any")
    note: str | None = Field(None, max_length=MAX_NOTE_LENGTH, description="free text for reviewers")

    @field_validator("pdq")
    @classmethod
    def _pdq_hex(cls, value: str) -> str:
        return normalise_pdq(value)


@dataclass(frozen=True)
class Removal:
    """A tombstone: the entry with this id is no longer in the bank."""

    entry_id: str


def review_entry_id(event_id: str) -> str:
    """One entry per reviewed upload: a later decision on the same event replaces the earlier one."""
    return f"review:{event_id}"


def evidence_entry_id(event_id: str) -> str:
    """One entry per upload decided by conclusive evidence."""
    return f"evidence:{event_id}"


def import_entry_id(pdq: str) -> str:
    """One entry per imported hash: importing the same list twice, or two lists with a hash in common, keeps
    one entry (the latest import's label)."""
    return f"import:{normalise_pdq(pdq)}"


def record_of(entry: BankEntry) -> tuple[bytes, bytes]:
    """(key, value) for the topic: the entry id in UTF-8, the entry as compact JSON."""
    return entry.entry_id.encode(), entry.model_dump_json(exclude_none=True).encode()


def tombstone_of(entry_id: str) -> tuple[bytes, None]:
    """(key, None): compaction deletes the entry; workers drop it when they read it."""
    return entry_id.encode(), None


def decode_record(key: bytes | None, value: bytes | None) -> BankEntry | Removal:
    """A record read from the topic -> the entry, or its removal. BadInputError for a record that cannot be
    applied (no key, not UTF-8, oversized, not an entry, or a key that is not the entry's id): the follower
    skips and counts it rather than stopping the bank for every worker."""
    if key is None:
        raise BadInputError("bank record without a key (a compacted topic keys every record by entry id)")
    try:
        entry_id = key.decode()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"bank record key is not UTF-8: {key[:80]!r}") from exc
    if not _ENTRY_ID.fullmatch(entry_id):
        raise BadInputError(f"bank record key {entry_id[:80]!r} is not an entry id ({ENTRY_ID_PATTERN})")
    if value is None:
        return Removal(entry_id)
    if len(value) > MAX_RECORD_BYTES:
        raise BadInputError(f"bank record {entry_id!r} is {len(value):,} bytes; the limit is {MAX_RECORD_BYTES:,}")
    try:
        entry = BankEntry.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise BadInputError(f"bank record {entry_id!r} is not a bank entry: {problems}") from None
    if entry.entry_id != entry_id:
        raise BadInputError(f"bank record key {entry_id!r} differs from its entry_id {entry.entry_id!r}")
    return entry

"""The bank as a worker holds it: records applied in order (replace, tombstone, junk), what a lookup answers,
and who is told when an entry changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zoomguard.known.bank import BankEntry, record_of, tombstone_of
from zoomguard.known.hashing import PdqHash
from zoomguard.known.memory import KnownBank
from zoomguard.known.settings import KnownContentSettings

A = "f" * 64
NEAR_A = "0" * 7 + "f" * 57  # 28 bits from A: inside 31
FAR_A = "0" * 8 + "f" * 56  # 32 bits from A: outside 31
B = "0" * 64


def entry(entry_id: str, pdq: str, label: str = "ai_generated", quality: int | None = 100) -> BankEntry:
    return BankEntry(
        entry_id=entry_id, pdq=pdq, quality=quality, label=label, source="review", decided_by="alice",
        decided_at=datetime(2026, 12, 1, tzinfo=UTC), event_id=entry_id.split(":", 1)[1],
    )  # fmt: skip


def bank(**settings: object) -> tuple[KnownBank, list[str]]:
    changed: list[str] = []
    held = KnownBank(KnownContentSettings(**settings), on_change=changed.append)  # type: ignore[arg-type]
    return held, changed


def test_an_entry_matches_within_the_threshold_and_names_who_decided() -> None:
    held, changed = bank()
    held.apply(*record_of(entry("review:e1", A)))
    assert len(held) == 1 and changed == [A]
    match = held.match(PdqHash(NEAR_A, 100))
    assert match is not None and match.distance == 28
    assert (match.known.entry_id, match.known.label, match.known.decided_by) == ("review:e1", "ai_generated", "alice")
    assert held.match(PdqHash(FAR_A, 100)) is None


def test_a_later_record_replaces_and_a_tombstone_removes() -> None:
    held, changed = bank()
    held.apply(*record_of(entry("review:e1", A)))
    held.apply(*record_of(entry("review:e1", A, label="real")))  # the reviewer changed their mind
    match = held.match(PdqHash(A, 100))
    assert match is not None and match.known.label == "real" and len(held) == 1
    held.apply(*tombstone_of("review:e1"))
    assert held.match(PdqHash(A, 100)) is None and len(held) == 0
    assert changed == [A, A, A, A]  # added; replaced (old, new); removed


def test_moving_an_entry_to_another_hash_forgets_the_old_one() -> None:
    held, changed = bank()
    held.apply(*record_of(entry("review:e1", A)))
    held.apply(*record_of(entry("review:e1", B)))
    assert held.match(PdqHash(A, 100)) is None and held.match(PdqHash(B, 100)) is not None
    assert changed == [A, A, B]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, b"{}"),
        (b"review:e1", b"not json"),
        (b"review:e1", record_of(entry("review:other", A))[1]),  # key and entry_id disagree
        (b"\xff\xfe", b"{}"),
        (b"review:e1", b"{" + b" " * 20_000 + b"}"),
    ],
    ids=["no-key", "not-json", "key-mismatch", "not-utf8", "oversized"],
)
def test_a_record_that_is_not_an_entry_is_skipped_and_counted(key: bytes | None, value: bytes) -> None:
    held, changed = bank()
    held.apply(*record_of(entry("review:e0", B)))
    held.apply(key, value)
    assert held.skipped == 1 and len(held) == 1 and changed == [B]


def test_flat_hashes_never_match_on_either_side() -> None:
    held, _ = bank()
    held.apply(*record_of(entry("review:flat", A, quality=10)))
    assert len(held) == 0 and held.match(PdqHash(A, 100)) is None  # a flat entry is not indexed
    held.apply(*record_of(entry("import:x", B, quality=None)))  # a list that gave no quality is trusted
    assert held.match(PdqHash(B, 100)) is not None
    assert held.match(PdqHash(B, 49)) is None  # a flat upload matches nothing


def test_a_full_bank_refuses_new_entries_and_keeps_the_old() -> None:
    held, _ = bank(max_entries=1)
    held.apply(*record_of(entry("review:e1", A)))
    held.apply(*record_of(entry("review:e2", B)))
    assert held.refused == 1 and len(held) == 1 and held.match(PdqHash(A, 100)) is not None
    held.apply(*record_of(entry("review:e1", B, label="real")))  # replacing an entry still works when full
    found = held.match(PdqHash(B, 100))
    assert found is not None and found.known.label == "real"


def test_dihedral_lookups_try_every_variant() -> None:
    mirrored = PdqHash(B, 100, dihedral=(B, "1" * 64, "2" * 64, "3" * 64, A, "4" * 64, "5" * 64, "6" * 64))
    plain, _ = bank()
    plain.apply(*record_of(entry("review:e1", A)))
    assert plain.match(mirrored) is None
    both, _ = bank(dihedral=True)
    both.apply(*record_of(entry("review:e1", A)))
    found = both.match(mirrored)
    assert found is not None and found.distance == 0

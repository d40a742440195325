"""Hash lists as CSV: good rows import, bad rows are reported by line without stopping the good ones, and an
export reads back as the same entries."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from zoomguard.errors import BadInputError
from zoomguard.known.bank import BankEntry, import_entry_id
from zoomguard.known.csv_io import export_csv, import_csv

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
A = "3f18cef3407e8678e483fb1937d14067188e58d21c6eac5f783103f157a3f50e"
B = "673966ddb772a66419a69a66619ea9472599a21b9649a659596624b3e58ea693"
C = "c" * 64


def read(text: str, list_name: str | None = "partner-list") -> tuple[list[BankEntry], list[tuple[int, str]]]:
    result = import_csv(io.StringIO(text), now=NOW, list_name=list_name)
    return result.entries, [(p.line, p.reason) for p in result.problems]


def test_good_rows_become_import_entries() -> None:
    entries, problems = read(
        "pdq,label,quality,source,decided_at,note\n"
        f"{A},ai_generated,100,ncmec-style-list,2026-11-30T08:00:00+00:00,viral fake\n"
        f"{B.upper()},REAL,,,,\n"
    )
    assert problems == []
    first, second = entries
    assert first == BankEntry(
        entry_id=f"import:{A}",
        pdq=A,
        quality=100,
        label="ai_generated",
        source="import",
        decided_by="ncmec-style-list",
        decided_at=datetime(2026, 11, 30, 8, tzinfo=UTC),
        note="viral fake",
    )
    assert (second.pdq, second.label, second.quality, second.decided_by, second.decided_at, second.note) == (
        B,
        "real",
        None,
        "partner-list",  # the list's name when a row names no source
        NOW,  # the import's time when a row has no date
        None,
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f"{A[:-1]},ai_generated", "64 hex digits"),
        (f"{A}0,ai_generated", "64 hex digits"),
        (f"0x{A[2:]},ai_generated", "64 hex digits"),
        (f"{'g' * 64},ai_generated", "64 hex digits"),
        (",ai_generated", "64 hex digits"),
        (f"{A},fake", "label must be"),
        (f"{A},", "label must be"),
        (f"{A}", "label must be"),  # a short row
        (f"{A},real,101", "quality"),
        (f"{A},real,high", "quality"),
        (f"{A},real,50.5", "quality"),
        (f"{A},real,,,yesterday", "decided_at"),
        (f"{A},real,,,2026-11-30T08:00:00", "decided_at"),  # no offset
        (f"{A},real,,{'s' * 201}", "decided_by"),
        (f"{A},real,,,,{'n' * 1001}", "note"),
    ],
)
def test_a_bad_row_is_reported_by_line_and_the_good_ones_import(row: str, reason: str) -> None:
    entries, problems = read(f"pdq,label,quality,source,decided_at,note\n{B},real\n{row}\n\n{C},ai_generated\n")
    assert [e.pdq for e in entries] == [B, C]
    assert len(problems) == 1
    line, text = problems[0]
    assert line == 3 and reason in text


def test_several_bad_rows_are_all_reported() -> None:
    entries, problems = read(f"pdq,label\nnope,real\n{A},real\n{B},maybe\n{C},real\n")
    assert [e.pdq for e in entries] == [A, C]
    assert [line for line, _ in problems] == [2, 4]


def test_columns_in_any_order_extra_ones_ignored_bom_and_case_tolerated() -> None:
    entries, problems = read(f"\ufeffNote, Label ,id,PDQ\nhello,ai_generated,42,{A}\n")
    assert problems == []
    assert [(e.pdq, e.label, e.note) for e in entries] == [(A, "ai_generated", "hello")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("hash,label\n", "lacks pdq"), ("pdq\n", "lacks label"), ("pdq,lable\nx,y\n", "lacks label")],
)
def test_a_list_without_the_required_columns_is_refused_whole(text: str, reason: str) -> None:
    with pytest.raises(BadInputError, match=reason):
        read(text)


def test_a_hash_listed_twice_keeps_the_last_row_and_a_conflict_is_reported() -> None:
    entries, problems = read(f"pdq,label,note\n{A},real,first\n{B},real,\n{A},real,second\n{A},ai_generated,third\n")
    assert [(e.pdq, e.label, e.note) for e in entries] == [(A, "ai_generated", "third"), (B, "real", None)]
    assert problems == [(5, "same hash as line 4 with label real; this row's ai_generated wins")]


def test_an_unreadable_row_does_not_stop_the_rest() -> None:
    huge = "x" * 200_000  # over the csv module's field limit
    entries, problems = read(f'pdq,label,note\n{A},real,"{huge}"\n{B},real,\n')
    assert [e.pdq for e in entries] == [B]
    assert len(problems) == 1 and "unreadable CSV row" in problems[0][1]


def test_quoted_fields_keep_commas_and_newlines() -> None:
    entries, problems = read(f'pdq,label,note\n{A},real,"one, two\nthree"\n{B},nope\n')
    assert entries[0].note == "one, two\nthree"
    assert problems[0][0] == 4  # the line where the bad row is, past the two-line note


def test_export_reads_back_as_the_same_entries() -> None:
    entries = [
        BankEntry(
            entry_id=import_entry_id(A),
            pdq=A,
            quality=88,
            label="ai_generated",
            source="import",
            decided_by="list-a",
            decided_at=datetime(2026, 11, 1, tzinfo=UTC),
            note='says "fake", twice',
        ),
        BankEntry(
            entry_id=import_entry_id(B),
            pdq=B,
            label="real",
            source="import",
            decided_by="list-b",
            decided_at=NOW,
        ),
    ]
    stream = io.StringIO()
    assert export_csv(entries, stream) == 2
    assert stream.getvalue().splitlines()[0] == "pdq,label,quality,source,decided_at,note"
    again, problems = read(stream.getvalue(), list_name=None)
    assert problems == [] and again == entries


def test_a_review_entry_exports_with_its_reviewer_as_source() -> None:
    entry = BankEntry(
        entry_id="review:evt-1", pdq=C, quality=90, label="real", source="review", decided_at=NOW, event_id="evt-1"
    )
    stream = io.StringIO()
    export_csv([entry], stream)
    assert stream.getvalue().splitlines()[1] == f"{C},real,90,review,2026-12-02T12:00:00+00:00,"


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil.example","open")', "+1+1", "-2+3", "@SUM(A1)"])
def test_a_note_that_a_spreadsheet_would_run_is_exported_as_text_and_reads_back_unchanged(text: str) -> None:
    entry = BankEntry(
        entry_id=import_entry_id(A), pdq=A, label="real", source="import", decided_by=text, decided_at=NOW, note=text
    )
    stream = io.StringIO()
    export_csv([entry], stream)
    import csv

    row = next(csv.DictReader(io.StringIO(stream.getvalue())))
    assert row["note"] == "'" + text and row["source"] == "'" + text, "no cell starts with a formula character"
    again, problems = read(stream.getvalue(), list_name=None)
    assert problems == [] and again == [entry]


def test_an_ordinary_quote_at_the_start_of_a_note_is_kept() -> None:
    entries, _ = read(f"pdq,label,note\n{A},real,'quoted' by the partner\n")
    assert entries[0].note == "'quoted' by the partner"

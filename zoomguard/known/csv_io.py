"""Hash lists as CSV: what `zoomguard bank import` reads and `bank export` writes.

The shape hash-sharing programmes exchange (ThreatExchange, industry hash lists): one hash per row with its
label and provenance. A header row names the columns, in any order, case-insensitive:

    pdq,label,quality,source,decided_at,note
    3f18cef3407e8678e483fb1937d14067188e58d21c6eac5f783103f157a3f50e,ai_generated,100,partner-list-2026-11,,

- `pdq` (required): 64 hex digits, either case.
- `label` (required): `ai_generated` or `real`.
- `quality`: PDQ quality 0-100; empty when the list does not carry it.
- `source`: who decided or which list it came from (becomes the entry's decided_by; 200 characters at most).
- `decided_at`: ISO 8601 with offset; empty: the time of the import.
- `note`: free text (1000 characters at most).

Text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
return) are written with a leading `'`, which spreadsheets show as text, and read back without it: a reviewer's
note cannot become a formula in whoever opens the export (CSV injection).

Other columns are ignored, so a list with extra columns imports as is. Every row is checked on its own: bad rows
are reported by line (the header is line 1) and the good ones still import. A hash listed twice keeps its last
row (an entry per hash, `import:<pdq>`); a repeat with another label is reported too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from pydantic import ValidationError

from zoomguard.errors import BadInputError
from zoomguard.known.bank import BankEntry, import_entry_id
from zoomguard.known.hashing import normalise_pdq

COLUMNS = ("pdq", "label", "quality", "source", "decided_at", "note")
REQUIRED = frozenset({"pdq", "label"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """A free-text cell as written: a leading ' keeps a spreadsheet from running it as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _text_of(cell: str) -> str:
    """A free-text cell as read: stripped, and without the ' that `_text_cell` put before a formula start."""
    text = cell.strip()
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class RowProblem:
    line: int  # the row's (last) line in the file; the header is line 1
    reason: str


@dataclass(frozen=True)
class ImportResult:
    entries: list[BankEntry] = field(default_factory=list)  # one per hash, in the order first seen
    problems: list[RowProblem] = field(default_factory=list)


def import_csv(stream: TextIO, *, now: datetime, list_name: str | None = None) -> ImportResult:
    """Rows -> bank entries (source "import"). `now` dates rows without decided_at; `list_name` is the
    decided_by of rows without a source. BadInputError only when the header lacks a required column."""
    reader = csv.reader(stream)
    try:
        header = _header_of(next(reader, None))
    except csv.Error as exc:
        raise BadInputError(f"hash list header is not readable CSV: {exc}") from exc
    entries: dict[str, tuple[int, BankEntry]] = {}
    problems: list[RowProblem] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # an oversized field, a NUL byte: that row, not the whole list
            problems.append(RowProblem(reader.line_num, f"unreadable CSV row: {exc}"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        try:
            entry = _entry(dict(zip(header, row, strict=False)), now, list_name)
        except ValueError as exc:
            problems.append(RowProblem(reader.line_num, str(exc)))
            continue
        earlier = entries.get(entry.entry_id)
        if earlier is not None and earlier[1].label != entry.label:
            problems.append(
                RowProblem(
                    reader.line_num,
                    f"same hash as line {earlier[0]} with label {earlier[1].label}; this row's {entry.label} wins",
                )
            )
        entries[entry.entry_id] = (reader.line_num, entry)
    return ImportResult([entry for _, entry in entries.values()], problems)


def export_csv(entries: Iterable[BankEntry], stream: TextIO) -> int:
    """Write entries in the import format (source: who decided, else the entry's kind); returns the rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    rows = 0
    for entry in entries:
        writer.writerow(
            [
                entry.pdq,
                entry.label,
                "" if entry.quality is None else entry.quality,
                _text_cell(entry.decided_by or entry.source),
                entry.decided_at.isoformat(),
                _text_cell(entry.note or ""),
            ]
        )
        rows += 1
    return rows


def _header_of(first: list[str] | None) -> list[str]:
    if first is None:
        raise BadInputError("hash list is empty: a header row (pdq,label,...) is required")
    header = [name.strip().lower() for name in first]
    if header:
        header[0] = header[0].removeprefix("\ufeff")  # spreadsheets save UTF-8 with a byte-order mark
    missing = sorted(REQUIRED - set(header))
    if missing:
        raise BadInputError(
            f"hash list header {','.join(header)[:200]!r} lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
        )
    return header


def _entry(cells: dict[str, str], now: datetime, list_name: str | None) -> BankEntry:
    """One row -> an entry, or ValueError saying what is wrong with it."""
    pdq = normalise_pdq(cells.get("pdq", ""))
    label = cells.get("label", "").strip().lower()
    if label not in ("ai_generated", "real"):
        raise ValueError(f"label must be ai_generated or real, got {label[:40]!r}")
    quality_text = cells.get("quality", "").strip()
    decided_at_text = cells.get("decided_at", "").strip()
    try:
        return BankEntry.model_validate(
            {
                "entry_id": import_entry_id(pdq),
                "pdq": pdq,
                "quality": quality_text or None,
                "label": label,
                "source": "import",
                "decided_by": _text_of(cells.get("source", "")) or list_name,
                "decided_at": decided_at_text or now,
                "note": _text_of(cells.get("note", "")) or None,
            }
        )
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False))
        ) from None

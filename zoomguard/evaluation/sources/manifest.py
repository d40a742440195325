"""A JSON or JSONL manifest: one object per image with its path, label and optional boxes and explanation.

The shape FakeClue- and TRACE-style releases use: `{"image": "fake/0001.png", "label": "fake", "boxes":
[[12, 40, 200, 180]], "explanation": "..."}`, one per line (`.jsonl`, read line by line) or as one JSON list
(`.json`). Key names are `evaluation.dataset.columns`. Relative paths resolve against `image_root` (default: the
manifest's folder); URLs are not fetched. An item's id is its `id` value, else its image path; its source the
`source` value, else the folder of its image path (or the manifest's name). A line that is not an object, has
no image or label, an unknown label or a bad box is a problem, and so is a second item with the same id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from zoomguard.errors import BadInputError
from zoomguard.evaluation.sources.fields import parse_boxes, parse_id, parse_text
from zoomguard.evaluation.sources.items import DEFAULT_MAX_BYTES, EvalItem, Problem, Row, read_bounded
from zoomguard.evaluation.sources.labels import LabelMap
from zoomguard.evaluation.sources.settings import DatasetColumns


class ManifestSource:
    format = "manifest"
    max_image_bytes = DEFAULT_MAX_BYTES  # what one image file may cost in memory (open_dataset sets it)

    def __init__(
        self, path: Path, labels: LabelMap, columns: DatasetColumns, *, image_root: Path | None = None, name: str = ""
    ):
        self.path = path
        self.name = name or path.stem
        self._labels = labels
        self._columns = columns
        self._root = image_root or path.parent

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "image_root": str(self._root),
            "columns": self._columns.model_dump(),
        }

    def _records(self) -> Iterator[tuple[str, dict[str, Any] | str]]:
        """(location, object) per entry, or (location, why it is not one)."""
        if self.path.suffix.lower() == ".jsonl":
            with self.path.open(encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield f"{self.path}:{number}", _object(line)
            return
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInputError(f"{self.path} is not JSON: {exc}") from None
        if not isinstance(document, list):
            raise BadInputError(
                f"{self.path}: a JSON manifest is a list of objects, got {type(document).__name__} "
                "(one object per line: name it .jsonl)"
            )
        for index, entry in enumerate(document):
            yield f"{self.path}[{index}]", entry if isinstance(entry, dict) else f"not an object: {str(entry)[:80]}"

    def rows(self) -> Iterator[Row]:
        seen: dict[str, str] = {}
        for location, record in self._records():
            row = self._row(location, record)
            if isinstance(row, EvalItem):
                first = seen.setdefault(row.item_id, location)
                if first != location:
                    row = Problem(location, f"duplicate id {row.item_id!r} (first at {first})", item_id=row.item_id)
            yield row

    def _row(self, location: str, record: dict[str, Any] | str) -> Row:
        if isinstance(record, str):
            return Problem(location, record)
        c = self._columns
        image = record.get(c.image)
        if not isinstance(image, str) or not image.strip():
            return Problem(location, f"no image path under {c.image!r}")
        try:
            item_id = parse_id(record.get(c.id)) or image
        except ValueError as exc:
            return Problem(location, str(exc))
        try:
            if c.label not in record or record[c.label] is None:
                raise ValueError(f"missing label (key {c.label!r})")
            label, raw = self._labels.label_of(record[c.label])
            boxes = parse_boxes(record.get(c.boxes))
            explanation = parse_text(record.get(c.explanation), "explanation")
            source = parse_text(record.get(c.source), "source")
        except ValueError as exc:
            return Problem(location, str(exc), item_id=item_id)
        folder = str(PurePosixPath(image.replace("\\", "/")).parent)
        return EvalItem(
            item_id=item_id,
            label=label,
            raw_label=raw,
            source=source or (folder if folder not in (".", "/") else self.name),
            location=location,
            boxes=boxes,
            explanation=explanation,
        )

    def images(self) -> Iterator[bytes | Problem]:
        for location, record in self._records():
            image = record.get(self._columns.image) if isinstance(record, dict) else None
            if not isinstance(image, str) or not image.strip():
                yield Problem(location, "no image path", "reading")
                continue
            yield read_image_file(image, self._root, location, self.max_image_bytes)


def read_image_file(path_text: str, root: Path, location: str, max_bytes: int) -> bytes | Problem:
    """A local image file's bytes (bounded: `read_bounded`); a Problem for a URL or a file that cannot be read."""
    if "://" in path_text:
        return Problem(location, f"{path_text[:120]} is a URL: eval reads local files only", "reading", path_text)
    path = root / path_text
    try:
        return read_bounded(path, max_bytes)
    except OSError as exc:
        return Problem(location, f"unreadable {path}: {exc.strerror or exc}", "reading", path_text)


def _object(line: str) -> dict[str, Any] | str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    return value if isinstance(value, dict) else f"not an object: {line.strip()[:80]}"

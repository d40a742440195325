"""A table of images (Parquet files, a Hugging Face dataset, `collect`'s shards) read in small Arrow batches.

The first pass reads every column but the image (labels, boxes, sources: small), the second only the image
column, `IMAGE_BATCH` rows at a time, so a table larger than memory is scored without holding it. An image cell
is encoded bytes, a Hugging Face Image value (`{bytes, path}`: the bytes, else the file at `path`), or a path;
relative paths resolve against the image root. A ClassLabel label column is read by its class names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from zoomguard.errors import BadInputError
from zoomguard.evaluation.sources.fields import parse_boxes, parse_id, parse_text
from zoomguard.evaluation.sources.items import DEFAULT_MAX_BYTES, EvalItem, Problem, Row
from zoomguard.evaluation.sources.labels import LabelMap
from zoomguard.evaluation.sources.manifest import read_image_file
from zoomguard.evaluation.sources.settings import DatasetColumns

LIST_BATCH = 4096
IMAGE_BATCH = 16


class TableParts(Protocol):
    """Where the rows are: one or more parts (files, a split), each read in batches of chosen columns."""

    def column_names(self) -> list[str]: ...

    def class_names(self, column: str) -> list[str] | None: ...

    def batches(self, columns: Sequence[str], batch_size: int) -> Iterator[tuple[str, int, Any]]:
        """(part name, index of the batch's first row in its part, a pyarrow Table or RecordBatch)."""
        ...


class TableSource:
    max_image_bytes = DEFAULT_MAX_BYTES  # what one image file may cost in memory (open_dataset sets it)

    def __init__(
        self,
        name: str,
        format: str,
        parts: TableParts,
        columns: DatasetColumns,
        labels: LabelMap,
        image_root: Path,
        description: dict[str, Any],
    ):
        self.name = name
        self.format = format
        self._parts = parts
        self._columns = columns
        self._labels = labels
        self._root = image_root
        self._description = description

    def describe(self) -> dict[str, Any]:
        return {**self._description, "format": self.format, "columns": self._columns.model_dump()}

    def _require(self) -> list[str]:
        names = self._parts.column_names()
        for role in ("image", "label"):
            column = getattr(self._columns, role)
            if column not in names:
                raise BadInputError(
                    f"{self.name} has no {role} column {column!r} (columns: {', '.join(names)}); "
                    f"name it with --{role}-column"
                )
        return names

    def rows(self) -> Iterator[Row]:
        names = self._require()
        c = self._columns
        wanted = list(dict.fromkeys(col for col in (c.label, c.boxes, c.explanation, c.source, c.id) if col in names))
        classes = self._parts.class_names(c.label)
        seen: dict[str, str] = {}
        for part, start, batch in self._parts.batches(wanted, LIST_BATCH):
            values = {column: batch.column(column).to_pylist() for column in wanted}
            for offset in range(batch.num_rows):
                location = f"{part}:{start + offset}"
                row = self._row(location, {column: values[column][offset] for column in wanted}, classes)
                if isinstance(row, EvalItem):
                    first = seen.setdefault(row.item_id, location)
                    if first != location:
                        row = Problem(location, f"duplicate id {row.item_id!r} (first at {first})", item_id=row.item_id)
                yield row

    def _row(self, location: str, values: dict[str, Any], classes: list[str] | None) -> Row:
        c = self._columns
        try:
            item_id = parse_id(values.get(c.id)) or location
        except ValueError as exc:
            return Problem(location, str(exc))
        try:
            label, raw = self._labels.label_of(values.get(c.label), classes)
            boxes = parse_boxes(values.get(c.boxes))
            explanation = parse_text(values.get(c.explanation), "explanation")
            source = parse_text(values.get(c.source), "source")
        except ValueError as exc:
            return Problem(location, str(exc), item_id=item_id)
        return EvalItem(
            item_id=item_id,
            label=label,
            raw_label=raw,
            source=source or self.name,
            location=location,
            boxes=boxes,
            explanation=explanation,
        )

    def images(self) -> Iterator[bytes | Problem]:
        self._require()
        column = self._columns.image
        for part, start, batch in self._parts.batches([column], IMAGE_BATCH):
            cells = batch.column(column).to_pylist()
            for offset, cell in enumerate(cells):
                yield self._image(cell, f"{part}:{start + offset}")

    def _image(self, cell: object, location: str) -> bytes | Problem:
        if isinstance(cell, dict):  # a Hugging Face Image value
            data, path = cell.get("bytes"), cell.get("path")
            if data:
                return bytes(data)
            cell = path
        if isinstance(cell, bytes | bytearray):
            return bytes(cell) if cell else Problem(location, "empty image bytes", "reading")
        if isinstance(cell, str) and cell.strip():
            return read_image_file(cell, self._root, location, self.max_image_bytes)
        return Problem(location, "no image in this row", "reading")

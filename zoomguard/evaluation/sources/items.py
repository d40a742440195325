"""What a dataset reader yields: items (no image bytes) and problems, then each item's image just in time.

Every reader lists its rows twice in the same order: `rows()` without the images (labels, boxes, sources: what
eval checks before any engine starts), then `images()` with each row's encoded image read as it is asked for,
so only the images being scored are in memory. A row is an `EvalItem` or a `Problem`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from zoomguard.evaluation.scores import BoxTuple
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.review import Label

Phase = Literal["listing", "reading", "decoding"]


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One labelled image of a dataset; `location` says where it is (a file, a manifest line, a table row)."""

    item_id: str
    label: Label
    raw_label: str  # the dataset's value, as the label map read it (the report counts them)
    source: str  # generator, folder or origin: the table's per-source rows
    location: str
    boxes: tuple[BoxTuple, ...] = ()
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A row that is not scored, and why: listed in problems.jsonl and counted in the report."""

    location: str
    reason: str
    phase: Phase = "listing"
    item_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "item_id": self.item_id, "phase": self.phase, "reason": self.reason}


Row = EvalItem | Problem


class DatasetSource(Protocol):
    """A dataset in one format. `rows()` and `images()` yield one value per row, in the same order."""

    name: str
    format: str
    max_image_bytes: int  # image files are read up to this + 1 bytes

    def describe(self) -> dict[str, Any]:
        """What the report says about the dataset: path, format, split, and what the reader skipped."""
        ...

    def rows(self) -> Iterator[Row]: ...

    def images(self) -> Iterator[bytes | Problem]: ...


DEFAULT_MAX_BYTES = ImageLimits().max_bytes


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """At most `max_bytes` + 1 bytes of a file: one over the limit is still refused by the detector's byte limit
    (an `error` prediction, as an upload over it is), but a multi-gigabyte file never lands in memory whole."""
    with path.open("rb") as stream:
        return stream.read(max_bytes + 1)

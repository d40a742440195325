"""The training dataset's on-disk format: one record per reviewed image, Parquet shards per split.

Layout (what `datasets.load_dataset("parquet", data_dir=DIR)` reads as splits train and test):
    DIR/train/part-00000.parquet, DIR/test/part-00000.parquet, DIR/manifest.json
The split is a stable hash of the image's sha256, so reposts of one image never straddle train and test
and re-collecting never moves an image between splits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zoomguard.schemas.review import Label

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
MANIFEST = "manifest.json"
SHARD_ROWS = 512


class TrainingRecord(BaseModel):
    """One labelled image. Boxes are in original-image pixels; empty when the reviewer gave none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    content_id: str = ""
    label: Label
    image_bytes: bytes = Field(repr=False, description="the original encoded image")
    image_sha256: str
    width: int
    height: int
    boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list, description="one per box ('' when none)")
    explanation: str | None = None
    source: str = Field("unknown", description="where the image came from, for per-source breakdowns")
    reviewer: str = ""
    decided_at: str = Field("", description="ISO 8601")
    served_p_ai: float | None = Field(None, description="the serving model's raw P(ai) when it was reviewed")
    served_model_version: str | None = None
    split: Split = "train"


def split_of(image_sha256: str, test_fraction: float) -> Split:
    """Stable: the same image lands in the same split for the same fraction, on every machine."""
    bucket = int.from_bytes(hashlib.sha256(b"split:" + image_sha256.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < test_fraction else "train"


def write_dataset(directory: Path, records: Iterable[TrainingRecord], manifest: dict[str, object]) -> dict[str, int]:
    """Replace the dataset in `directory` with `records`.

    Shards and manifest are written to a temp directory inside `directory`, then swapped in with renames:
    a crash while the shards are written leaves the previous dataset as it was. Other files in `directory`
    (the teacher's answer cache) are kept.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_split: dict[str, list[TrainingRecord]] = {split: [] for split in SPLITS}
    for record in records:
        by_split[record.split].append(record)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    try:
        counts = {}
        for split, rows in by_split.items():
            split_dir = staging / split
            split_dir.mkdir()
            rows.sort(key=lambda r: r.event_id)
            for index, start in enumerate(range(0, len(rows), SHARD_ROWS)):  # no empty shards: datasets rejects them
                chunk = rows[start : start + SHARD_ROWS]
                table = pa.Table.from_pylist([r.model_dump() for r in chunk], schema=_schema())
                pq.write_table(table, split_dir / f"part-{index:05d}.parquet")
            counts[split] = len(rows)
        (staging / MANIFEST).write_text(json.dumps({**manifest, "counts": counts}, indent=2, default=str))
        for split in SPLITS:
            old = directory / split
            if old.exists():
                old.rename(staging / f"{split}.old")
            (staging / split).rename(old)
        os.replace(staging / MANIFEST, directory / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def read_split(directory: Path, split: Split) -> list[TrainingRecord]:
    import pyarrow.parquet as pq

    shards = sorted((directory / split).glob("part-*.parquet"))
    if not shards and not (directory / MANIFEST).is_file():
        raise FileNotFoundError(f"no {split} shards in {directory} (run `zoomguard collect` first)")
    records: list[TrainingRecord] = []
    for shard in shards:
        records += [TrainingRecord.model_validate(row) for row in pq.read_table(shard).to_pylist()]
    return records


def read_manifest(directory: Path) -> dict[str, object]:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("event_id", pa.string()),
            ("content_id", pa.string()),
            ("label", pa.string()),
            ("image_bytes", pa.binary()),
            ("image_sha256", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("boxes", pa.list_(pa.list_(pa.int32(), 4))),
            ("findings", pa.list_(pa.string())),
            ("explanation", pa.string()),
            ("source", pa.string()),
            ("reviewer", pa.string()),
            ("decided_at", pa.string()),
            ("served_p_ai", pa.float64()),
            ("served_model_version", pa.string()),
            ("split", pa.string()),
        ]
    )


def labels(records: Sequence[TrainingRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.label] = counts.get(record.label, 0) + 1
    return counts

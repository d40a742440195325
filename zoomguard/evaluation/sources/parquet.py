"""Parquet files as datasets: `collect`'s shards, and Parquet tables as Hugging Face publishes them.

A Hugging Face Parquet export names each file after its split (`data/test-00000-of-00001.parquet`, or a
`test/` folder). When some files are named after a split, only those of the requested one are read (a folder or
file can also be passed directly); otherwise every `*.parquet` file below the folder is read, in path order.
ClassLabel names come from the `huggingface` metadata `datasets` writes into the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zoomguard.errors import BadInputError

SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "dev")


def split_of(relative: Path) -> str | None:
    """The split a file belongs to by its folders or its name's first word; None when it does not say."""
    for folder in relative.parts[:-1]:
        if folder.lower() in SPLIT_NAMES:
            return folder.lower()
    stem = relative.name.lower()
    for name in SPLIT_NAMES:
        if stem.startswith((f"{name}-", f"{name}_", f"{name}.")):
            return name
    return None


def parquet_files(path: Path, split: str) -> tuple[list[Path], dict[str, Any]]:
    """The files to read for `split`, and what the report says about the choice."""
    if path.is_file():
        return [path], {"files": 1}
    files = sorted(p for p in path.rglob("*.parquet") if not any(s.startswith(".") for s in p.relative_to(path).parts))
    if not files:
        raise BadInputError(f"{path} has no *.parquet files")
    splits = {p: split_of(p.relative_to(path)) for p in files}
    named = sorted({s for s in splits.values() if s is not None})
    if not named:
        return files, {"files": len(files)}
    chosen = [p for p in files if splits[p] == split]
    if not chosen:
        raise BadInputError(
            f"{path} holds the splits {', '.join(named)} but none named {split!r}: pass --split, or the split's "
            "folder or file as --dataset"
        )
    return chosen, {"files": len(chosen), "split": split, "splits_found": named, "not_read": len(files) - len(chosen)}


class ParquetParts:
    """Parquet files read with pyarrow, batch by batch (one row group's column at a time at most)."""

    def __init__(self, files: Sequence[Path], base: Path):
        self._files = list(files)
        self._base = base

    def _name(self, file: Path) -> str:
        try:
            return file.relative_to(self._base).as_posix()
        except ValueError:
            return file.name

    def _schema(self, file: Path) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(file)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...: the file is not Parquet
            raise BadInputError(f"{file} is not a readable Parquet file: {exc}") from None

    def column_names(self) -> list[str]:
        return list(self._schema(self._files[0]).names) if self._files else []

    def class_names(self, column: str) -> list[str] | None:
        if not self._files:
            return None
        metadata = self._schema(self._files[0]).metadata or {}
        try:
            features = json.loads(metadata.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
        except (ValueError, AttributeError):
            return None
        feature = features.get(column) if isinstance(features, dict) else None
        if (
            isinstance(feature, dict)
            and feature.get("_type") == "ClassLabel"
            and isinstance(feature.get("names"), list)
        ):
            return [str(name) for name in feature["names"]]
        return None

    def batches(self, columns: Sequence[str], batch_size: int) -> Iterator[tuple[str, int, Any]]:
        import pyarrow.parquet as pq

        for file in self._files:
            missing = [c for c in columns if c not in self._schema(file).names]
            if missing:
                raise BadInputError(f"{file} lacks the column(s) {', '.join(missing)} the first file has")
            start = 0
            with pq.ParquetFile(file) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_size, columns=list(columns)):
                    yield self._name(file), start, batch
                    start += batch.num_rows

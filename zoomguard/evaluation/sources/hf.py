"""Hugging Face datasets: one saved with `save_to_disk`, or a hub name (only when asked for, and reachable).

`datasets` memory-maps a saved dataset's Arrow files, so batches are read from the page cache, not held. A hub
name downloads the split into `datasets`' cache first; nothing here touches the network otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zoomguard.errors import BadInputError


class HfParts:
    """One split of a `datasets.Dataset`, read as Arrow tables."""

    def __init__(self, dataset: Any, part: str):
        self._dataset = dataset
        self._part = part

    def column_names(self) -> list[str]:
        return list(self._dataset.column_names)

    def class_names(self, column: str) -> list[str] | None:
        from datasets import ClassLabel

        feature = self._dataset.features.get(column)
        return [str(name) for name in feature.names] if isinstance(feature, ClassLabel) else None

    def batches(self, columns: Sequence[str], batch_size: int) -> Iterator[tuple[str, int, Any]]:
        start = 0
        table = self._dataset.select_columns(list(columns)).with_format("arrow")
        for batch in table.iter(batch_size=batch_size):
            yield self._part, start, batch
            start += batch.num_rows


def load_saved(path: Path, split: str) -> tuple[Any, str | None]:
    """A Dataset saved with save_to_disk (split None), or the `split` of a saved DatasetDict."""
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ...: not a saved dataset
        raise BadInputError(f"{path} is not a dataset saved by `datasets` (save_to_disk): {exc}") from None
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise BadInputError(
                f"{path} holds the splits {', '.join(sorted(loaded))}, not {split!r}: pass --split, or the "
                f"split's folder ({path}/NAME) as --dataset"
            )
        return loaded[split], split
    return loaded, None


def load_hub(name: str, split: str) -> Any:
    """`datasets.load_dataset(name, split=split)`; a clear error when the hub cannot be reached."""
    from datasets import load_dataset

    try:
        return load_dataset(name, split=split)
    except Exception as exc:  # offline, unknown name, gated, missing split: all end the run with the reason
        raise BadInputError(
            f"cannot load {name!r} (split {split!r}) from the Hugging Face hub: {type(exc).__name__}: {exc}. "
            "Where the hub is not reachable, save the dataset with save_to_disk on a machine that reaches it and "
            "pass that folder as --dataset"
        ) from None

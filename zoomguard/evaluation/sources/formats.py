"""Which reader a `--dataset` value needs, and the reader itself (the only place that picks one).

`hf:NAME[:SPLIT]` is a hub dataset; otherwise the value is a path: a `.json` / `.jsonl` file is a manifest, a
`.parquet` file a table; a folder with `state.json` or `dataset_dict.json` is a dataset saved by `datasets`, one
with `manifest.json` and `train/` or `test/` is `collect`'s, one with `*.parquet` files below it a Parquet
dataset, and any other folder an image folder with label folders. `evaluation.dataset.format` overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomguard.dataset.records import MANIFEST, SPLITS, read_manifest
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.evaluation.sources.folder import FolderSource
from zoomguard.evaluation.sources.hf import HfParts, load_hub, load_saved
from zoomguard.evaluation.sources.items import DatasetSource
from zoomguard.evaluation.sources.labels import LabelMap
from zoomguard.evaluation.sources.manifest import ManifestSource
from zoomguard.evaluation.sources.parquet import ParquetParts, parquet_files
from zoomguard.evaluation.sources.settings import DatasetColumns, DatasetFormat, DatasetSettings
from zoomguard.evaluation.sources.tables import TableParts, TableSource

HUB_PREFIX = "hf:"
HF_SAVED_MARKERS = ("state.json", "dataset_dict.json")
# what `collect` writes (zoomguard/dataset/records.py): the columns are fixed
COLLECT_COLUMNS = DatasetColumns(
    image="image_bytes", label="label", boxes="boxes", explanation="explanation", source="source", id="event_id"
)


def detect_format(spec: str) -> DatasetFormat:
    if spec.startswith(HUB_PREFIX):
        return "hf_hub"
    path = Path(spec)
    if not path.exists():
        raise BadInputError(
            f"dataset {spec} does not exist (a folder of images, a .json/.jsonl manifest, Parquet, a saved "
            "Hugging Face dataset, hf:NAME, or a folder `zoomguard collect` wrote)"
        )
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".json", ".jsonl"):
            return "manifest"
        if suffix == ".parquet":
            return "parquet"
        raise BadInputError(f"{path}: a dataset file is .json, .jsonl or .parquet (or pass a folder)")
    if any((path / name).is_file() for name in HF_SAVED_MARKERS):
        return "hf_disk"
    if (path / MANIFEST).is_file() and any((path / split).is_dir() for split in SPLITS):
        return "collect"
    if next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    return "folder"


def open_dataset(spec: str, settings: DatasetSettings, split: str, max_image_bytes: int | None = None) -> DatasetSource:
    """The reader for `spec`; BadInputError when it is not there or not what its format needs. Image files are
    read up to `max_image_bytes` + 1 (the detector's byte limit; default: its default)."""
    source = _open(spec, settings, split)
    if max_image_bytes is not None:
        source.max_image_bytes = max_image_bytes
    return source


def _open(spec: str, settings: DatasetSettings, split: str) -> DatasetSource:
    chosen = detect_format(spec) if settings.format == "auto" else settings.format
    labels = LabelMap.with_pairs(settings.label_map)
    root = Path(settings.image_root) if settings.image_root else None
    if chosen == "hf_hub":
        return _hub(spec, settings, labels, root, split)
    path = Path(spec)
    if not path.exists():
        raise BadInputError(f"dataset {spec} does not exist")
    if chosen == "manifest":
        return ManifestSource(path, labels, settings.columns, image_root=root, name=settings.name)
    if chosen == "folder":
        if not path.is_dir():
            raise BadInputError(f"{path} is not a folder (the folder format is label folders of images)")
        return FolderSource(path, labels, source_depth=settings.source_depth, name=settings.name)
    name = settings.name or (path.stem if path.is_file() else path.resolve().name)
    base = path if path.is_dir() else path.parent
    columns = COLLECT_COLUMNS if chosen == "collect" else settings.columns
    description: dict[str, Any] = {"path": str(path)}
    parts: TableParts
    if chosen == "collect":
        files = sorted((path / split).glob("part-*.parquet"))
        if not files:
            raise BadInputError(f"the {split} split of {path} is empty: nothing to evaluate")
        description |= {"split": split, "manifest": read_manifest(path)}
        parts = ParquetParts(files, base)
    elif chosen == "parquet":
        files, chosen_files = parquet_files(path, split)
        description |= chosen_files
        parts = ParquetParts(files, base)
    else:
        dataset, saved_split = load_saved(path, split)
        description["split"] = saved_split
        parts = HfParts(dataset, saved_split or name)
    return TableSource(name, chosen, parts, columns, labels, root or base, description)


def _hub(spec: str, settings: DatasetSettings, labels: LabelMap, root: Path | None, split: str) -> DatasetSource:
    """`hf:NAME[:SPLIT]`: the only reader that may reach the network, and only because the user named the hub."""
    name, _, hub_split = spec.removeprefix(HUB_PREFIX).partition(":")
    if not name:
        raise ConfigError("a hub dataset is hf:NAME or hf:NAME:SPLIT")
    hub_split = hub_split or split
    dataset = load_hub(name, hub_split)
    description: dict[str, Any] = {"path": spec, "hub": name, "split": hub_split}
    parts = HfParts(dataset, hub_split)
    return TableSource(
        settings.name or name, "hf_hub", parts, settings.columns, labels, root or Path.cwd(), description
    )

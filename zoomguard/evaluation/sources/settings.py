"""How `eval` reads a dataset: its format, the column names of manifests and tables, the label map (no I/O)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zoomguard.evaluation.sources.labels import parse_pairs

DatasetFormat = Literal["auto", "collect", "folder", "manifest", "parquet", "hf_disk", "hf_hub"]


class DatasetColumns(BaseModel):
    """Keys of a JSON/JSONL manifest's objects, or columns of a Parquet / Hugging Face table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(
        "image",
        min_length=1,
        description="the image: a file path (relative to evaluation.dataset.image_root), encoded bytes, or a "
        "Hugging Face Image value ({bytes, path})",
    )
    label: str = Field("label", min_length=1, description="the label, read through the label map")
    boxes: str = Field(
        "boxes", min_length=1, description="reference boxes in original pixels, x1,y1,x2,y2 (one, or a list); optional"
    )
    explanation: str = Field("explanation", min_length=1, description="a reference explanation (kept, not scored)")
    source: str = Field(
        "source",
        min_length=1,
        description="generator or origin, for the per-source rows; absent: the image's folder (manifests) or the "
        "dataset name (tables)",
    )
    id: str = Field("id", min_length=1, description="item id; absent: the image path (manifests) or FILE:ROW (tables)")


class DatasetSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: DatasetFormat = Field(
        "auto",
        description="auto: from the path (hf:NAME -> hf_hub; *.json/*.jsonl -> manifest; a folder with state.json "
        "or dataset_dict.json -> hf_disk, with manifest.json and split folders -> collect, with *.parquet -> "
        "parquet, else folder)",
    )
    name: str = Field("", description="the dataset's name in the table; empty: the folder's or file's name")
    columns: DatasetColumns = Field(default_factory=DatasetColumns)
    label_map: list[str] = Field(
        default_factory=list,
        description="VALUE=LABEL pairs (comma-separated too) over the default label table, for label values and "
        "label-folder names; LABEL is ai_generated or real (nature=real,1=ai_generated)",
    )
    image_root: str = Field(
        "", description="where relative image paths resolve; empty: the manifest's folder, or the dataset folder"
    )
    source_depth: int = Field(
        0,
        ge=0,
        description="folders: how many path parts above the label folder name the source (1: progan/cat/0_real "
        "-> progan); 0: all of them",
    )
    max_problem_rate: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="share of rows with a problem (no or unknown label, unreadable image, bad boxes) above which "
        "eval refuses to report numbers; below it they are skipped, counted and listed in problems.jsonl",
    )

    @field_validator("label_map")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        parse_pairs(value)  # ValueError names the malformed pair
        return value

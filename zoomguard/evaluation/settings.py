"""Settings of evaluation, calibration and the promotion gate (and the model registry it writes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zoomguard.evaluation.sources.settings import DatasetSettings

Stages = Literal["model", "cascade", "both"]
PrimaryMetric = Literal["accuracy", "f1", "auroc", "selective_accuracy", "mean_box_iou", "ece"]


class EvaluationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registry_dir: str = Field("models/registry", description="promoted adapters, metrics and calibration")
    worker_registry_dir: str = Field(
        "",
        description="the registry's path as workers mount it (ModelUpdate.adapter_path); empty: registry_dir",
    )
    split: Literal["train", "test"] = Field(
        "test",
        description="the split `promote` scores on, and `eval` reads from `collect` output, split-named Parquet "
        "files and saved DatasetDicts (other splits: pass their folder, or hf:NAME:SPLIT)",
    )
    concurrency: int = Field(32, ge=1, le=4096, description="images evaluated at once (the engine batches them)")
    max_records: int = Field(
        200_000,
        ge=1,
        description="a dataset with more items is refused before any image is scored (promote holds its split's "
        "images in memory; eval streams them, `concurrency` at a time, and keeps ~1 kB per item)",
    )
    stages: Stages = Field(
        "model",
        description="eval: model: the detector alone (the papers' numbers); cascade: evidence, known content, then "
        "the model, as zoomguard serves; both: each image through both (the model runs once when it decides)",
    )
    bank_csv: str = Field(
        "", description="eval with the cascade: a hash list (CSV, as `bank import` reads) for the known-content stage"
    )
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)
    ece_bins: int = Field(10, ge=2, le=100, description="equal-width P(ai) bins of ECE and the reliability diagram")
    primary_metric: PrimaryMetric = Field(
        "accuracy", description="what the candidate must improve (ece: lower is better; the rest: higher)"
    )
    margin: float = Field(
        0.01, ge=0.0, le=1.0, description="the candidate must beat the serving model's primary metric by at least this"
    )
    max_parse_failure_increase: float = Field(
        0.0, ge=0.0, le=1.0, description="tolerated rise of the parse-failure rate (0: it must not rise at all)"
    )
    calibration_method: Literal["auto", "identity", "temperature", "isotonic"] = Field(
        "auto", description="auto: the method with the lowest cross-fitted log loss"
    )
    calibration_min_samples: int = Field(
        50, ge=2, description="fewer labelled predictions with a P(ai) than this: identity calibration"
    )
    calibration_folds: int = Field(5, ge=2, le=20, description="cross-fitting folds for choosing and scoring it")
    max_adapter_bytes: int = Field(
        4 * 1024**3, ge=1024, description="a candidate adapter directory larger than this is refused"
    )
    publish_timeout_s: float = Field(30.0, gt=0, description="how long promote waits for the ModelUpdate's ack")

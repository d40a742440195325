"""An evaluation's report as one JSON value: metrics, per-source breakdown, reliability bins, calibration.

Pure: it takes the predictions and what is known about the dataset, and reads no files and no engine, so
`eval` and `promote` build the same report from the same predictions however these were obtained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zoomguard.dataset.records import TrainingRecord
from zoomguard.detector.settings import DetectorSettings
from zoomguard.evaluation.calibration_fit import CalibrationFit, fit_calibration
from zoomguard.evaluation.scores import BoxTuple, Prediction, per_source, reliability_bins, summarize
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.schemas.detection import Detection, ModelInfo
from zoomguard.schemas.review import Label

REPORT_SCHEMA_VERSION = 1
UNCERTAIN_POLICY = (
    "accuracy counts uncertain, unparseable and failed records as wrong; selective_accuracy is over "
    "confident decisions only (coverage = their share); precision/recall/F1 are for ai_generated; "
    "AUROC and ECE use the records with a P(ai) (scored)"
)


@dataclass(frozen=True)
class ModelSpec:
    """A model to score: the base weights (adapter None) or a LoRA adapter on them, under a version name."""

    role: str  # "model", "serving", "candidate": names the output folder and request ids
    adapter: str | None = None
    version: str | None = None


@dataclass
class ModelEvaluation:
    spec: ModelSpec
    model: ModelInfo
    predictions: list[Prediction]
    report: dict[str, Any] = field(default_factory=dict)
    calibration: CalibrationFit | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.report.get("metrics", {}))


def prediction_from(record: TrainingRecord, detection: Detection | None, error: str | None = None) -> Prediction:
    """A record and what the model said about it; p_ai is the raw one (before any calibration)."""
    return prediction_of(record.event_id, record.label, record.source, tuple(record.boxes), detection, error)


def prediction_of(
    event_id: str,
    label: Label,
    source: str,
    reference_boxes: tuple[BoxTuple, ...],
    detection: Detection | None,
    error: str | None = None,
) -> Prediction:
    """An image's label next to its detection (None: it failed with `error`); p_ai is the raw one."""
    if detection is None:
        return Prediction(
            event_id=event_id,
            label=label,
            decision="error",
            p_ai=None,
            source=source,
            reference_boxes=reference_boxes,
            error=error,
        )
    raw = detection.p_ai_raw if detection.p_ai_raw is not None else detection.p_ai
    return Prediction(
        event_id=event_id,
        label=label,
        decision=detection.decision,
        p_ai=raw,
        source=source,
        reason=detection.reason,
        boxes=tuple(region.box for region in detection.regions),
        reference_boxes=reference_boxes,
        decision_source=detection.decision_source,
    )


def build_report(
    result: ModelEvaluation,
    evaluation: EvaluationSettings,
    detector: DetectorSettings,
    dataset: Mapping[str, Any],
    created_at: datetime,
) -> ModelEvaluation:
    """Fill `result`'s report and cross-fitted calibration; `dataset` is its path, split and manifest."""
    ev = evaluation
    predictions = result.predictions
    scored = [p for p in predictions if p.p_ai is not None]
    probabilities = [float(p.p_ai) for p in scored if p.p_ai is not None]
    is_ai = [p.label == "ai_generated" for p in scored]
    result.calibration = fit_calibration(
        probabilities,
        is_ai,
        method=ev.calibration_method,
        min_samples=ev.calibration_min_samples,
        folds=ev.calibration_folds,
        ece_bins=ev.ece_bins,
    )
    result.report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": created_at.isoformat(),
        "model": {**result.model.model_dump(), "adapter": result.spec.adapter},
        "dataset": dict(dataset),
        "settings": {
            "ece_bins": ev.ece_bins,
            "ai_threshold": detector.ai_threshold,
            "real_threshold": detector.real_threshold,
            "uncertain_policy": UNCERTAIN_POLICY,
        },
        "metrics": {**summarize(predictions, ev.ece_bins), "calibrated_ece": _calibrated_ece(result.calibration)},
        "per_source": per_source(predictions, ev.ece_bins),
        "reliability": [vars(b) for b in reliability_bins(probabilities, is_ai, ev.ece_bins)],
        "calibration": result.calibration.to_json(),
    }
    return result


def _calibrated_ece(fit: CalibrationFit) -> float | None:
    """The cross-fitted (held-out) ECE after calibration; None when too few labels to calibrate."""
    return fit.heldout.get(fit.calibration.method, {}).get("ece")

"""The evaluation report built from predictions alone (no engine, no files), and a failed record as a
prediction."""

from __future__ import annotations

from datetime import UTC, datetime

from zoomguard.dataset.records import TrainingRecord
from zoomguard.detector.settings import DetectorSettings
from zoomguard.evaluation.report import REPORT_SCHEMA_VERSION, ModelEvaluation, ModelSpec, build_report, prediction_from
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.schemas.detection import ModelInfo

AI, REAL = "ai_generated", "real"


def _p(label: str, decision: str, p_ai: float | None, source: str = "s") -> Prediction:
    return Prediction(event_id=f"e-{label}-{p_ai}", label=label, decision=decision, p_ai=p_ai, source=source)  # type: ignore[arg-type]


def test_the_report_is_the_predictions_numbers_and_the_given_context() -> None:
    predictions = [_p(AI, AI, 0.9), _p(AI, REAL, 0.2), _p(REAL, REAL, 0.1, "cam"), _p(REAL, "error", None, "cam")]
    result = ModelEvaluation(ModelSpec("candidate", "/a"), ModelInfo(name="m", version="v", family="f"), predictions)
    dataset = {"path": "/data", "split": "test", "manifest": {"counts": {"test": 4}}}
    when = datetime(2026, 11, 24, 12, tzinfo=UTC)
    detector = DetectorSettings(ai_threshold=0.8, real_threshold=0.3)
    build_report(result, EvaluationSettings(ece_bins=4), detector, dataset, when)

    report = result.report
    assert report["schema_version"] == REPORT_SCHEMA_VERSION and report["created_at"] == when.isoformat()
    assert report["model"] == {"name": "m", "version": "v", "family": "f", "adapter": "/a"}
    assert report["dataset"] == dataset
    assert report["settings"]["ai_threshold"] == 0.8 and report["settings"]["real_threshold"] == 0.3
    assert report["settings"]["ece_bins"] == 4 and len(report["reliability"]) == 4
    assert result.metrics["count"] == 4 and result.metrics["accuracy"] == 0.5  # the error counts as wrong
    assert sorted(report["per_source"]) == ["cam", "s"]
    # three labelled P(ai) are below calibration_min_samples: identity, and no calibrated ECE
    assert result.calibration is not None and result.calibration.calibration.method == "identity"
    assert result.metrics["calibrated_ece"] is None and report["calibration"] == result.calibration.to_json()


def test_a_record_that_could_not_run_becomes_an_error_prediction() -> None:
    record = TrainingRecord(
        event_id="e1", label="real", image_bytes=b"x", image_sha256="ab", width=1, height=1, boxes=[(0, 0, 1, 1)]
    )
    failed = prediction_from(record, None, "image_decode: broken")
    assert (failed.decision, failed.p_ai, failed.error) == ("error", None, "image_decode: broken")
    assert failed.reference_boxes == ((0, 0, 1, 1),)

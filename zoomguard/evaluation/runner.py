"""Run the real ZoomIn detector over a dataset split and score it: the engine of `eval` and `promote`.

One engine serves every model compared in a run: the base weights, and LoRA adapters loaded next to
them and named per request, so the serving model and a candidate are scored on the same images by the
same engine build. Models are scored on raw P(ai) (no calibration), so the comparison is between
models, not between calibrations; the calibration is fitted afterwards from the same predictions.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from zoomguard.app.config import Settings
from zoomguard.dataset.records import Split, TrainingRecord, read_manifest, read_split
from zoomguard.detector.engines.adapters import adapter_version
from zoomguard.detector.engines.base import Adapter, AdapterEngine, Engine
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.detector.zoomin import ServingModel, ZoomInDetector
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.evaluation.calibration_fit import CalibrationFit, fit_calibration
from zoomguard.evaluation.charts import confusion_matrix, reliability_diagram
from zoomguard.evaluation.scores import Prediction, per_source, reliability_bins, summarize
from zoomguard.schemas.detection import Detection, ModelInfo

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


def load_records(dataset_dir: Path, split: Split, max_records: int) -> list[TrainingRecord]:
    """The split's records; a missing or empty split, or one over the bound, is refused with a clear error."""
    if not dataset_dir.is_dir():
        raise BadInputError(f"dataset directory {dataset_dir} does not exist (run `zoomguard collect` first)")
    try:
        records = read_split(dataset_dir, split)
    except FileNotFoundError as exc:
        raise BadInputError(str(exc)) from None
    if not records:
        raise BadInputError(f"the {split} split of {dataset_dir} is empty: nothing to evaluate")
    if len(records) > max_records:
        raise BadInputError(
            f"the {split} split of {dataset_dir} has {len(records)} records, above evaluation.max_records={max_records}"
        )
    return records


async def evaluate_models(
    settings: Settings,
    specs: Sequence[ModelSpec],
    records: Sequence[TrainingRecord],
    *,
    progress: bool = True,
) -> list[ModelEvaluation]:
    """Score each model in turn on `records` with one engine (LoRA enabled when any spec has an adapter)."""
    # the specs say which weights serve; the engine starts on the base ones and loads adapters as asked
    engine_update: dict[str, Any] = {"lora_adapter": "", "lora_version": ""}
    if any(spec.adapter for spec in specs):
        engine_update["enable_lora"] = True
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(update=engine_update)})
    engine = build_engine(settings.engine, settings.detector)
    await engine.start()
    try:
        detector = build_detector(settings.engine, settings.detector, engine)
        base = detector.model
        results = []
        for spec in specs:
            info = await _serve(engine, detector, base, spec)
            predictions = await predict(detector, records, spec.role, settings.evaluation.concurrency, progress)
            results.append(ModelEvaluation(spec, info, predictions))
        return results
    finally:
        await engine.close()


async def _serve(engine: Engine, detector: ZoomInDetector, base: ModelInfo, spec: ModelSpec) -> ModelInfo:
    """Point the detector at the spec's model (loading its adapter into the engine) and return its identity."""
    if spec.adapter is None:
        info = base.model_copy(update={"version": spec.version}) if spec.version else base
        detector.use(ServingModel(info=info))
        return info
    if not isinstance(engine, AdapterEngine):
        raise ConfigError(f"this engine cannot serve LoRA adapters, so {spec.adapter} cannot be evaluated")
    name = spec.version or adapter_version(spec.adapter)
    await engine.load_adapter(Adapter(name=name, path=str(spec.adapter)))
    info = base.model_copy(update={"version": name})
    detector.use(ServingModel(info=info, adapter=name))
    return info


async def predict(
    detector: ZoomInDetector,
    records: Sequence[TrainingRecord],
    role: str,
    concurrency: int,
    progress: bool,
) -> list[Prediction]:
    """Every record through the detector, `concurrency` at a time; results keep the records' order."""
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(records), desc=f"eval {role}", unit="img", file=sys.stderr, disable=not progress)

    async def one(index: int, record: TrainingRecord) -> Prediction:
        async with limit:
            try:
                detection = await detector.detect_bytes(record.image_bytes, request_id=f"eval-{role}-{index}")
            except BadInputError as exc:  # this image cannot run on this model; unavailability propagates
                return prediction_from(record, None, f"{exc.kind}: {exc}")
            finally:
                bar.update(1)
        return prediction_from(record, detection)

    try:
        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(records))))
    finally:
        bar.close()


def prediction_from(record: TrainingRecord, detection: Detection | None, error: str | None = None) -> Prediction:
    """A record and what the model said about it; p_ai is the raw one (before any calibration)."""
    if detection is None:
        return Prediction(
            event_id=record.event_id,
            label=record.label,
            decision="error",
            p_ai=None,
            source=record.source,
            reference_boxes=tuple(record.boxes),
            error=error,
        )
    raw = detection.p_ai_raw if detection.p_ai_raw is not None else detection.p_ai
    return Prediction(
        event_id=record.event_id,
        label=record.label,
        decision=detection.decision,
        p_ai=raw,
        source=record.source,
        reason=detection.reason,
        boxes=tuple(region.box for region in detection.regions),
        reference_boxes=tuple(record.boxes),
    )


def build_report(evaluation: ModelEvaluation, settings: Settings, dataset_dir: Path, split: Split) -> ModelEvaluation:
    """Metrics, per-source breakdown, reliability bins and the cross-fitted calibration, as one JSON value."""
    ev = settings.evaluation
    predictions = evaluation.predictions
    scored = [p for p in predictions if p.p_ai is not None]
    probabilities = [float(p.p_ai) for p in scored if p.p_ai is not None]
    is_ai = [p.label == "ai_generated" for p in scored]
    evaluation.calibration = fit_calibration(
        probabilities,
        is_ai,
        method=ev.calibration_method,
        min_samples=ev.calibration_min_samples,
        folds=ev.calibration_folds,
        ece_bins=ev.ece_bins,
    )
    evaluation.report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "model": {**evaluation.model.model_dump(), "adapter": evaluation.spec.adapter},
        "dataset": {"path": str(dataset_dir), "split": split, "manifest": read_manifest(dataset_dir)},
        "settings": {
            "ece_bins": ev.ece_bins,
            "ai_threshold": settings.detector.ai_threshold,
            "real_threshold": settings.detector.real_threshold,
            "uncertain_policy": UNCERTAIN_POLICY,
        },
        "metrics": {**summarize(predictions, ev.ece_bins), "calibrated_ece": _calibrated_ece(evaluation.calibration)},
        "per_source": per_source(predictions, ev.ece_bins),
        "reliability": [vars(b) for b in reliability_bins(probabilities, is_ai, ev.ece_bins)],
        "calibration": evaluation.calibration.to_json(),
    }
    return evaluation


def _calibrated_ece(fit: CalibrationFit) -> float | None:
    """The cross-fitted (held-out) ECE after calibration; None when too few labels to calibrate."""
    return fit.heldout.get(fit.calibration.method, {}).get("ece")


def write_outputs(evaluation: ModelEvaluation, out_dir: Path, ece_bins: int) -> dict[str, Path]:
    """report.json, predictions.jsonl, reliability.png and confusion.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out_dir / "report.json",
        "predictions": out_dir / "predictions.jsonl",
        "reliability": out_dir / "reliability.png",
        "confusion": out_dir / "confusion.png",
    }
    paths["report"].write_text(json.dumps(evaluation.report, indent=2, default=str))
    with paths["predictions"].open("w") as sink:
        for prediction in evaluation.predictions:
            sink.write(json.dumps(prediction.to_json()) + "\n")
    scored = [p for p in evaluation.predictions if p.p_ai is not None]
    bins = reliability_bins(
        [float(p.p_ai or 0.0) for p in scored], [p.label == "ai_generated" for p in scored], ece_bins
    )
    version = evaluation.model.version
    reliability_diagram(bins, paths["reliability"], title=f"Reliability of P(ai): {version}")
    confusion_matrix(evaluation.report["metrics"]["confusion"], paths["confusion"], title=f"Confusion: {version}")
    return paths


async def evaluate_dataset(
    settings: Settings,
    dataset_dir: Path,
    out_dir: Path | None,
    *,
    adapter: str | None = None,
    split: Split | None = None,
    progress: bool = True,
) -> ModelEvaluation:
    """`zoomguard eval`: one model (base or base + adapter) on one split; outputs written when out_dir is set."""
    split = split or settings.evaluation.split
    records = load_records(dataset_dir, split, settings.evaluation.max_records)
    adapter = adapter or settings.engine.lora_adapter or None
    version = (settings.engine.lora_version or None) if adapter else None
    [evaluation] = await evaluate_models(settings, [ModelSpec("model", adapter, version)], records, progress=progress)
    build_report(evaluation, settings, dataset_dir, split)
    if out_dir is not None:
        write_outputs(evaluation, out_dir, settings.evaluation.ece_bins)
    return evaluation

"""Run the real ZoomIn detector over a dataset split and score it: the engine of `eval` and `promote`.

One engine serves every model compared in a run: the base weights, and LoRA adapters loaded next to
them and named per request, so the serving model and a candidate are scored on the same images by the
same engine build. Models are scored on raw P(ai) (no calibration), so the comparison is between
models, not between calibrations; the calibration is fitted afterwards from the same predictions
(report.py), and the files are written by outputs.py. `promote` holds its split in memory (two models
score the same records); `eval` streams any dataset format through eval_run.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from zoomguard.dataset.records import Split, TrainingRecord, read_manifest, read_split
from zoomguard.detector.engines.adapters import adapter_version
from zoomguard.detector.engines.base import Adapter, AdapterEngine, Engine
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ServingModel, ZoomInDetector
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.evaluation.eval_run import EvalRun, evaluate_source, listed_items
from zoomguard.evaluation.report import ModelEvaluation, ModelSpec, prediction_from
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.evaluation.sources.formats import open_dataset
from zoomguard.evaluation.stages import cascade_parts
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.settings import KnownContentSettings
from zoomguard.schemas.detection import ModelInfo


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


def describe_dataset(dataset_dir: Path, split: Split) -> dict[str, Any]:
    """The report's `dataset` value: where the records came from, and the manifest that describes them."""
    return {"path": str(dataset_dir), "split": split, "manifest": read_manifest(dataset_dir)}


async def evaluate_models(
    engine: EngineSettings,
    detector: DetectorSettings,
    specs: Sequence[ModelSpec],
    records: Sequence[TrainingRecord],
    *,
    concurrency: int,
    progress: bool = True,
) -> list[ModelEvaluation]:
    """Score each model in turn on `records` with one engine (LoRA enabled when any spec has an adapter)."""
    engine = _engine_for(engine, specs)
    backend = build_engine(engine, detector)
    await backend.start()
    try:
        zoomin = build_detector(engine, detector, backend)
        base = zoomin.model
        results = []
        for spec in specs:
            info = await _serve(backend, zoomin, base, spec)
            predictions = await predict(zoomin, records, spec.role, concurrency, progress)
            results.append(ModelEvaluation(spec, info, predictions))
        return results
    finally:
        await backend.close()


def _engine_for(engine: EngineSettings, specs: Sequence[ModelSpec]) -> EngineSettings:
    """The specs say which weights serve: the engine starts on the base ones and loads adapters as asked."""
    update: dict[str, Any] = {"lora_adapter": "", "lora_version": ""}
    if any(spec.adapter for spec in specs):
        update["enable_lora"] = True
    return engine.model_copy(update=update)


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


async def evaluate_stages(
    engine: EngineSettings,
    detector: DetectorSettings,
    evaluation: EvaluationSettings,
    dataset: str | Path,
    out_dir: Path | None,
    *,
    adapter: str | None = None,
    split: str | None = None,
    evidence: EvidenceSettings | None = None,
    known: KnownContentSettings | None = None,
    command: str | None = None,
    progress: bool = True,
) -> EvalRun:
    """`zoomguard eval`: one model (base or base + adapter) on one dataset, through `evaluation.stages`.

    The dataset is opened and listed, and the bank loaded, before the engine starts: a dataset that would be
    refused costs no engine start. `evidence` and `known` are the cascade's settings (defaults when None)."""
    split = split or evaluation.split
    source = await asyncio.to_thread(open_dataset, str(dataset), evaluation.dataset, split, detector.limits.max_bytes)
    rows = await asyncio.to_thread(lambda: list(source.rows()))
    listed_items(source, rows, evaluation)
    parts = None
    if evaluation.stages != "model":
        parts = await asyncio.to_thread(
            cascade_parts,
            evidence or EvidenceSettings(),
            known or KnownContentSettings(),
            detector.limits,
            evaluation.bank_csv,
        )
    elif evaluation.bank_csv:
        raise ConfigError("--bank feeds the cascade's known-content stage: add --stages cascade (or both)")
    adapter = adapter or engine.lora_adapter or None
    version = (engine.lora_version or None) if adapter else None
    spec = ModelSpec("model", adapter, version)
    settings = _engine_for(engine, [spec])
    backend = build_engine(settings, detector)
    await backend.start()
    try:
        zoomin = build_detector(settings, detector, backend)
        await _serve(backend, zoomin, zoomin.model, spec)
        return await evaluate_source(
            zoomin,
            source,
            evaluation,
            detector,
            rows=rows,
            spec=spec,
            cascade=parts,
            out_dir=out_dir,
            command=command,
            progress=progress,
        )
    finally:
        await backend.close()


async def evaluate_dataset(
    engine: EngineSettings,
    detector: DetectorSettings,
    evaluation: EvaluationSettings,
    dataset_dir: str | Path,
    out_dir: Path | None,
    *,
    adapter: str | None = None,
    split: Split | None = None,
    progress: bool = True,
) -> ModelEvaluation:
    """The first stage's evaluation of `evaluate_stages` (the model's, by default): outputs in out_dir when set."""
    run = await evaluate_stages(
        engine, detector, evaluation, dataset_dir, out_dir, adapter=adapter, split=split, progress=progress
    )
    return run.results[0]

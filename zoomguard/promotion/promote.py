"""Promotion: a candidate adapter replaces the serving model only if it is measurably better.

`promote` scores the serving model (the registry's current version, or the base model) and the candidate
on the same held-out split with one engine, applies the gate (gate.py), and on success: copies the adapter
into the registry, publishes a ModelUpdate through the `publish` it was given (which returns once the
broker acknowledged it), then points the registry at the new version. Publishing comes before the
pointer, so a failed publish leaves the registry serving what it served before. How an update reaches
the broker is the caller's wiring (app/, commands/), so this flow needs no Kafka.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from zoomguard.dataset.records import Split
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.evaluation.outputs import write_outputs
from zoomguard.evaluation.report import ModelSpec, build_report
from zoomguard.evaluation.runner import describe_dataset, evaluate_models, load_records
from zoomguard.evaluation.scores import headline
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.promotion.gate import GateRule, PromotionResult, gate
from zoomguard.promotion.registry import Registry, adapter_digest, version_name
from zoomguard.schemas.review import ModelUpdate

Publish = Callable[[ModelUpdate], None]  # returns once the update is acknowledged; raises otherwise


def promote(
    engine: EngineSettings,
    detector: DetectorSettings,
    evaluation: EvaluationSettings,
    candidate_dir: Path,
    dataset_dir: Path,
    *,
    publish: Publish,
    out_dir: Path | None = None,
    split: Split | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PromotionResult:
    """Library entry for `zoomguard promote` and `zoomguard retrain` (runs its own event loop)."""
    return asyncio.run(
        promote_async(
            engine,
            detector,
            evaluation,
            candidate_dir,
            dataset_dir,
            publish=publish,
            out_dir=out_dir,
            split=split,
            dry_run=dry_run,
            progress=progress,
        )
    )


async def promote_async(
    engine: EngineSettings,
    detector: DetectorSettings,
    evaluation: EvaluationSettings,
    candidate_dir: Path,
    dataset_dir: Path,
    *,
    publish: Publish,
    out_dir: Path | None = None,
    split: Split | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PromotionResult:
    ev = evaluation
    split = split or ev.split
    if not engine.model:
        raise ConfigError("no base model: pass --model DIR_OR_NAME (or set engine.model)")
    if not (candidate_dir / "adapter_config.json").is_file():
        raise BadInputError(f"{candidate_dir} is not a LoRA adapter directory (no adapter_config.json)")
    adapter_digest(candidate_dir, ev.max_adapter_bytes)  # refuse an oversize candidate before any engine starts
    registry = Registry(Path(ev.registry_dir))
    current = registry.current()
    if current is not None and current.base_model != engine.model:
        raise ConfigError(
            f"the registry serves adapters on {current.base_model!r} but engine.model is {engine.model!r}: "
            "a candidate must be trained on the serving base model"
        )
    records = load_records(dataset_dir, split, ev.max_records)
    serving_spec = ModelSpec("serving", str(current.adapter_dir), current.version) if current else ModelSpec("serving")
    serving, candidate = await evaluate_models(
        engine,
        detector,
        [serving_spec, ModelSpec("candidate", str(candidate_dir))],
        records,
        concurrency=ev.concurrency,
        progress=progress,
    )
    for scored in (serving, candidate):
        build_report(scored, ev, detector, describe_dataset(dataset_dir, split), datetime.now(UTC))
        if out_dir is not None:
            write_outputs(scored, out_dir / scored.spec.role, ev.ece_bins)
    rule = GateRule.from_settings(ev)
    decision = gate(candidate.metrics, serving.metrics, rule)
    result = PromotionResult(decision.accepted, decision, rule, serving, candidate, dry_run=dry_run)
    if decision.accepted and not dry_run:
        await asyncio.to_thread(
            _register_and_publish, engine.model, ev, registry, result, candidate_dir, dataset_dir, split, publish
        )
    elif decision.accepted:
        result.notes.append("dry run: nothing written to the registry, nothing published")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result.report_path = out_dir / "promotion.json"
        result.report_path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    return result


def _register_and_publish(
    base_model: str,
    evaluation: EvaluationSettings,
    registry: Registry,
    result: PromotionResult,
    candidate_dir: Path,
    dataset_dir: Path,
    split: Split,
    publish: Publish,
) -> None:
    ev = evaluation
    now = datetime.now(UTC)
    version = version_name(candidate_dir, now, ev.max_adapter_bytes)
    calibration = result.candidate.calibration
    assert calibration is not None
    previous = registry.current()
    worker_root = Path(ev.worker_registry_dir) if ev.worker_registry_dir else Path(ev.registry_dir).resolve()
    update = ModelUpdate(
        model_version=version,
        base_model=base_model,
        adapter_path=str(worker_root / version / "adapter"),
        metrics=headline(result.candidate.metrics),
        baseline_metrics=headline(result.serving.metrics),
        calibration=calibration.calibration,
        previous_version=previous.version if previous else None,
        promoted_at=now,
    )
    registry.add(
        version,
        candidate_dir,
        model={
            **update.model_dump(mode="json", include={"model_version", "base_model", "adapter_path"}),
            "previous_version": update.previous_version,
            "promoted_at": now.isoformat(),
            "source_adapter": str(candidate_dir),
            "dataset": {"path": str(dataset_dir), "split": split},
        },
        metrics={
            "metrics": result.candidate.metrics,
            "baseline_metrics": result.serving.metrics,
            "per_source": result.candidate.report.get("per_source", {}),
            "gate": {
                "improvement": result.decision.improvement,
                "rule": vars(result.rule),
            },
            "calibration_fit": calibration.to_json(),
        },
        calibration=calibration.calibration,
    )
    publish(update)
    registry.set_current(version)
    result.version, result.update = version, update

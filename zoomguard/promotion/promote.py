"""Promotion: a candidate adapter replaces the serving model only if it is measurably better.

The gate is a pure function over two metric dicts (unit-tested as tables). `promote` scores the serving
model (the registry's current version, or the base model) and the candidate on the same held-out split
with one engine, applies the gate, and on success: copies the adapter into the registry, publishes a
ModelUpdate (waiting for the broker's ack), then points the registry at the new version. Publishing
comes before the pointer, so a failed publish leaves the registry serving what it served before.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomguard.app.config import Settings
from zoomguard.dataset.records import Split
from zoomguard.errors import BadInputError, ConfigError, UnavailableError
from zoomguard.evaluation.outputs import write_outputs
from zoomguard.evaluation.report import ModelEvaluation, ModelSpec, build_report
from zoomguard.evaluation.runner import describe_dataset, evaluate_models, load_records
from zoomguard.evaluation.scores import headline
from zoomguard.evaluation.settings import PrimaryMetric
from zoomguard.promotion.registry import Registry, adapter_digest, version_name
from zoomguard.schemas.review import ModelUpdate

LOWER_IS_BETTER = frozenset({"ece"})
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class GateRule:
    metric: PrimaryMetric = "accuracy"
    margin: float = 0.01
    max_parse_failure_increase: float = 0.0


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    improvement: float | None
    reasons: tuple[str, ...]


def gate(candidate: Mapping[str, Any], serving: Mapping[str, Any], rule: GateRule) -> GateDecision:
    """Accept only when the primary metric improves by >= margin (and strictly) and parse failures do not
    rise beyond the tolerance. Undefined metrics refuse: a number that cannot be compared cannot win."""
    reasons: list[str] = []
    cand, serv = _number(candidate.get(rule.metric)), _number(serving.get(rule.metric))
    improvement: float | None = None
    if cand is None or serv is None:
        which = "candidate's" if cand is None else "serving model's"
        reasons.append(f"the {which} {rule.metric} is undefined on this split")
    else:
        improvement = (serv - cand) if rule.metric in LOWER_IS_BETTER else (cand - serv)
        if improvement <= 0 or improvement < rule.margin - _FLOAT_SLACK:
            reasons.append(
                f"{rule.metric} {cand:.4f} vs serving {serv:.4f}: improvement {improvement:+.4f} "
                f"is below the margin {rule.margin:.4f}"
            )
    cand_pf, serv_pf = _number(candidate.get("parse_failure_rate")), _number(serving.get("parse_failure_rate"))
    if cand_pf is None or serv_pf is None:
        reasons.append("parse_failure_rate is undefined (empty split)")
    elif cand_pf > serv_pf + rule.max_parse_failure_increase + _FLOAT_SLACK:
        reasons.append(
            f"parse-failure rate rises from {serv_pf:.4f} to {cand_pf:.4f} "
            f"(tolerance {rule.max_parse_failure_increase:.4f})"
        )
    return GateDecision(accepted=not reasons, improvement=improvement, reasons=tuple(reasons))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class PromotionResult:
    accepted: bool
    decision: GateDecision
    rule: GateRule
    serving: ModelEvaluation
    candidate: ModelEvaluation
    version: str | None = None
    update: ModelUpdate | None = None
    dry_run: bool = False
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "dry_run": self.dry_run,
            "version": self.version,
            "reasons": list(self.decision.reasons),
            "improvement": self.decision.improvement,
            "rule": vars(self.rule),
            "serving": {"model": self.serving.report.get("model"), "metrics": _flat(self.serving.metrics)},
            "candidate": {"model": self.candidate.report.get("model"), "metrics": _flat(self.candidate.metrics)},
            "calibration": self.candidate.calibration.to_json() if self.candidate.calibration else None,
            "model_update": self.update.model_dump(mode="json") if self.update else None,
            "notes": self.notes,
        }


def _flat(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("confusion", "labels")}


def promote(
    settings: Settings,
    candidate_dir: Path,
    dataset_dir: Path,
    *,
    out_dir: Path | None = None,
    split: Split | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PromotionResult:
    """Library entry for `zoomguard promote` and `zoomguard retrain` (runs its own event loop)."""
    return asyncio.run(
        promote_async(
            settings, candidate_dir, dataset_dir, out_dir=out_dir, split=split, dry_run=dry_run, progress=progress
        )
    )


async def promote_async(
    settings: Settings,
    candidate_dir: Path,
    dataset_dir: Path,
    *,
    out_dir: Path | None = None,
    split: Split | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PromotionResult:
    ev = settings.evaluation
    split = split or ev.split
    if not settings.engine.model:
        raise ConfigError("no base model: pass --model DIR_OR_NAME (or set engine.model)")
    if not (candidate_dir / "adapter_config.json").is_file():
        raise BadInputError(f"{candidate_dir} is not a LoRA adapter directory (no adapter_config.json)")
    adapter_digest(candidate_dir, ev.max_adapter_bytes)  # refuse an oversize candidate before any engine starts
    registry = Registry(Path(ev.registry_dir))
    current = registry.current()
    if current is not None and current.base_model != settings.engine.model:
        raise ConfigError(
            f"the registry serves adapters on {current.base_model!r} but engine.model is {settings.engine.model!r}: "
            "a candidate must be trained on the serving base model"
        )
    records = load_records(dataset_dir, split, ev.max_records)
    serving_spec = ModelSpec("serving", str(current.adapter_dir), current.version) if current else ModelSpec("serving")
    serving, candidate = await evaluate_models(
        settings.engine,
        settings.detector,
        [serving_spec, ModelSpec("candidate", str(candidate_dir))],
        records,
        concurrency=ev.concurrency,
        progress=progress,
    )
    for evaluation in (serving, candidate):
        build_report(evaluation, ev, settings.detector, describe_dataset(dataset_dir, split), datetime.now(UTC))
        if out_dir is not None:
            write_outputs(evaluation, out_dir / evaluation.spec.role, ev.ece_bins)
    rule = GateRule(ev.primary_metric, ev.margin, ev.max_parse_failure_increase)
    decision = gate(candidate.metrics, serving.metrics, rule)
    result = PromotionResult(decision.accepted, decision, rule, serving, candidate, dry_run=dry_run)
    if decision.accepted and not dry_run:
        await asyncio.to_thread(_register_and_publish, settings, registry, result, candidate_dir, dataset_dir, split)
    elif decision.accepted:
        result.notes.append("dry run: nothing written to the registry, nothing published")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result.report_path = out_dir / "promotion.json"
        result.report_path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    return result


def _register_and_publish(
    settings: Settings,
    registry: Registry,
    result: PromotionResult,
    candidate_dir: Path,
    dataset_dir: Path,
    split: Split,
) -> None:
    ev = settings.evaluation
    now = datetime.now(UTC)
    version = version_name(candidate_dir, now, ev.max_adapter_bytes)
    calibration = result.candidate.calibration
    assert calibration is not None
    previous = registry.current()
    worker_root = Path(ev.worker_registry_dir) if ev.worker_registry_dir else Path(ev.registry_dir).resolve()
    update = ModelUpdate(
        model_version=version,
        base_model=settings.engine.model,
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
    publish_update(settings, update)
    registry.set_current(version)
    result.version, result.update = version, update


def publish_update(settings: Settings, update: ModelUpdate) -> None:
    """Send the ModelUpdate keyed by its version and wait for the broker's acknowledgement (acks=all)."""
    from kafka.errors import KafkaError

    from zoomguard.kafka.clients import make_producer

    try:
        producer = make_producer(settings.kafka)
    except KafkaError as exc:
        raise UnavailableError(f"cannot reach Kafka to publish {update.model_version}: {exc}") from exc
    try:
        future = producer.send(
            settings.topics.model_updates,
            key=update.model_version.encode(),
            value=update.model_dump_json().encode(),
        )
        future.get(timeout=settings.evaluation.publish_timeout_s)
    except KafkaError as exc:
        raise UnavailableError(
            f"ModelUpdate {update.model_version} was not acknowledged on {settings.topics.model_updates}: {exc}; "
            "the registry still serves the previous version"
        ) from exc
    finally:
        producer.close(timeout=10)

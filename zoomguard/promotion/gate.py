"""The promotion gate: a pure decision over two metric dicts, and the result a promotion reports.

Kept apart from the flow (promote.py) so the rule can be read and tested as a table, with no engine,
registry or broker in sight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoomguard.evaluation.report import ModelEvaluation
from zoomguard.evaluation.settings import EvaluationSettings, PrimaryMetric
from zoomguard.schemas.review import ModelUpdate

LOWER_IS_BETTER = frozenset({"ece"})
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class GateRule:
    metric: PrimaryMetric = "accuracy"
    margin: float = 0.01
    max_parse_failure_increase: float = 0.0

    @classmethod
    def from_settings(cls, evaluation: EvaluationSettings) -> GateRule:
        return cls(evaluation.primary_metric, evaluation.margin, evaluation.max_parse_failure_increase)


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

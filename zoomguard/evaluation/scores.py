"""Evaluation metrics over labelled predictions: pure functions, no I/O, unit-tested as tables.

How `uncertain` counts (the detector may abstain, and abstaining is not free):
- `accuracy` is over every record: uncertain, unparseable and failed records count as wrong. This is the
  number the promotion gate compares by default, so a model cannot win by abstaining more.
- `coverage` is the share of records with a confident decision; `selective_accuracy` is the accuracy
  over those only.
- precision / recall / F1 are for `ai_generated`: an abstention is never a positive prediction, so it
  lowers recall and leaves precision alone.
- AUROC and ECE use `p_ai` and so cover the records that have one (`scored`); the others show up in
  `parse_failure_rate` and in `accuracy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from zoomguard.detector.geometry import Box, iou

PredictedDecision = Literal["ai_generated", "real", "uncertain", "error"]
DECISION_COLUMNS: tuple[PredictedDecision, ...] = ("ai_generated", "real", "uncertain", "error")
LABEL_ROWS = ("ai_generated", "real")
PARSE_FAILURES = frozenset({"unparseable_locate", "unparseable_examine"})
BoxTuple = tuple[int, int, int, int]


@dataclass(frozen=True)
class Prediction:
    """One record's outcome: the reviewer's label next to what the model said about the image."""

    event_id: str
    label: Literal["ai_generated", "real"]
    decision: PredictedDecision
    p_ai: float | None
    source: str = "unknown"
    reason: str | None = None
    boxes: tuple[BoxTuple, ...] = ()
    reference_boxes: tuple[BoxTuple, ...] = ()
    error: str | None = None

    @property
    def parse_ok(self) -> bool:
        """False when the model's answer did not parse (an engine/input error is counted apart)."""
        return self.reason not in PARSE_FAILURES and self.decision != "error"

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "label": self.label,
            "decision": self.decision,
            "p_ai": self.p_ai,
            "source": self.source,
            "parse_ok": self.parse_ok,
            "reason": self.reason,
            "error": self.error,
            "boxes": [list(b) for b in self.boxes],
            "reference_boxes": [list(b) for b in self.reference_boxes],
        }


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_p_ai: float | None
    fraction_ai: float | None


def ratio(numerator: float, denominator: float) -> float | None:
    """None for 0/0: an undefined metric is reported as null, never as a made-up 0 or 1."""
    return None if denominator == 0 else numerator / denominator


def precision_recall_f1(
    labels: Sequence[str], decisions: Sequence[str], positive: str = "ai_generated"
) -> dict[str, float | None]:
    """Precision, recall and F1 of `positive`; F1 = 2TP / (2TP + FP + FN), None only when both are empty."""
    tp = sum(1 for y, d in zip(labels, decisions, strict=True) if y == positive and d == positive)
    fp = sum(1 for y, d in zip(labels, decisions, strict=True) if y != positive and d == positive)
    fn = sum(1 for y, d in zip(labels, decisions, strict=True) if y == positive and d != positive)
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks, so ties count one half).

    None when either class is missing: the AUROC is undefined, not 0.5.
    """
    n_pos = sum(1 for p in positives if p)
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average = (start + end) / 2.0 + 1.0  # ranks are 1-based
        for k in range(start, end + 1):
            ranks[order[k]] = average
        start = end + 1
    positive_rank_sum = sum(r for r, p in zip(ranks, positives, strict=True) if p)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def reliability_bins(probabilities: Sequence[float], positives: Sequence[bool], bins: int) -> list[ReliabilityBin]:
    """Equal-width bins of P(ai) over [0, 1]; p = 1.0 falls in the last bin."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    members: list[list[int]] = [[] for _ in range(bins)]
    for index, p in enumerate(probabilities):
        members[min(int(p * bins), bins - 1)].append(index)
    result = []
    for b, indices in enumerate(members):
        n = len(indices)
        result.append(
            ReliabilityBin(
                lower=b / bins,
                upper=(b + 1) / bins,
                count=n,
                mean_p_ai=ratio(sum(probabilities[i] for i in indices), n),
                fraction_ai=ratio(sum(1 for i in indices if positives[i]), n),
            )
        )
    return result


def expected_calibration_error(probabilities: Sequence[float], positives: Sequence[bool], bins: int) -> float | None:
    """ECE of P(ai): sum over bins of (share of records) x |observed share of ai - mean P(ai)|."""
    total = len(probabilities)
    if total == 0:
        return None
    return sum(
        (b.count / total) * abs((b.fraction_ai or 0.0) - (b.mean_p_ai or 0.0))
        for b in reliability_bins(probabilities, positives, bins)
        if b.count
    )


def best_iou_per_reference(predicted: Sequence[BoxTuple], references: Sequence[BoxTuple]) -> float | None:
    """Mean over reference boxes of the best IoU any predicted box reaches (0 when none was predicted).

    Reference-centred on purpose: a model that draws no box, or boxes elsewhere, scores 0; None when the
    record has no reference box (nothing to measure).
    """
    if not references:
        return None
    boxes = [Box(*b) for b in predicted]
    best = [max((iou(Box(*ref), box) for box in boxes), default=0.0) for ref in references]
    return sum(best) / len(best)


def confusion(labels: Sequence[str], decisions: Sequence[str]) -> dict[str, dict[str, int]]:
    """Counts by true label (rows) and decision (columns, abstentions and errors included)."""
    table: dict[str, dict[str, int]] = {row: dict.fromkeys(DECISION_COLUMNS, 0) for row in LABEL_ROWS}
    for y, d in zip(labels, decisions, strict=True):
        table[y][d] += 1
    return table


def summarize(predictions: Sequence[Prediction], ece_bins: int) -> dict[str, Any]:
    """Every headline metric of one model on one split (see the module docstring for `uncertain`)."""
    n = len(predictions)
    labels: list[str] = [p.label for p in predictions]
    decisions: list[str] = [p.decision for p in predictions]
    decided = [p for p in predictions if p.decision in LABEL_ROWS]
    correct = sum(1 for p in decided if p.decision == p.label)
    scored = [p for p in predictions if p.p_ai is not None]
    probabilities = [float(p.p_ai) for p in scored if p.p_ai is not None]
    positives = [p.label == "ai_generated" for p in scored]
    ious = [v for v in (best_iou_per_reference(p.boxes, p.reference_boxes) for p in predictions) if v is not None]
    metrics: dict[str, Any] = {
        "count": n,
        "accuracy": ratio(correct, n),
        "coverage": ratio(len(decided), n),
        "selective_accuracy": ratio(correct, len(decided)),
        **precision_recall_f1(labels, decisions),
        "auroc": auroc(probabilities, positives),
        "ece": expected_calibration_error(probabilities, positives, ece_bins),
        "scored": len(scored),
        "mean_box_iou": ratio(sum(ious), len(ious)),
        "box_records": len(ious),
        "parse_failure_rate": ratio(sum(1 for p in predictions if p.reason in PARSE_FAILURES), n),
        "uncertain_rate": ratio(sum(1 for d in decisions if d == "uncertain"), n),
        "error_rate": ratio(sum(1 for d in decisions if d == "error"), n),
        "labels": {row: labels.count(row) for row in LABEL_ROWS},
        "confusion": confusion(labels, decisions),
    }
    return metrics


def per_source(predictions: Iterable[Prediction], ece_bins: int) -> dict[str, dict[str, Any]]:
    """The same metrics per image source (generator, camera, site), sorted by source name."""
    groups: dict[str, list[Prediction]] = {}
    for p in predictions:
        groups.setdefault(p.source or "unknown", []).append(p)
    return {source: summarize(groups[source], ece_bins) for source in sorted(groups)}


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The defined numeric metrics only (what ModelUpdate.metrics and the registry carry)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }

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

AUROC, precision/recall/F1 and the confusion counts are scikit-learn's; what sklearn leaves undefined (one
class, no positive prediction, no records) is None here, reported as null. ECE has no sklearn function: it
is a sum over the reliability bins, which numpy counts (see `reliability_bins` for why not sklearn's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

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
    decision_source: str | None = None  # evidence, known_content or model; None when the image failed

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
            "decision_source": self.decision_source,
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


def _defined(value: Any) -> float | None:
    """sklearn's NaN (what zero_division=np.nan gives for 0/0) as None; anything else as a plain float."""
    number = float(value)
    return None if np.isnan(number) else number


def precision_recall_f1(
    labels: Sequence[str], decisions: Sequence[str], positive: str = "ai_generated"
) -> dict[str, float | None]:
    """Precision, recall and F1 of `positive`; F1 = 2TP / (2TP + FP + FN), None only when both are empty.

    Scored on "is `positive`" for label and decision alike, so uncertain and error are never positive
    predictions; zero_division=NaN keeps an undefined ratio undefined (sklearn's default would make it 0).
    """
    if len(labels) != len(decisions):
        raise ValueError("labels and decisions must have the same length")
    if not labels:  # sklearn refuses empty input; with no record every ratio is 0/0
        return {"precision": None, "recall": None, "f1": None}
    precision, recall, f1, _ = precision_recall_fscore_support(
        [y == positive for y in labels],
        [d == positive for d in decisions],
        average="binary",
        pos_label=True,
        zero_division=np.nan,
    )
    return {"precision": _defined(precision), "recall": _defined(recall), "f1": _defined(f1)}


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (sklearn's; tied scores count one half).

    None when either class is missing: the AUROC is undefined, not 0.5 (sklearn would warn and give NaN).
    """
    if len(scores) != len(positives):
        raise ValueError("scores and positives must have the same length")
    if all(positives) or not any(positives):
        return None
    return float(roc_auc_score(list(positives), list(scores)))


def _bin_totals(
    probabilities: Sequence[float], positives: Sequence[bool], bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: record count, sum of P(ai), count of ai_generated."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    if len(probabilities) != len(positives):
        raise ValueError("probabilities and positives must have the same length")
    p = np.asarray(probabilities, dtype=float)
    index = np.clip((p * bins).astype(int), 0, bins - 1)  # floor(p * bins): [lower, upper), p = 1.0 in the last
    return (
        np.bincount(index, minlength=bins),
        np.bincount(index, weights=p, minlength=bins),
        np.bincount(index, weights=np.asarray(positives, dtype=float), minlength=bins),
    )


def reliability_bins(probabilities: Sequence[float], positives: Sequence[bool], bins: int) -> list[ReliabilityBin]:
    """Equal-width bins of P(ai) over [0, 1]; p = 1.0 falls in the last bin.

    Counted with numpy rather than sklearn.calibration.calibration_curve, which drops empty bins, gives
    no counts (the diagram shows them, ECE weighs by them) and closes bins on the right (p = 0.1 would move
    from the second bin of ten to the first).
    """
    counts, p_sums, ai_counts = _bin_totals(probabilities, positives, bins)
    return [
        ReliabilityBin(
            lower=b / bins,
            upper=(b + 1) / bins,
            count=int(counts[b]),
            mean_p_ai=ratio(float(p_sums[b]), int(counts[b])),
            fraction_ai=ratio(float(ai_counts[b]), int(counts[b])),
        )
        for b in range(bins)
    ]


def expected_calibration_error(probabilities: Sequence[float], positives: Sequence[bool], bins: int) -> float | None:
    """ECE of P(ai): sum over bins of (share of records) x |observed share of ai - mean P(ai)|.

    (n_b / n) x |ai_b / n_b - sum_p_b / n_b| is |ai_b - sum_p_b| / n, so no empty bin is divided by.
    """
    if not probabilities:
        return None
    _, p_sums, ai_counts = _bin_totals(probabilities, positives, bins)
    return float(np.abs(ai_counts - p_sums).sum()) / len(probabilities)


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
    if len(labels) != len(decisions):
        raise ValueError("labels and decisions must have the same length")
    unknown = (set(labels) - set(LABEL_ROWS)) | (set(decisions) - set(DECISION_COLUMNS))
    if unknown:  # sklearn would drop them silently
        raise ValueError(f"not a label or decision: {sorted(unknown)}")
    if not labels:  # sklearn refuses empty input
        return {row: dict.fromkeys(DECISION_COLUMNS, 0) for row in LABEL_ROWS}
    # square over every decision (labels are a subset of them); the rows kept are the two labels
    matrix = confusion_matrix(list(labels), list(decisions), labels=list(DECISION_COLUMNS))
    return {
        row: {column: int(matrix[DECISION_COLUMNS.index(row), j]) for j, column in enumerate(DECISION_COLUMNS)}
        for row in LABEL_ROWS
    }


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

"""Evaluation metrics against hand-computed tables, and the charts as real PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from zoomguard.evaluation.charts import CONFUSION_SIZE, RELIABILITY_SIZE, confusion_matrix, reliability_diagram
from zoomguard.evaluation.scores import (
    Prediction,
    auroc,
    best_iou_per_reference,
    confusion,
    expected_calibration_error,
    headline,
    per_source,
    precision_recall_f1,
    reliability_bins,
    summarize,
)

AI, REAL = "ai_generated", "real"


@pytest.mark.parametrize(
    ("scores", "positives", "expected"),
    [
        ([0.9, 0.8, 0.2, 0.1], [True, True, False, False], 1.0),  # perfect ranking
        ([0.1, 0.2, 0.8, 0.9], [True, True, False, False], 0.0),  # perfectly wrong
        ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),  # all tied: every pair counts 1/2
        # pairs (pos, neg): (0.8,0.8)=1/2 (0.8,0.3)=1 (0.6,0.8)=0 (0.6,0.3)=1 -> 2.5/4
        ([0.8, 0.6, 0.8, 0.3], [True, True, False, False], 0.625),
        # 1 positive 0.4 vs negatives 0.4 (tie), 0.2, 0.9, 0.95 -> (0.5 + 1 + 0 + 0) / 4
        ([0.4, 0.4, 0.2, 0.9, 0.95], [True, False, False, False, False], 0.375),
        ([0.3, 0.7], [True, True], None),  # one class only: undefined
        ([], [], None),
    ],
)
def test_auroc(scores: list[float], positives: list[bool], expected: float | None) -> None:
    result = auroc(scores, positives)
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("labels", "decisions", "precision", "recall", "f1"),
    [
        ([AI, AI, REAL, REAL], [AI, REAL, AI, REAL], 0.5, 0.5, 0.5),
        ([AI, AI, REAL], [AI, AI, REAL], 1.0, 1.0, 1.0),
        # abstaining on a positive lowers recall, not precision
        ([AI, AI, REAL], [AI, "uncertain", REAL], 1.0, 0.5, 2 / 3),
        # no positive predicted: precision undefined, recall 0, F1 0 (there are positives to find)
        ([AI, REAL], ["uncertain", REAL], None, 0.0, 0.0),
        # no positive anywhere: everything about the positive class is undefined
        ([REAL, REAL], [REAL, "error"], None, None, None),
        # only false positives: precision 0, recall undefined, F1 0
        ([REAL, REAL], [AI, REAL], 0.0, None, 0.0),
    ],
)
def test_precision_recall_f1(
    labels: list[str], decisions: list[str], precision: float | None, recall: float | None, f1: float | None
) -> None:
    result = precision_recall_f1(labels, decisions)
    for key, expected in (("precision", precision), ("recall", recall), ("f1", f1)):
        assert result[key] == (None if expected is None else pytest.approx(expected)), key


@pytest.mark.parametrize(
    ("probabilities", "positives", "bins", "expected"),
    [
        ([0.9, 0.9, 0.1, 0.1], [True, True, False, False], 10, 0.1),  # |1-0.9|, |0-0.1| in two bins
        ([0.7, 0.7, 0.7, 0.7], [True, True, True, False], 10, 0.05),  # |0.75-0.7|
        ([0.25, 0.75], [True, False], 2, 0.75),  # bin 0: |1-0.25|, bin 1: |0-0.75|
        # one bin: |2/4 - mean(0.2,0.4,0.6,0.8)| = 0
        ([0.2, 0.4, 0.6, 0.8], [False, True, False, True], 1, 0.0),
        # p=1.0 falls in the last bin
        ([1.0, 0.95], [True, True], 10, 0.025),
        ([], [], 10, None),
    ],
)
def test_expected_calibration_error(
    probabilities: list[float], positives: list[bool], bins: int, expected: float | None
) -> None:
    result = expected_calibration_error(probabilities, positives, bins)
    assert result == (None if expected is None else pytest.approx(expected))


def test_reliability_bins_cover_the_unit_interval() -> None:
    bins = reliability_bins([0.05, 0.15, 0.15, 1.0], [False, True, False, True], 10)
    assert [b.count for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert bins[1].fraction_ai == 0.5 and bins[1].mean_p_ai == pytest.approx(0.15)
    assert bins[2].mean_p_ai is None and bins[9].upper == 1.0
    with pytest.raises(ValueError):
        reliability_bins([0.5], [True], 0)


@pytest.mark.parametrize(
    ("predicted", "references", "expected"),
    [
        ([(0, 0, 10, 10)], [(0, 0, 10, 10)], 1.0),
        ([(0, 0, 10, 10)], [(5, 0, 15, 10)], 50 / 150),
        ([], [(0, 0, 10, 10)], 0.0),  # drew nothing: scores 0
        ([(0, 0, 10, 10), (20, 20, 30, 30)], [(20, 20, 30, 30), (100, 100, 110, 110)], 0.5),  # one hit, one miss
        ([(0, 0, 10, 10)], [], None),  # nothing to measure
    ],
)
def test_best_iou_per_reference(predicted: list, references: list, expected: float | None) -> None:
    result = best_iou_per_reference(predicted, references)
    assert result == (None if expected is None else pytest.approx(expected))


def _p(label: str, decision: str, p_ai: float | None, reason: str | None = None, source: str = "s", **kw) -> Prediction:
    return Prediction(
        event_id=f"e-{id(kw)}", label=label, decision=decision, p_ai=p_ai, source=source, reason=reason, **kw
    )  # type: ignore[arg-type]


def test_summarize_counts_uncertain_as_wrong_and_reports_coverage() -> None:
    predictions = [
        _p(AI, AI, 0.9, boxes=((0, 0, 10, 10),), reference_boxes=((0, 0, 10, 10),)),
        _p(AI, "uncertain", 0.6, "low_confidence"),
        _p(REAL, REAL, 0.1),
        _p(REAL, AI, 0.85),
        _p(AI, "uncertain", None, "unparseable_examine", reference_boxes=((0, 0, 4, 4),)),
        _p(REAL, "error", None, error="model_input: too long"),
    ]
    m = summarize(predictions, ece_bins=10)
    assert m["count"] == 6
    assert m["accuracy"] == pytest.approx(2 / 6)
    assert m["coverage"] == pytest.approx(3 / 6)
    assert m["selective_accuracy"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert m["scored"] == 4
    # scored: ai 0.9, ai 0.6, real 0.1, real 0.85 -> pairs: (0.9>0.1)(0.9>0.85)(0.6>0.1)(0.6<0.85) = 3/4
    assert m["auroc"] == pytest.approx(0.75)
    assert m["parse_failure_rate"] == pytest.approx(1 / 6)
    assert m["uncertain_rate"] == pytest.approx(2 / 6)
    assert m["error_rate"] == pytest.approx(1 / 6)
    assert m["mean_box_iou"] == pytest.approx(0.5) and m["box_records"] == 2
    assert m["labels"] == {AI: 3, REAL: 3}
    assert m["confusion"] == {
        AI: {AI: 1, REAL: 0, "uncertain": 2, "error": 0},
        REAL: {AI: 1, REAL: 1, "uncertain": 0, "error": 1},
    }
    assert predictions[4].parse_ok is False and predictions[5].parse_ok is False and predictions[1].parse_ok


def test_summarize_empty_and_per_source() -> None:
    empty = summarize([], ece_bins=10)
    assert empty["count"] == 0 and empty["accuracy"] is None and empty["auroc"] is None
    groups = per_source(
        [_p(AI, AI, 0.9, source="gen-b"), _p(REAL, AI, 0.9, source="gen-a"), _p(AI, REAL, 0.1, source="")], 10
    )
    assert list(groups) == ["gen-a", "gen-b", "unknown"]
    assert groups["gen-b"]["accuracy"] == 1.0 and groups["gen-a"]["accuracy"] == 0.0


def test_headline_keeps_defined_numbers_only() -> None:
    metrics = {"accuracy": 0.5, "auroc": None, "count": 3, "confusion": {}, "flag": True}
    assert headline(metrics) == {"accuracy": 0.5, "count": 3.0}


def test_confusion_rows_and_columns() -> None:
    table = confusion([AI, REAL, REAL], [AI, "uncertain", "uncertain"])
    assert table[REAL]["uncertain"] == 2 and table[AI][AI] == 1 and sum(table[AI].values()) == 1


def test_charts_are_pngs_of_the_expected_size(tmp_path: Path) -> None:
    bins = reliability_bins([0.05, 0.15, 0.55, 0.95, 0.95], [False, True, True, True, False], 10)
    reliability = reliability_diagram(bins, tmp_path / "r" / "reliability.png")
    matrix = confusion_matrix(confusion([AI, REAL, REAL], [AI, "uncertain", REAL]), tmp_path / "confusion.png")
    for path, size in ((reliability, RELIABILITY_SIZE), (matrix, CONFUSION_SIZE)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.size == size
            assert (
                len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 3
            )  # something was drawn on the background
    empty = reliability_diagram(reliability_bins([], [], 10), tmp_path / "empty.png")
    assert Image.open(empty).size == RELIABILITY_SIZE

"""The papers' table from predictions alone: accuracies per label, box IoU only where boxes exist, who decided."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zoomguard.evaluation.report import ModelEvaluation, ModelSpec
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.table import build_table, render_markdown, stage_rows, table_row
from zoomguard.schemas.detection import ModelInfo

AI, REAL = "ai_generated", "real"


def _p(label: str, decision: str, source: str = "sd", by: str | None = "model", **extra: object) -> Prediction:
    return Prediction(
        f"e-{label}-{decision}-{source}", label, decision, 0.5, source=source, decision_source=by, **extra
    )  # type: ignore[arg-type]


def test_a_row_counts_accuracy_per_label_and_who_decided() -> None:
    predictions = [
        _p(AI, AI), _p(AI, AI, by="evidence"), _p(AI, "uncertain"), _p(REAL, REAL), _p(REAL, AI),
        _p(REAL, "error", by=None),
    ]  # fmt: skip
    row = table_row("cascade", "bench", "(all)", predictions, 10)
    assert (row["count"], row["ai_generated"], row["real"]) == (6, 3, 3)
    assert row["accuracy"] == pytest.approx(3 / 6)
    assert row["accuracy_ai"] == pytest.approx(2 / 3) and row["accuracy_real"] == pytest.approx(1 / 3)
    assert row["decided_by"] == {"evidence": 1, "known_content": 0, "model": 4, "error": 1}
    assert row["uncertain_rate"] == pytest.approx(1 / 6) and row["error_rate"] == pytest.approx(1 / 6)
    assert row["mean_box_iou"] is None and row["box_records"] == 0


def test_rows_are_the_dataset_then_each_source_and_box_iou_where_boxes_exist() -> None:
    boxed = _p(AI, AI, source="mj", boxes=((0, 0, 10, 10),), reference_boxes=((0, 0, 10, 20),))
    rows = stage_rows("model", "bench", [_p(REAL, REAL, source="sd"), boxed], 10)
    assert [(r["source"], r["count"]) for r in rows] == [("(all)", 2), ("mj", 1), ("sd", 1)]
    assert rows[1]["mean_box_iou"] == pytest.approx(0.5) and rows[1]["box_records"] == 1
    assert rows[2]["accuracy_ai"] is None  # no AI image in that source: undefined, not 0


def test_the_markdown_names_what_made_the_numbers() -> None:
    model = ModelInfo(name="Qwen/Qwen2.5-VL-7B-Instruct", version="v7", family="qwen2_5_vl")
    result = ModelEvaluation(ModelSpec("model", "/runs/grpo/adapter"), model, [_p(AI, AI, source="a|b"), _p(REAL, AI)])
    dataset = {"name": "genimage", "format": "folder", "path": "/data/GenImage", "fingerprint": "sha256:ab",
               "items": 2, "problems": {"count": 1}}  # fmt: skip
    when = datetime(2026, 12, 2, tzinfo=UTC)
    table = build_table([result], dataset, command="zoomguard eval --dataset /data/GenImage", created_at=when,
                        thresholds={"ai_threshold": 0.5, "real_threshold": 0.4999}, ece_bins=10)  # fmt: skip
    assert table["model"]["adapter"] == "/runs/grpo/adapter" and table["stages"] == ["model"]
    text = render_markdown(table)
    assert "- model: `Qwen/Qwen2.5-VL-7B-Instruct` version `v7` (qwen2_5_vl), adapter `/runs/grpo/adapter`" in text
    assert "`/data/GenImage` (folder), 2 images, 1 problems (problems.jsonl); fingerprint `sha256:ab`" in text
    assert "- command: `zoomguard eval --dataset /data/GenImage`" in text and "2026-12-02T00:00:00+00:00" in text
    assert "| model | **genimage** | 2 | 0.500 | 0.000 | 1.000 | - | 0.000 | 0 / 0 / 2 / 0 |" in text
    assert "| model | a\\|b | 1 |" in text  # a source with a pipe does not break the table

"""An evaluation's files: report.json, predictions.jsonl and the two charts, in one folder per model or stage;
for `eval`, the table (table.md, table.json) and the dataset's problems (problems.jsonl) next to them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zoomguard.evaluation.charts import confusion_matrix, reliability_diagram
from zoomguard.evaluation.report import ModelEvaluation
from zoomguard.evaluation.scores import reliability_bins
from zoomguard.evaluation.sources.items import Problem
from zoomguard.evaluation.table import render_markdown


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


def write_table(table: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """table.json (the numbers) and table.md (the same, to read or paste)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table_json": out_dir / "table.json", "table_md": out_dir / "table.md"}
    paths["table_json"].write_text(json.dumps(table, indent=2, default=str))
    paths["table_md"].write_text(render_markdown(table))
    return paths


def write_problems(problems: Iterable[Problem], out_dir: Path) -> Path:
    """problems.jsonl: one line per row not scored, with where it is and why (empty when there is none)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "problems.jsonl"
    with path.open("w") as sink:
        for problem in problems:
            sink.write(json.dumps(problem.to_json()) + "\n")
    return path

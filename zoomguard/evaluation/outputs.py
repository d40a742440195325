"""An evaluation's files: report.json, predictions.jsonl and the two charts, in one folder."""

from __future__ import annotations

import json
from pathlib import Path

from zoomguard.evaluation.charts import confusion_matrix, reliability_diagram
from zoomguard.evaluation.report import ModelEvaluation
from zoomguard.evaluation.scores import reliability_bins


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

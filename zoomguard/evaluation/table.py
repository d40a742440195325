"""The papers' table: accuracy per dataset and per generator (source), on real and on AI images apart, box IoU
where the dataset has boxes, and which stage decided, with what made the numbers (model, dataset fingerprint,
command, date). Pure: it takes the reports' predictions and returns a JSON value and its Markdown.

Accuracy is zoomguard's (an `uncertain` or failed image counts as wrong); the papers' models always answer, so
to compare with them close the uncertain band (`--ai-threshold 0.5 --real-threshold 0.4999`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from zoomguard.evaluation.report import ModelEvaluation
from zoomguard.evaluation.scores import Prediction, ratio, summarize

TABLE_SCHEMA_VERSION = 1
ALL = "(all)"
DECIDERS = ("evidence", "known_content", "model", "error")


def table_row(
    stage: str, dataset: str, source: str, predictions: Sequence[Prediction], ece_bins: int
) -> dict[str, Any]:
    """One line of the table; accuracies per label are over that label's images."""
    metrics = summarize(predictions, ece_bins)
    confusion, labels = metrics["confusion"], metrics["labels"]
    decided = Counter(p.decision_source or "error" for p in predictions)
    return {
        "stage": stage,
        "dataset": dataset,
        "source": source,
        "count": metrics["count"],
        "accuracy": metrics["accuracy"],
        "accuracy_real": ratio(confusion["real"]["real"], labels["real"]),
        "accuracy_ai": ratio(confusion["ai_generated"]["ai_generated"], labels["ai_generated"]),
        "real": labels["real"],
        "ai_generated": labels["ai_generated"],
        "mean_box_iou": metrics["mean_box_iou"],
        "box_records": metrics["box_records"],
        "uncertain_rate": metrics["uncertain_rate"],
        "error_rate": metrics["error_rate"],
        "decided_by": {name: decided.get(name, 0) for name in DECIDERS},
    }


def stage_rows(stage: str, dataset: str, predictions: Sequence[Prediction], ece_bins: int) -> list[dict[str, Any]]:
    """The dataset's row, then one per source in name order."""
    groups: dict[str, list[Prediction]] = {}
    for p in predictions:
        groups.setdefault(p.source or "unknown", []).append(p)
    rows = [table_row(stage, dataset, ALL, predictions, ece_bins)]
    return rows + [table_row(stage, dataset, source, groups[source], ece_bins) for source in sorted(groups)]


def build_table(
    results: Sequence[ModelEvaluation],
    dataset: Mapping[str, Any],
    *,
    command: str | None,
    created_at: datetime,
    thresholds: Mapping[str, float],
    ece_bins: int,
    timing: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The table of one run: every stage's rows under one header."""
    first = results[0]
    rows = [row for r in results for row in stage_rows(r.spec.role, str(dataset["name"]), r.predictions, ece_bins)]
    return {
        "schema_version": TABLE_SCHEMA_VERSION,
        "created_at": created_at.isoformat(),
        "command": command,
        "model": {**first.model.model_dump(), "adapter": first.spec.adapter},
        "dataset": {
            key: dataset.get(key) for key in ("name", "format", "path", "split", "fingerprint", "items", "problems")
        },
        "stages": [r.spec.role for r in results],
        "thresholds": dict(thresholds),
        "accuracy_policy": "uncertain and failed images count as wrong; problems (listed apart) are not scored",
        "timing": dict(timing or {}),
        "rows": rows,
    }


def _timing_line(timing: Mapping[str, float]) -> list[str]:
    if not timing:
        return []
    return [
        f"- time: {timing['scoring_s']} s to read and score ({timing['seconds_per_1000_images']} s per 1,000 images)"
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(table: Mapping[str, Any]) -> str:
    """The table as Markdown: a header of what made it, then one line per stage and source."""
    model, dataset = table["model"], table["dataset"]
    problems = dataset.get("problems") or {}
    adapter = f", adapter `{model['adapter']}`" if model.get("adapter") else ""
    split = f", split {dataset['split']}" if dataset.get("split") else ""
    thresholds = table["thresholds"]
    lines = [
        f"# zoomguard eval: {dataset['name']}",
        "",
        f"- model: `{model['name']}` version `{model['version']}` ({model['family']}){adapter}",
        f"- dataset: `{dataset['path']}` ({dataset['format']}{split}), {dataset['items']} images, "
        f"{problems.get('count', 0)} problems (problems.jsonl); fingerprint `{dataset['fingerprint']}`",
        f"- stages: {', '.join(table['stages'])}; ai_generated at P(ai) >= {thresholds['ai_threshold']}, real at "
        f"<= {thresholds['real_threshold']}; {table['accuracy_policy']}",
        f"- command: `{table['command'] or '(not from the command line)'}`",
        f"- date: {table['created_at']}",
        *_timing_line(table.get("timing") or {}),
        "",
        "| stage | dataset / source | images | accuracy | acc. real | acc. AI | box IoU (boxes) | uncertain | "
        "decided by evidence / known / model / error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        name = (f"**{row['dataset']}**" if row["source"] == ALL else row["source"]).replace("|", "\\|")
        iou = f"{_number(row['mean_box_iou'])} ({row['box_records']})" if row["box_records"] else "-"
        decided = " / ".join(str(row["decided_by"][key]) for key in DECIDERS)
        lines.append(
            f"| {row['stage']} | {name} | {row['count']} | {_number(row['accuracy'])} | "
            f"{_number(row['accuracy_real'])} | {_number(row['accuracy_ai'])} | {iou} | "
            f"{_number(row['uncertain_rate'])} | {decided} |"
        )
    return "\n".join(lines) + "\n"

"""`zoomguard eval` on a dataset in any format: list its items, refuse it before any engine time is spent when too
many rows have problems, stream the images through the stages, then write each stage's report, the table and
the problems.

A row with a problem (no or unknown label, bad boxes, an image that cannot be read or decoded) is skipped,
counted and listed, never scored and never guessed at; when problems exceed
`evaluation.dataset.max_problem_rate` of the rows, no number is reported at all (problems.jsonl still is).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import BadInputError
from zoomguard.evaluation.outputs import write_outputs, write_problems, write_table
from zoomguard.evaluation.report import ModelEvaluation, ModelSpec, build_report
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.evaluation.sources.items import DatasetSource, EvalItem, Problem, Row
from zoomguard.evaluation.stages import CascadeParts, StageScorer
from zoomguard.evaluation.streaming import score_stream
from zoomguard.evaluation.table import build_table

LISTED_PROBLEMS = 20  # in report.json; every one is in problems.jsonl


@dataclass
class EvalRun:
    """One run: a ModelEvaluation per stage (in stage order), what the dataset was, and what was not scored."""

    results: list[ModelEvaluation]
    dataset: dict[str, Any]
    problems: list[Problem]
    table: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def listed_items(source: DatasetSource, rows: Sequence[Row], evaluation: EvaluationSettings) -> list[EvalItem]:
    """The items to score; BadInputError when there are none, too many, or too many problems already."""
    items = [row for row in rows if isinstance(row, EvalItem)]
    problems = [row for row in rows if isinstance(row, Problem)]
    refuse_if_too_many(source.name, problems, len(rows), evaluation.dataset.max_problem_rate)
    if not items:
        raise BadInputError(f"{source.name}: no image to evaluate{_first(problems)}")
    if len(items) > evaluation.max_records:
        raise BadInputError(
            f"{source.name} has {len(items)} items, above evaluation.max_records={evaluation.max_records}"
        )
    return items


def refuse_if_too_many(name: str, problems: Sequence[Problem], rows: int, max_rate: float) -> None:
    if rows and len(problems) / rows > max_rate:
        raise BadInputError(
            f"{len(problems)} of the {rows} rows of {name} have problems ({len(problems) / rows:.1%}, above "
            f"evaluation.dataset.max_problem_rate={max_rate:.1%}), so no number is reported{_first(problems)}. "
            "Fix the dataset, map its labels (--label-map VALUE=LABEL), name its columns, or raise "
            "--max-problem-rate"
        )


def _first(problems: Sequence[Problem], count: int = 3) -> str:
    if not problems:
        return ""
    shown = "; ".join(f"{p.location}: {p.reason}" for p in problems[:count])
    more = f" (and {len(problems) - count} more)" if len(problems) > count else ""
    return f". Problems: {shown}{more}"


async def evaluate_source(
    detector: ZoomInDetector,
    source: DatasetSource,
    evaluation: EvaluationSettings,
    detector_settings: DetectorSettings,
    *,
    rows: Sequence[Row] | None = None,
    spec: ModelSpec | None = None,
    cascade: CascadeParts | None = None,
    out_dir: Path | None = None,
    command: str | None = None,
    progress: bool = True,
) -> EvalRun:
    """Score `source` with `detector` (serving the model `spec` names) through `evaluation.stages`."""
    spec = spec or ModelSpec("model")
    rows = list(source.rows()) if rows is None else rows
    listed_items(source, rows, evaluation)
    scorer = StageScorer(detector, evaluation.stages, cascade)
    images = source.images()
    started = time.perf_counter()
    stream = await score_stream(
        rows, images, scorer.score, scorer.stages, concurrency=evaluation.concurrency, progress=progress
    )
    scoring_s = time.perf_counter() - started
    problems = [row for row in rows if isinstance(row, Problem)] + stream.problems
    if out_dir is not None:
        write_problems(problems, out_dir)
    refuse_if_too_many(source.name, problems, len(rows), evaluation.dataset.max_problem_rate)
    scored = len(stream.predictions[scorer.stages[0]])
    if not scored:
        raise BadInputError(f"{source.name}: no image could be scored{_first(problems)}")

    created_at = datetime.now(UTC)
    dataset = describe(source, rows, problems, stream.fingerprint, scored)
    if cascade is not None and cascade.bank_description is not None:
        dataset["bank"] = cascade.bank_description
    # what a user plans a run with: reading and scoring, without the engine's start
    timing = {"scoring_s": round(scoring_s, 2), "seconds_per_1000_images": round(1000 * scoring_s / scored, 1)}
    results = []
    for stage in scorer.stages:
        result = ModelEvaluation(
            ModelSpec(stage, spec.adapter, spec.version), detector.model, stream.predictions[stage]
        )
        build_report(result, evaluation, detector_settings, dataset, created_at)
        result.report["stage"] = stage
        result.report["timing"] = timing
        result.report["decided_by"] = dict(Counter(p.decision_source or "error" for p in result.predictions))
        results.append(result)
    thresholds = {"ai_threshold": detector_settings.ai_threshold, "real_threshold": detector_settings.real_threshold}
    table = build_table(
        results, dataset, command=command, created_at=created_at, thresholds=thresholds, ece_bins=evaluation.ece_bins,
        timing=timing,
    )  # fmt: skip
    run = EvalRun(results, dataset, problems, table)
    if out_dir is not None:
        for result in results:
            folder = out_dir if len(results) == 1 else out_dir / result.spec.role
            run.paths |= {
                f"{result.spec.role}_{k}": v for k, v in write_outputs(result, folder, evaluation.ece_bins).items()
            }
        run.paths |= write_table(table, out_dir)
        run.paths["problems"] = out_dir / "problems.jsonl"
    return run


def describe(
    source: DatasetSource, rows: Sequence[Row], problems: Sequence[Problem], fingerprint: str, scored: int
) -> dict[str, Any]:
    """The report's `dataset`: where and what it is, its fingerprint, how its labels were read, its problems."""
    seen: Counter[tuple[str, str]] = Counter((row.raw_label, row.label) for row in rows if isinstance(row, EvalItem))
    return {
        "name": source.name,
        **source.describe(),
        "fingerprint": fingerprint,
        "rows": len(rows),
        "items": scored,
        "labels_seen": {raw: {"label": label, "count": n} for (raw, label), n in sorted(seen.items())},
        "problems": {
            "count": len(problems),
            "rate": len(problems) / len(rows) if rows else 0.0,
            "by_phase": dict(Counter(p.phase for p in problems)),
            "first": [p.to_json() for p in problems[:LISTED_PROBLEMS]],
        },
    }

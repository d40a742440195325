"""`zoomguard retrain`: collect -> (annotate) -> train (SFT, then GRPO) -> eval + promote, as one job.

What a Kubernetes CronJob runs weekly. Each step is the library function its own command uses; this
module is the wiring of that process: it hands each step its own settings sections, orders the steps,
decides when there is too little data to bother, and writes one report per run.
A refused candidate is an outcome, not a failure: the job succeeds and the report says why.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zoomguard.app.config import Settings
from zoomguard.errors import ConfigError

if TYPE_CHECKING:
    from zoomguard.dataset.collect import CollectReport, Progress

Outcome = Literal["promoted", "refused", "dry_run", "skipped"]
REPORT_FILE = "retrain.json"


@dataclass
class RetrainReport:
    run_dir: Path
    started_at: str
    outcome: Outcome = "skipped"
    reason: str = ""
    steps: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "outcome": self.outcome,
            "reason": self.reason,
            "steps": self.steps,
        }


def too_little_data(counts: dict[str, int], min_train: int, min_test: int) -> str | None:
    """Why training would be pointless (or the gate blind) on this dataset; None when there is enough."""
    train, test = counts.get("train", 0), counts.get("test", 0)
    if train < min_train:
        return f"{train} reviewed training images, fewer than retrain.min_train_records={min_train}"
    if test < min_test:
        return f"{test} held-out images, fewer than retrain.min_test_records={min_test}"
    return None


def starting_adapter(settings: Settings) -> Path | None:
    """The promoted adapter to continue from, when the registry has one for this base model."""
    from zoomguard.promotion.registry import Registry

    if not settings.retrain.from_current:
        return None
    current = Registry(Path(settings.evaluation.registry_dir)).current()
    if current is None:
        return None
    if current.base_model and current.base_model != settings.engine.model:
        _say(f"registry version {current.version} is for {current.base_model}, not {settings.engine.model}: "
             "training from the base model")  # fmt: skip
        return None
    return current.directory / "adapter"


def retrain(
    settings: Settings, *, skip_collect: bool = False, dry_run: bool = False, progress: bool = True
) -> RetrainReport:
    if not settings.engine.model:
        raise ConfigError("no base model: set engine.model (or pass --model)")
    now = datetime.now(UTC)
    root = Path(settings.retrain.run_dir or settings.training.output_dir)
    report = RetrainReport(run_dir=root / f"retrain-{now:%Y%m%dT%H%M%SZ}", started_at=now.isoformat())
    report.run_dir.mkdir(parents=True, exist_ok=False)
    dataset = Path(settings.review.dataset_dir)
    try:
        _run(settings, report, dataset, skip_collect=skip_collect, dry_run=dry_run, progress=progress)
    finally:
        (report.run_dir / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=2, default=str))
    return report


def _run(
    settings: Settings, report: RetrainReport, dataset: Path, *, skip_collect: bool, dry_run: bool, progress: bool
) -> None:
    from zoomguard.dataset.records import read_manifest

    if not skip_collect:
        _say(f"[1/4] collect: review decisions -> {dataset}")
        collected = asyncio.run(collect_dataset(settings, dataset))
        report.steps["collect"] = collected.summary()
    if settings.retrain.annotate:
        from zoomguard.dataset.teacher_labels import annotate_with_teacher

        _say("[1/4] annotate: teacher explanations and boxes for label-only records")
        annotated = asyncio.run(
            annotate_with_teacher(settings.annotate, settings.engine, settings.detector.limits, dataset)
        )
        report.steps["annotate"] = annotated.summary()
    counts = dict(read_manifest(dataset).get("counts") or {})  # type: ignore[call-overload]
    report.steps["dataset"] = {"dir": str(dataset), "counts": counts}
    reason = too_little_data(counts, settings.retrain.min_train_records, settings.retrain.min_test_records)
    if reason is not None:
        report.outcome, report.reason = "skipped", reason
        _say(f"nothing to train: {reason}")
        return

    adapter = _train(settings, report, dataset)
    _say(f"[4/4] eval + promote: {adapter} against the serving model")
    from zoomguard.app.publish import model_update_publisher
    from zoomguard.promotion.promote import promote

    result = promote(
        settings.engine,
        settings.detector,
        settings.evaluation,
        adapter,
        dataset,
        publish=model_update_publisher(settings),
        out_dir=report.run_dir / "promote",
        dry_run=dry_run,
        progress=progress,
    )
    report.steps["promote"] = result.to_json()
    if dry_run:
        report.outcome = "dry_run"
        report.reason = (
            "accepted by the gate (not promoted: dry run)" if result.accepted else "; ".join(result.decision.reasons)
        )
    elif result.accepted:
        report.outcome, report.reason = "promoted", f"version {result.version}"
    else:
        report.outcome, report.reason = "refused", "; ".join(result.decision.reasons)


def _train(settings: Settings, report: RetrainReport, dataset: Path) -> Path:
    from zoomguard.training.trl_common import TrainJob

    adapter = starting_adapter(settings)
    report.steps["train"] = {"init_adapter": str(adapter) if adapter else None}
    for index, method in enumerate(settings.retrain.methods, start=1):
        _say(f"[{1 + index}/4] train {method}" + (f" from {adapter}" if adapter else " from the base model"))
        job = TrainJob(
            dataset=dataset, model=settings.engine.model, output=report.run_dir / method, init_adapter=adapter
        )
        if method == "sft":
            from zoomguard.training.sft import train_sft

            result = train_sft(settings.training, settings.detector, job)
        else:
            from zoomguard.training.grpo import train_grpo

            result = train_grpo(settings.training, settings.detector, job)
        report.steps["train"][method] = result.summary
        adapter = result.adapter
        _release_training_memory()
    assert adapter is not None
    return adapter


def _release_training_memory() -> None:
    """The trainer's model and optimiser must be gone before vLLM sizes its KV cache from free GPU memory."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch comes with the train extra
        pass


def _say(message: str) -> None:
    print(f"zoomguard retrain: {message}", file=sys.stderr, flush=True)


async def collect_dataset(settings: Settings, out: Path, progress: Progress | None = None) -> CollectReport:
    """`collect` wired from the root settings: what `zoomguard collect` and the retrain cycle both run."""
    from zoomguard.dataset.collect import collect

    return await collect(
        out,
        kafka=settings.kafka,
        decisions_topic=settings.topics.review_decisions,
        review_topic=settings.topics.review,
        review=settings.review,
        fetch=settings.fetch,
        limits=settings.detector.limits,
        progress=progress,
    )

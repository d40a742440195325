"""What `train sft` and `train grpo` share: checks, samples -> datasets, the LoRA policy, the summary.

Heavy imports (torch, transformers, peft, datasets) happen inside the functions, so importing this module
(and the CLI) stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoomguard.dataset.conversations import ConversationSpec, Stage, record_samples
from zoomguard.dataset.records import TrainingRecord, read_manifest, read_split
from zoomguard.detector.families import ModelFamily, resolve_family
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.training.settings import TrainSettings

ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "train_summary.json"
DATASET_CACHE_DIR = "dataset-cache"
FORMAT_VERSION = 1  # bump when the samples change shape, so old caches are not reused


@dataclass(frozen=True)
class TrainJob:
    """One training run: where the data and the base model are, where the results go."""

    dataset: Path
    model: str
    output: Path
    init_adapter: Path | None = None


@dataclass(frozen=True)
class TrainResult:
    adapter: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    family: ModelFamily
    spec: ConversationSpec
    records: list[TrainingRecord]
    stages: tuple[Stage, ...]

    @property
    def sample_counts(self) -> dict[str, int]:
        """Every record gives exactly one sample per trained stage."""
        return {stage: len(self.records) for stage in self.stages}


def prepare(training: TrainSettings, detector: DetectorSettings, job: TrainJob) -> Prepared:
    """Check the inputs and read the records; every refusal says what to do instead."""
    family = check_model(job.model, detector.model_family)
    if job.init_adapter is not None and not (job.init_adapter / "adapter_config.json").is_file():
        raise ConfigError(f"--init-adapter {job.init_adapter} is not a peft adapter (no adapter_config.json)")
    try:
        records = read_split(job.dataset, "train")
    except FileNotFoundError as exc:
        raise BadInputError(str(exc)) from None
    if not records:
        counts = read_manifest(job.dataset).get("counts", {})
        raise BadInputError(
            f"dataset {job.dataset} has no training records (counts: {counts}); collect decisions first"
        )
    spec = ConversationSpec(
        family, detector.min_pixels, detector.max_pixels, detector.max_regions, detector.crops, detector.limits
    )
    return Prepared(family, spec, records, tuple(training.stages))


def check_model(model: str, family_setting: str) -> ModelFamily:
    """Only Qwen-VL-style models: the prompts, the chat template and the coordinate space assume them."""
    config = Path(model) / "config.json"
    if Path(model).exists() and not config.is_file():
        raise ConfigError(f"{model} is a path but holds no config.json: point --model at a checkpoint directory")
    try:
        return resolve_family(model, family_setting)
    except ConfigError as exc:
        raise ConfigError(f"{model} does not look like a Qwen2.5-VL-style model: {exc}") from None


def to_dataset(prepared: Prepared, cache_dir: Path, *, keep: tuple[str, ...] | None = None) -> Any:
    """A `datasets.Dataset` of the samples: conversational `prompt` (+ `completion`), `images`, reward columns.

    Written to an on-disk Arrow cache one record at a time, so a large dataset's decoded images and crops
    never sit in memory together. The fingerprint covers the records and the serving settings, so every
    process of a distributed run (and a rerun on the same data) reuses one cache.
    """
    from datasets import Dataset

    features = _features(keep)

    def rows() -> Iterator[dict[str, Any]]:
        for record in prepared.records:
            for sample in record_samples(record, prepared.spec, prepared.stages):
                yield {name: value for name, value in sample.columns().items() if name in features}

    try:
        return Dataset.from_generator(
            rows, features=features, cache_dir=str(cache_dir), fingerprint=_fingerprint(prepared, tuple(features))
        )
    except BadInputError:
        raise
    except Exception as exc:  # datasets wraps errors raised in the generator; surface ours as they are
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BadInputError):
            raise cause from None
        raise


def _features(keep: tuple[str, ...] | None) -> Any:
    from datasets import Features, Image, List, Value

    message = {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
    text, number = Value("string"), Value("int32")
    every = {
        "stage": text,
        "prompt": List(message),
        "completion": List(message),
        "images": List(Image()),
        "event_id": text,
        "label": text,
        "ref_boxes": List(List(number)),
        "width": number,
        "height": number,
        "model_width": number,
        "model_height": number,
        "family": text,
        "reference_explanation": text,
        "source": text,
    }
    return Features({name: feature for name, feature in every.items() if keep is None or name in keep})


def _fingerprint(prepared: Prepared, columns: tuple[str, ...]) -> str:
    digest = hashlib.sha256(repr((FORMAT_VERSION, prepared.spec, prepared.stages, columns)).encode())
    for r in prepared.records:
        digest.update(
            repr((r.event_id, r.image_sha256, r.label, r.boxes, r.findings, r.explanation, r.source)).encode()
        )
    return digest.hexdigest()[:32]


def lora_config(ts: TrainSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=ts.lora_r,
        lora_alpha=ts.lora_alpha,
        lora_dropout=ts.lora_dropout,
        target_modules=ts.lora_target_regex(),
        task_type="CAUSAL_LM",
    )


def policy(job: TrainJob, ts: TrainSettings) -> tuple[Any, Any]:
    """(model, peft_config) for a TRL trainer: a fresh LoRA, or the adapter to continue from (trainable)."""
    if job.init_adapter is None:
        return job.model, lora_config(ts)
    from peft import PeftModel
    from trl.trainer.utils import create_model_from_path

    base = create_model_from_path(job.model, dtype=model_dtype(ts))
    return PeftModel.from_pretrained(base, str(job.init_adapter), is_trainable=True), None


def model_dtype(ts: TrainSettings) -> str:
    return "bfloat16" if ts.bf16 else "float32"


def common_args(ts: TrainSettings, job: TrainJob, learning_rate: float) -> dict[str, Any]:
    """TrainingArguments shared by SFTConfig and GRPOConfig."""
    return {
        "output_dir": str(job.output / CHECKPOINT_DIR),
        "learning_rate": learning_rate,
        "num_train_epochs": ts.epochs,
        "max_steps": ts.max_steps,
        "per_device_train_batch_size": ts.per_device_batch_size,
        "gradient_accumulation_steps": ts.gradient_accumulation_steps,
        "save_strategy": "steps",
        "save_steps": ts.save_steps,
        "save_total_limit": ts.save_total_limit,
        "logging_steps": ts.logging_steps,
        "seed": ts.seed,
        "bf16": ts.bf16,
        "gradient_checkpointing": ts.gradient_checkpointing,
        "report_to": "none",
        "remove_unused_columns": False,
        "model_init_kwargs": {"dtype": model_dtype(ts)},
    }


def build_config(config_class: Any, **kwargs: Any) -> Any:
    """SFTConfig / GRPOConfig; their consistency checks (e.g. batch size vs group size) become ConfigErrors."""
    try:
        return config_class(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"invalid training settings: {exc}") from None


def finish(trainer: Any, job: TrainJob, kind: str, prepared: Prepared, ts: TrainSettings) -> TrainResult:
    """Save the adapter (peft format; gathered across ranks under ZeRO-3) and the summary, on rank 0."""
    adapter = job.output / ADAPTER_DIR
    trainer.save_model(str(adapter))
    history = trainer.state.log_history
    summary: dict[str, Any] = {
        "kind": kind,
        "base_model": job.model,
        "init_adapter": None if job.init_adapter is None else str(job.init_adapter),
        "adapter": str(adapter),
        "family": prepared.family.name,
        "steps": trainer.state.global_step,
        "final_loss": _first_known(_last(history, "loss"), _last(history, "train_loss")),
        "final_reward": _last(history, "reward"),
        "dataset": {
            "path": str(job.dataset),
            "records": len(prepared.records),
            "labels": dict(Counter(r.label for r in prepared.records)),
            "samples": prepared.sample_counts,
        },
        "settings": ts.model_dump(),
    }
    if trainer.is_world_process_zero():
        (job.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return TrainResult(adapter, summary)


def _first_known(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    for entry in reversed(history):
        value = entry.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None

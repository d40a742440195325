"""`zoomguard eval` and `zoomguard promote` on the real vLLM CPU engine, a real LoRA adapter and the real broker.

The tiny model has random weights, so no model is "better" at spotting AI images. To get a candidate that
is truly better on a split, the split is labelled with what the candidate itself answers: the candidate's
P(ai) are scored once, the decision thresholds are put at their median (so it says ai_generated for half
the images and real for the other half) and each record's label is that decision. On that split the
candidate is right by construction and the base model only where it happens to agree; with every label
flipped the candidate is wrong everywhere and the base model cannot do worse. Both models run through the
production path: one engine, the base weights and the adapter loaded into vLLM as a LoRA.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from PIL import Image

from tests.kafka_helpers import read_all
from tests.support import make_lora_adapter, tiny_settings
from zoomguard.app.config import Settings
from zoomguard.app.publish import model_update_publisher
from zoomguard.cli import main
from zoomguard.dataset.records import TrainingRecord, write_dataset
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.settings import DetectorSettings
from zoomguard.evaluation.runner import evaluate_dataset
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.kafka.clients import ensure_topics
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.promotion.promote import promote
from zoomguard.promotion.registry import Registry
from zoomguard.samples import make_samples
from zoomguard.schemas.review import ModelUpdate

IMAGES = 12
SOURCES = ("gen-a", "camera")


def _records(labels: list[str]) -> list[TrainingRecord]:
    records = []
    for index, (sample, label) in enumerate(zip(make_samples(IMAGES, seed=900, size=(224, 168)), labels, strict=True)):
        records.append(
            TrainingRecord(
                event_id=f"evt-eval-{index:03d}",
                label=label,  # type: ignore[arg-type]
                image_bytes=sample.data,
                image_sha256=hashlib.sha256(sample.data).hexdigest(),
                width=224,
                height=168,
                boxes=[(20, 20, 120, 100)] if index % 3 == 0 else [],
                source=SOURCES[index % 2],
                split="test",
            )
        )
    return records


def _dataset(directory: Path, labels: list[str]) -> Path:
    write_dataset(directory, _records(labels), {"name": directory.name})
    return directory


@pytest.fixture(scope="module")
def candidate(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora_adapter(tiny_model, tmp_path_factory.mktemp("candidate") / "adapter", seed=7)


def _settings(tiny_model: Path, **sections: Any) -> Settings:
    evaluation = {
        "concurrency": 8,
        "calibration_min_samples": 6,
        "calibration_folds": 3,
        **sections.pop("evaluation", {}),
    }
    # Room for the random adapter's longest answers: an answer cut before its verdict has no P(ai), and the
    # gate test below needs one for every image.
    detector = {"locate_max_tokens": 512, "examine_max_tokens": 384, **sections.pop("detector", {})}
    return tiny_settings(str(tiny_model), evaluation=evaluation, detector=detector, **sections)


def test_eval_command_writes_the_report_predictions_and_charts(tmp_path: Path, tiny_model: Path) -> None:
    dataset = _dataset(tmp_path / "data", ["ai_generated", "real"] * (IMAGES // 2))
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "engine": {"dtype": "float32", "enforce_eager": True, "max_model_len": 4096},
                "detector": {"max_pixels": 224 * 224},
                "evaluation": {"ece_bins": 5},
            }
        )
    )
    out = tmp_path / "eval-out"
    argv = ["eval", "--model", str(tiny_model), "--dataset", str(dataset), "--out", str(out), "--config", str(config)]
    assert main([*argv, "--no-progress"]) == 0

    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["count"] == IMAGES and metrics["labels"] == {"ai_generated": 6, "real": 6}
    for key in ("accuracy", "coverage", "uncertain_rate", "parse_failure_rate", "error_rate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    for key in ("precision", "recall", "f1", "auroc", "ece", "selective_accuracy"):
        assert key in metrics and (metrics[key] is None or 0.0 <= metrics[key] <= 1.0), key
    assert metrics["box_records"] == 4 and 0.0 <= metrics["mean_box_iou"] <= 1.0
    assert sum(sum(row.values()) for row in metrics["confusion"].values()) == IMAGES
    assert set(report["per_source"]) == set(SOURCES)
    assert sum(s["count"] for s in report["per_source"].values()) == IMAGES
    assert report["model"]["name"] == str(tiny_model) and report["model"]["version"].startswith("sha256:")
    assert report["model"]["adapter"] is None
    assert report["dataset"]["split"] == "test" and report["dataset"]["manifest"]["counts"]["test"] == IMAGES
    assert len(report["reliability"]) == 5 and report["settings"]["ece_bins"] == 5
    assert "uncertain" in report["settings"]["uncertain_policy"]
    # 12 labelled predictions are below evaluation.calibration_min_samples (50): identity, no calibrated ECE
    assert report["calibration"]["calibration"]["method"] == "identity" and metrics["calibrated_ece"] is None

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["event_id"] for line in lines] == [f"evt-eval-{i:03d}" for i in range(IMAGES)]
    for line in lines:
        assert {"event_id", "label", "decision", "p_ai", "source", "parse_ok"} <= set(line)
        assert line["decision"] in ("ai_generated", "real", "uncertain", "error")
    # the report's numbers are the predictions' numbers
    decided_right = sum(1 for line in lines if line["decision"] == line["label"])
    assert metrics["accuracy"] == pytest.approx(decided_right / IMAGES)
    for name in ("reliability.png", "confusion.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"


def test_promote_refuses_a_worse_candidate_and_accepts_a_better_one(
    tmp_path: Path, tiny_model: Path, candidate: Path, broker: Any
) -> None:
    # 1. what the candidate answers: scored once through `eval` with the adapter (on any labels)
    probe_settings = _settings(tiny_model)
    probe = asyncio.run(
        evaluate_dataset(
            probe_settings.engine,
            probe_settings.detector,
            probe_settings.evaluation,
            _dataset(tmp_path / "probe", ["real"] * IMAGES),
            tmp_path / "probe-out",
            adapter=str(candidate),
            progress=False,
        )
    )
    assert probe.model.version.startswith("lora-sha256:")  # the adapter, not the base model, answered
    raw = [p.p_ai for p in probe.predictions]
    assert all(p is not None for p in raw), "the candidate must give a P(ai) for every image of this test"
    ordered = sorted(float(p) for p in raw if p is not None)
    low, high = ordered[IMAGES // 2 - 1], ordered[IMAGES // 2]
    assert high > low, "the candidate's P(ai) must not all be equal"
    cut = (low + high) / 2
    detector = {"ai_threshold": cut, "real_threshold": cut - 1e-9}
    own = ["ai_generated" if float(p or 0) >= cut else "real" for p in raw]
    flipped = ["real" if label == "ai_generated" else "ai_generated" for label in own]
    assert own.count("ai_generated") == IMAGES // 2 and median(ordered) == pytest.approx(cut)

    topic = f"models.updates.{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap), [topic], partitions=1)
    registry_dir = tmp_path / "registry"
    settings = _settings(
        tiny_model,
        detector=detector,
        evaluation={"registry_dir": str(registry_dir), "margin": 0.1, "worker_registry_dir": "/mnt/registry"},
        kafka={"bootstrap_servers": broker.bootstrap},
        topics={"model_updates": topic},
    )

    # 2. worse: every label flipped. Refused through the command: exit 1, nothing registered or published
    config = tmp_path / "promote.json"
    config.write_text(json.dumps(_config_dict(settings)))
    worse = _dataset(tmp_path / "worse", flipped)
    out = tmp_path / "refused"
    argv = ["promote", "--candidate", str(candidate), "--dataset", str(worse), "--config", str(config)]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 1
    refused = json.loads((out / "promotion.json").read_text())
    assert refused["accepted"] is False and refused["version"] is None
    assert any("below the margin" in reason for reason in refused["reasons"])
    assert refused["candidate"]["metrics"]["accuracy"] == 0.0  # wrong on every image, by construction
    assert (out / "serving" / "report.json").is_file() and (out / "candidate" / "confusion.png").is_file()
    assert Registry(registry_dir).current() is None and not registry_dir.exists()
    assert read_all(broker.bootstrap, topic) == []

    # 3. better: the candidate's own answers. A dry run passes the gate and changes nothing
    better = _dataset(tmp_path / "better", own)
    argv = ["promote", "--candidate", str(candidate), "--dataset", str(better), "--config", str(config), "--dry-run"]
    assert main([*argv, "--out", str(tmp_path / "dry"), "--no-progress"]) == 0
    dry = json.loads((tmp_path / "dry" / "promotion.json").read_text())
    assert dry["accepted"] is True and dry["dry_run"] is True and dry["version"] is None
    assert not registry_dir.exists() and read_all(broker.bootstrap, topic) == []

    # 4. the real promotion: registered, announced, served
    publisher = model_update_publisher(settings)
    result = promote(
        *_sections(settings), candidate, better, publish=publisher, out_dir=tmp_path / "accepted", progress=False
    )
    assert result.accepted, result.decision.reasons
    cand, serv = result.candidate.metrics, result.serving.metrics
    assert cand["accuracy"] == pytest.approx(1.0) and cand["accuracy"] >= serv["accuracy"] + 0.1
    assert cand["parse_failure_rate"] <= serv["parse_failure_rate"]
    assert result.serving.model.version.startswith("sha256:")  # nothing promoted yet: the base model serves
    version = result.version
    assert version is not None and result.update is not None

    current = Registry(registry_dir).current()
    assert current is not None and current.version == version and current.base_model == str(tiny_model)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (current.adapter_dir / name).read_bytes() == (candidate / name).read_bytes()
    stored_metrics = json.loads((current.directory / "metrics.json").read_text())
    assert stored_metrics["metrics"]["accuracy"] == pytest.approx(1.0)
    assert json.loads((current.directory / "calibration.json").read_text()) == result.update.calibration.model_dump()
    assert json.loads((registry_dir / "current.json").read_text())["version"] == version

    records = read_all(broker.bootstrap, topic)
    assert len(records) == 1 and records[0].key == version.encode()
    update = ModelUpdate.model_validate_json(records[0].value)
    assert update.model_version == version and update.base_model == str(tiny_model)
    assert update.adapter_path == f"/mnt/registry/{version}/adapter"
    assert update.metrics["accuracy"] == pytest.approx(1.0)
    assert update.baseline_metrics["accuracy"] == pytest.approx(serv["accuracy"])
    assert update.previous_version is None and update.calibration == current.calibration
    assert update.calibration.fitted_on == IMAGES and 0.0 <= update.metrics["calibrated_ece"] <= 1.0

    # 5. the same candidate again: the registry's version now serves (loaded from the registry as a LoRA),
    # answers the same, so the candidate no longer beats it
    again = promote(*_sections(settings), candidate, better, publish=publisher, progress=False)
    assert not again.accepted and any("below the margin" in r for r in again.decision.reasons)
    assert again.serving.model.version == version and again.serving.spec.adapter == str(current.adapter_dir)
    assert again.serving.metrics["accuracy"] == pytest.approx(1.0)
    assert Registry(registry_dir).current().version == version  # type: ignore[union-attr]
    assert len(read_all(broker.bootstrap, topic)) == 1


def _sections(settings: Settings) -> tuple[EngineSettings, DetectorSettings, EvaluationSettings]:
    return settings.engine, settings.detector, settings.evaluation


def _config_dict(settings: Settings) -> dict[str, Any]:
    """The sections these tests set, as a config file (secrets stay out: the tiny settings have none)."""
    return {
        section: getattr(settings, section).model_dump(mode="json", exclude_defaults=True)
        for section in ("engine", "detector", "evaluation", "kafka", "topics")
    }

"""`zoomguard retrain` end to end on the real broker, worker, vLLM engine and TRL: the whole loop once.

worker verdicts -> review requests -> reviewers' decisions -> collect -> SFT -> GRPO -> eval + gate ->
(registry + ModelUpdate when accepted). The tiny model has random weights, so whether the gate accepts is
not known in advance; the test asserts that every step ran on the right inputs and that the outcome is
reflected exactly (promoted: registry pointer and one ModelUpdate; refused: neither). The gate itself is
tested both ways in test_eval_promote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kafka_helpers import image_event, inline, kafka_overrides, produce, read_json, run_until_handled
from tests.support import LoopThread, tiny_settings
from zoomguard.app.retrain import REPORT_FILE, retrain
from zoomguard.cli import main
from zoomguard.dataset.records import read_manifest
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.clients import ensure_topics
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.promotion.registry import Registry
from zoomguard.samples import make_samples
from zoomguard.schemas.review import ModelUpdate
from zoomguard.training.trl_common import SUMMARY_FILE

IMAGES = 8
SMALL_TRAINING = {
    "max_steps": 1,
    "per_device_batch_size": 2,
    "num_generations": 2,
    "max_completion_length": 16,
    "lora_r": 4,
    "lora_alpha": 8,
    "save_steps": 1,
}


def _decision(event_id: str, label: str) -> bytes:
    return json.dumps(
        {"event_id": event_id, "label": label, "reviewer": "rev", "decided_at": "2026-11-24T12:00:00Z"}
    ).encode()


def test_retrain_runs_the_whole_loop_from_reviewed_verdicts(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine, tmp_path: Path
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "retrain", 2)
    topics = kafka["topics"]
    topics["review_decisions"] = topics["input"] + ".decisions"
    ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap), [topics["review_decisions"]], 2)
    settings = tiny_settings(
        str(tiny_model),
        **kafka,
        worker={"audit_rate": 1.0},  # every verdict goes to review
        review={"dataset_dir": str(tmp_path / "dataset"), "test_fraction": 0.5},
        training={**SMALL_TRAINING, "output_dir": str(tmp_path / "runs")},
        evaluation={"registry_dir": str(tmp_path / "registry"), "calibration_min_samples": 4, "calibration_folds": 2},
        retrain={"min_train_records": 1, "min_test_records": 1},
    )
    samples = make_samples(IMAGES, seed=2026, size=(160, 120))
    events = {f"rt-{i}": sample for i, sample in enumerate(samples)}
    produce(
        broker.bootstrap, topics["input"], [(e.encode(), image_event(e, inline(s.data))) for e, s in events.items()]
    )
    run_until_handled(loop, settings, inprocess_engine, IMAGES)
    reviewed = {r["event_id"] for r in read_json(broker.bootstrap, topics["review"])}
    assert reviewed == set(events)
    labels = {e: ("ai_generated" if i % 2 else "real") for i, e in enumerate(sorted(events))}
    produce(
        broker.bootstrap, topics["review_decisions"], [(e.encode(), _decision(e, label)) for e, label in labels.items()]
    )

    report = retrain(settings, progress=False)

    # collect: every decision became a record, split across train and test
    counts = read_manifest(tmp_path / "dataset")["counts"]
    assert counts == report.steps["dataset"]["counts"] and sum(counts.values()) == IMAGES  # type: ignore[call-overload]
    assert counts["train"] >= 1 and counts["test"] >= 1  # type: ignore[index]
    assert report.steps["collect"]["skipped"] == {}
    # train: SFT from the base model, then GRPO from SFT's adapter
    sft_summary = json.loads((report.run_dir / "sft" / SUMMARY_FILE).read_text())
    grpo_summary = json.loads((report.run_dir / "grpo" / SUMMARY_FILE).read_text())
    assert sft_summary["init_adapter"] is None and sft_summary["steps"] == 1
    assert grpo_summary["init_adapter"] == str(report.run_dir / "sft" / "adapter") and grpo_summary["steps"] == 1
    # eval + gate: both models scored on the held-out split, and the outcome is reflected exactly
    promotion = report.steps["promote"]
    assert promotion["serving"]["metrics"]["count"] == promotion["candidate"]["metrics"]["count"] == counts["test"]  # type: ignore[index]
    updates = [ModelUpdate.model_validate_json(r) for r in _raw(broker, topics["model_updates"])]
    current = Registry(tmp_path / "registry").current()
    if promotion["accepted"]:
        assert report.outcome == "promoted" and current is not None and current.version == promotion["version"]
        assert [u.model_version for u in updates] == [current.version]
        assert (current.directory / "adapter" / "adapter_config.json").is_file()
    else:
        assert report.outcome == "refused" and report.reason and current is None and updates == []
    saved = json.loads((report.run_dir / REPORT_FILE).read_text())
    assert saved["outcome"] == report.outcome and set(saved["steps"]) >= {"collect", "dataset", "train", "promote"}


def _raw(broker: EmbeddedBroker, topic: str) -> list[bytes]:
    from tests.kafka_helpers import read_all

    return [r.value for r in read_all(broker.bootstrap, topic)]


def test_retrain_with_too_little_data_trains_nothing_and_exits_0(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoomguard.dataset.records import write_dataset

    write_dataset(tmp_path / "dataset", [], {"source": "test"})
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"engine": {"model": str(tiny_model)}, "training": {"output_dir": str(tmp_path / "runs")}})
    )
    argv = ["retrain", "--config", str(config), "--skip-collect", "--dataset", str(tmp_path / "dataset")]
    assert main([*argv, "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["outcome"] == "skipped" and "0 reviewed training images" in printed["reason"]
    run_dir = Path(printed["run_dir"])
    assert run_dir.parent == tmp_path / "runs" and not (run_dir / "sft").exists()
    assert json.loads((run_dir / REPORT_FILE).read_text())["outcome"] == "skipped"

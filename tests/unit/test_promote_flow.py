"""The promotion flow with scripted evaluations and a recording `publish`: what is written and announced
for each gate outcome, in which order; and the Kafka publish's errors (a fake producer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from zoomguard.dataset.records import TrainingRecord, write_dataset
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import UnavailableError
from zoomguard.evaluation.report import ModelEvaluation, ModelSpec
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.promotion import promote as flow
from zoomguard.promotion.registry import Registry
from zoomguard.schemas.detection import ModelInfo
from zoomguard.schemas.review import ModelUpdate

RECORDS = 6


def _dataset(root: Path) -> Path:
    records = [
        TrainingRecord(
            event_id=f"ev-{i}",
            label="ai_generated" if i % 2 else "real",
            image_bytes=b"x",
            image_sha256="ab",
            width=1,
            height=1,
            split="test",
        )
        for i in range(RECORDS)
    ]
    write_dataset(root, records, {"name": "flow"})
    return root


def _candidate(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (root / "adapter_model.safetensors").write_bytes(b"w" * 64)
    return root


def _scripted(right: dict[str, bool]) -> Any:
    """evaluate_models without an engine: each role answers every record right, or every record wrong."""

    async def evaluate_models(
        engine: EngineSettings,
        detector: DetectorSettings,
        specs: Sequence[ModelSpec],
        records: Sequence[TrainingRecord],
        *,
        concurrency: int,
        progress: bool = True,
    ) -> list[ModelEvaluation]:
        results = []
        for spec in specs:
            predictions = []
            for r in records:
                other = "real" if r.label == "ai_generated" else "ai_generated"
                decision = r.label if right[spec.role] else other
                p_ai = 0.9 if decision == "ai_generated" else 0.1
                predictions.append(Prediction(event_id=r.event_id, label=r.label, decision=decision, p_ai=p_ai))
            info = ModelInfo(name=engine.model, version=spec.version or spec.role, family="qwen2_5_vl")
            results.append(ModelEvaluation(spec, info, predictions))
        return results

    return evaluate_models


class Recorder:
    """A `publish` that records each update and what the registry served at that moment."""

    def __init__(self, registry: Path, fail: bool = False):
        self.registry = registry
        self.fail = fail
        self.updates: list[ModelUpdate] = []
        self.serving_when_published: list[str | None] = []

    def __call__(self, update: ModelUpdate) -> None:
        current = Registry(self.registry).current()
        self.serving_when_published.append(current.version if current else None)
        self.updates.append(update)
        if self.fail:
            raise UnavailableError("broker down")


def _promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, candidate_right: bool, publish: Recorder, **options: Any
) -> flow.PromotionResult:
    monkeypatch.setattr(flow, "evaluate_models", _scripted({"serving": False, "candidate": candidate_right}))
    engine = EngineSettings(model="base/model")
    evaluation = EvaluationSettings(registry_dir=str(publish.registry), worker_registry_dir="/mnt/reg")
    return flow.promote(
        engine,
        DetectorSettings(),
        evaluation,
        _candidate(tmp_path / "cand"),
        _dataset(tmp_path / "data"),
        publish=publish,
        out_dir=tmp_path / "out",
        progress=False,
        **options,
    )


def test_a_refused_candidate_publishes_and_registers_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish = Recorder(tmp_path / "reg")
    result = _promote(tmp_path, monkeypatch, candidate_right=False, publish=publish)
    assert not result.accepted and any("below the margin" in r for r in result.decision.reasons)
    assert publish.updates == [] and not (tmp_path / "reg").exists()
    saved = json.loads((tmp_path / "out" / "promotion.json").read_text())
    assert saved["accepted"] is False and saved["version"] is None and saved["model_update"] is None
    assert (tmp_path / "out" / "serving" / "report.json").is_file()
    assert (tmp_path / "out" / "candidate" / "predictions.jsonl").is_file()


def test_a_dry_run_gates_but_publishes_and_registers_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish = Recorder(tmp_path / "reg")
    result = _promote(tmp_path, monkeypatch, candidate_right=True, publish=publish, dry_run=True)
    assert result.accepted and result.dry_run and result.version is None
    assert result.notes == ["dry run: nothing written to the registry, nothing published"]
    assert publish.updates == [] and not (tmp_path / "reg").exists()


def test_an_accepted_candidate_is_published_before_it_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish = Recorder(tmp_path / "reg")
    result = _promote(tmp_path, monkeypatch, candidate_right=True, publish=publish)
    assert result.accepted and result.version is not None
    [update] = publish.updates
    assert update == result.update and update.model_version == result.version
    assert publish.serving_when_published == [None]  # the pointer moved only after the publish returned
    assert update.base_model == "base/model" and update.adapter_path == f"/mnt/reg/{result.version}/adapter"
    assert update.metrics["accuracy"] == 1.0 and update.baseline_metrics["accuracy"] == 0.0
    current = Registry(tmp_path / "reg").current()
    assert current is not None and current.version == result.version


def test_a_failed_publish_leaves_the_registry_serving_what_it_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish = Recorder(tmp_path / "reg", fail=True)
    with pytest.raises(UnavailableError, match="broker down"):
        _promote(tmp_path, monkeypatch, candidate_right=True, publish=publish)
    assert len(publish.updates) == 1 and Registry(tmp_path / "reg").current() is None


class _Future:
    def __init__(self, error: Exception | None):
        self._error = error

    def get(self, timeout: float) -> None:
        if self._error is not None:
            raise self._error


class _Producer:
    def __init__(self, error: Exception | None = None):
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.closed = False
        self._error = error

    def send(self, topic: str, *, key: bytes, value: bytes) -> _Future:
        self.sent.append((topic, key, value))
        return _Future(self._error)

    def close(self, timeout: float) -> None:
        self.closed = True


def _update() -> ModelUpdate:
    return ModelUpdate.model_validate(
        {
            "model_version": "20261124T120005Z-3fa2c9d1b0",
            "base_model": "base/model",
            "adapter_path": "/mnt/reg/20261124T120005Z-3fa2c9d1b0/adapter",
            "promoted_at": "2026-11-24T12:00:05Z",
        }
    )


def test_publish_model_update_sends_keyed_by_version_and_says_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoomguard.app.publish import publish_model_update
    from zoomguard.kafka import publish as kafka_publish

    update, kafka = _update(), KafkaSettings()
    producer = _Producer()
    monkeypatch.setattr(kafka_publish, "make_producer", lambda settings: producer)
    publish_model_update(kafka, "models.updates", 5.0, update)
    assert producer.sent == [("models.updates", update.model_version.encode(), update.model_dump_json().encode())]
    assert producer.closed

    timeout = KafkaTimeoutError("no ack")
    unacked = _Producer(timeout)
    monkeypatch.setattr(kafka_publish, "make_producer", lambda settings: unacked)
    with pytest.raises(UnavailableError) as caught:
        publish_model_update(kafka, "models.updates", 5.0, update)
    assert str(caught.value) == (
        f"ModelUpdate {update.model_version} was not acknowledged on models.updates: "
        f"{timeout}; the registry still serves the previous version"
    )
    assert isinstance(caught.value.__cause__, KafkaTimeoutError) and unacked.closed

    refused = KafkaConnectionError("no brokers")

    def unreachable(settings: KafkaSettings) -> _Producer:
        raise refused

    monkeypatch.setattr(kafka_publish, "make_producer", unreachable)
    with pytest.raises(UnavailableError) as caught:
        publish_model_update(kafka, "models.updates", 5.0, update)
    assert str(caught.value) == f"cannot reach Kafka to publish {update.model_version}: {refused}"

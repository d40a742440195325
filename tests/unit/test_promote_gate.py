"""The promotion gate as a table, and the registry's files (pure, on a temp directory)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import BadInputError
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.promotion.gate import GateRule, gate
from zoomguard.promotion.registry import Registry, version_name
from zoomguard.schemas.events import ID_PATTERN
from zoomguard.schemas.review import Calibration, ModelUpdate


def _m(accuracy: float | None, parse_failure_rate: float | None = 0.0, **more: float | None) -> dict:
    return {"accuracy": accuracy, "parse_failure_rate": parse_failure_rate, **more}


@pytest.mark.parametrize(
    ("candidate", "serving", "rule", "accepted", "reason"),
    [
        (_m(0.80), _m(0.70), GateRule(margin=0.05), True, None),  # better by more than the margin
        (_m(0.75), _m(0.70), GateRule(margin=0.05), True, None),  # exactly the margin
        (_m(0.74), _m(0.70), GateRule(margin=0.05), False, "below the margin"),  # better, not enough
        (_m(0.60), _m(0.70), GateRule(margin=0.0), False, "below the margin"),  # worse
        (_m(0.70), _m(0.70), GateRule(margin=0.0), False, "below the margin"),  # equal never wins
        (_m(0.71), _m(0.70), GateRule(margin=0.0), True, None),
        (_m(0.90, 0.10), _m(0.70, 0.05), GateRule(), False, "parse-failure rate rises"),
        (_m(0.90, 0.06), _m(0.70, 0.05), GateRule(max_parse_failure_increase=0.02), True, None),
        (_m(0.90, 0.00), _m(0.70, 0.05), GateRule(), True, None),  # fewer failures is fine
        (_m(None), _m(0.70), GateRule(), False, "candidate's accuracy is undefined"),
        (_m(0.9), _m(None), GateRule(), False, "serving model's accuracy is undefined"),
        (_m(0.9, None), _m(0.7, None), GateRule(), False, "parse_failure_rate is undefined"),
        # lower is better for ECE
        (_m(0.7, ece=0.05), _m(0.7, ece=0.10), GateRule(metric="ece", margin=0.02), True, None),
        (_m(0.7, ece=0.10), _m(0.7, ece=0.05), GateRule(metric="ece", margin=0.0), False, "below the margin"),
        (_m(0.7, auroc=0.9), _m(0.9, auroc=0.8), GateRule(metric="auroc", margin=0.05), True, None),
    ],
)
def test_gate(candidate: dict, serving: dict, rule: GateRule, accepted: bool, reason: str | None) -> None:
    decision = gate(candidate, serving, rule)
    assert decision.accepted is accepted
    if reason is None:
        assert decision.reasons == ()
    else:
        assert any(reason in r for r in decision.reasons), decision.reasons


def test_gate_reports_both_failures_and_the_improvement() -> None:
    decision = gate(_m(0.5, 0.3), _m(0.6, 0.1), GateRule(margin=0.01))
    assert not decision.accepted and len(decision.reasons) == 2
    assert decision.improvement == pytest.approx(-0.1)


def _adapter(path: Path, weights: bytes = b"w" * 64) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (path / "adapter_model.safetensors").write_bytes(weights)
    return path


def test_version_name_is_a_timestamp_and_a_content_hash(tmp_path: Path) -> None:
    import re

    now = datetime(2026, 11, 24, 12, 0, 5, tzinfo=UTC)
    a = version_name(_adapter(tmp_path / "a"), now, 10**6)
    b = version_name(_adapter(tmp_path / "b"), now, 10**6)
    c = version_name(_adapter(tmp_path / "c", b"other"), now, 10**6)
    assert a.startswith("20261124T120005Z-") and len(a.split("-")[1]) == 10
    assert a == b and a != c  # the same files, the same name
    assert re.fullmatch(ID_PATTERN, a)
    with pytest.raises(BadInputError, match="max_adapter_bytes"):
        version_name(tmp_path / "a", now, 10)


def test_registry_add_and_point(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    assert registry.current() is None
    calibration = Calibration(method="temperature", temperature=1.7, fitted_on=80)
    entry = registry.add(
        "v1",
        _adapter(tmp_path / "cand"),
        model={"base_model": "tiny"},
        metrics={"accuracy": 0.8},
        calibration=calibration,
    )
    assert (entry.adapter_dir / "adapter_model.safetensors").read_bytes() == b"w" * 64
    assert registry.current() is None  # adding does not serve it
    registry.set_current("v1")
    current = registry.current()
    assert current is not None and current.version == "v1" and current.base_model == "tiny"
    assert current.calibration == calibration
    assert json.loads((tmp_path / "reg" / "v1" / "metrics.json").read_text()) == {"accuracy": 0.8}
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.startswith(".")]  # no staging left behind
    with pytest.raises(BadInputError, match="already exists"):
        registry.add("v1", tmp_path / "cand", model={}, metrics={}, calibration=calibration)
    with pytest.raises(BadInputError, match="does not exist"):
        registry.set_current("v2")


def test_registry_refuses_a_broken_pointer(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    (root / "current.json").write_text(json.dumps({"version": "../etc"}))
    with pytest.raises(BadInputError, match="no valid version"):
        Registry(root).current()
    (root / "current.json").write_text("not json")
    with pytest.raises(BadInputError, match="not readable JSON"):
        Registry(root).current()


def _sections(tmp_path: Path, **evaluation: Any) -> tuple[EngineSettings, DetectorSettings, EvaluationSettings]:
    """The sections `promote` takes: a base model, default detector, a registry under tmp_path."""
    return (
        EngineSettings(model=str(tmp_path / "base")),
        DetectorSettings(),
        EvaluationSettings(registry_dir=str(tmp_path / "reg"), **evaluation),
    )


def _never_publish(update: ModelUpdate) -> None:
    raise AssertionError(f"nothing may be published here, got {update.model_version}")


def test_promote_refuses_bad_candidates_before_starting_an_engine(tmp_path: Path) -> None:
    from zoomguard.errors import ConfigError
    from zoomguard.promotion.promote import promote

    dataset = tmp_path / "data"
    with pytest.raises(BadInputError, match="not a LoRA adapter"):
        promote(*_sections(tmp_path), tmp_path, dataset, publish=_never_publish)
    candidate = _adapter(tmp_path / "cand", b"x" * 4096)
    with pytest.raises(BadInputError, match="max_adapter_bytes"):
        promote(*_sections(tmp_path, max_adapter_bytes=1024), candidate, dataset, publish=_never_publish)
    registry = Registry(tmp_path / "reg")
    registry.add("v1", candidate, model={"base_model": "another/base"}, metrics={}, calibration=Calibration())
    registry.set_current("v1")
    with pytest.raises(ConfigError, match="serves adapters on 'another/base'"):
        promote(*_sections(tmp_path), candidate, dataset, publish=_never_publish)


def test_load_records_refuses_missing_empty_and_oversized_splits(tmp_path: Path) -> None:
    from zoomguard.dataset.records import TrainingRecord, write_dataset
    from zoomguard.evaluation.runner import load_records

    with pytest.raises(BadInputError, match="does not exist"):
        load_records(tmp_path / "nowhere", "test", 10)
    record = TrainingRecord(
        event_id="e1", label="real", image_bytes=b"x", image_sha256="ab", width=1, height=1, split="test"
    )
    write_dataset(tmp_path / "d", [record, record.model_copy(update={"event_id": "e2"})], {})
    with pytest.raises(BadInputError, match=r"train split .* is empty"):
        load_records(tmp_path / "d", "train", 10)
    with pytest.raises(BadInputError, match="max_records=1"):
        load_records(tmp_path / "d", "test", 1)
    assert [r.event_id for r in load_records(tmp_path / "d", "test", 2)] == ["e1", "e2"]

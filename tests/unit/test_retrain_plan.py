"""`zoomguard retrain`'s decisions that need no engine: when to skip, which adapter to continue from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoomguard.app.config import load_settings
from zoomguard.app.retrain import starting_adapter, too_little_data
from zoomguard.promotion.registry import Registry
from zoomguard.schemas.review import Calibration


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"train": 50, "test": 20}, None),
        ({"train": 500, "test": 100}, None),
        ({"train": 49, "test": 20}, "49 reviewed training images"),
        ({"test": 20}, "0 reviewed training images"),
        ({"train": 50, "test": 19}, "19 held-out images"),
        ({}, "0 reviewed training images"),
    ],
)
def test_too_little_data(counts: dict[str, int], expected: str | None) -> None:
    reason = too_little_data(counts, min_train=50, min_test=20)
    assert reason == expected if expected is None else (reason is not None and reason.startswith(expected))


def _registry_with_version(root: Path, base_model: str) -> Path:
    adapter = root.parent / "adapter-src"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4}))
    registry = Registry(root)
    registry.add("v1", adapter, model={"base_model": base_model}, metrics={}, calibration=Calibration())
    registry.set_current("v1")
    return root / "v1" / "adapter"


@pytest.mark.parametrize(
    ("registered_for", "from_current", "continues"),
    [("base/model", True, True), ("other/model", True, False), ("base/model", False, False)],
)
def test_training_continues_from_the_promoted_adapter_of_the_same_base(
    tmp_path: Path, registered_for: str, from_current: bool, continues: bool
) -> None:
    adapter = _registry_with_version(tmp_path / "registry", registered_for)
    settings = load_settings(
        environ={},
        overrides={
            "engine": {"model": "base/model"},
            "evaluation": {"registry_dir": str(tmp_path / "registry")},
            "retrain": {"from_current": from_current},
        },
    )
    assert starting_adapter(settings) == (adapter if continues else None)


def test_empty_registry_starts_from_the_base_model(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, overrides={"engine": {"model": "m"}, "evaluation": {"registry_dir": str(tmp_path / "none")}}
    )
    assert starting_adapter(settings) is None

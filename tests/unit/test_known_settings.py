"""Known-content settings: the documented defaults, every field described, unknown keys refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zoomguard.known.settings import KnownContentSettings


def test_defaults_are_the_documented_ones() -> None:
    settings = KnownContentSettings()
    assert settings.model_dump() == {
        "enabled": True,
        "topic": "images.known",
        "max_distance": 31,
        "min_quality": 50,
        "dihedral": False,
        "hash_size": 512,
        "decides": True,
        "run_model_anyway": False,
        "from_evidence": False,
        "max_entries": 5_000_000,
    }


def test_every_field_is_described() -> None:
    assert all(field.description for field in KnownContentSettings.model_fields.values())


@pytest.mark.parametrize(
    "changes",
    [
        {"max_distance": -1},
        {"max_distance": 129},
        {"min_quality": 101},
        {"hash_size": 32},
        {"max_entries": 0},
        {"topic": ""},
        {"threshold": 31},
    ],
)
def test_bad_values_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KnownContentSettings.model_validate(changes)

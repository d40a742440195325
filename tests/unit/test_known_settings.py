"""Known-content settings: every field described (the README reference is generated from them), bounds and unknown
keys refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zoomguard.known.settings import KnownContentSettings


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

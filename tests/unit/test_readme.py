"""The README stays true: its configuration reference and event examples are checked against the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zoomguard.app.settings_reference import settings_reference
from zoomguard.known.bank import BankEntry
from zoomguard.schemas.events import DeadLetter, ImageEvent, ReviewRequest, VerdictEvent
from zoomguard.schemas.review import ModelUpdate, ReviewDecision

README = Path(__file__).resolve().parents[2] / "README.md"
MODELS = {
    "ImageEvent": ImageEvent,
    "VerdictEvent": VerdictEvent,
    "ReviewRequest": ReviewRequest,
    "DeadLetter": DeadLetter,
    "ReviewDecision": ReviewDecision,
    "ModelUpdate": ModelUpdate,
    "BankEntry": BankEntry,
}


def test_configuration_reference_is_current() -> None:
    assert settings_reference() in README.read_text(), "run `make docs` to regenerate the README's settings table"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_event_examples_validate(name: str) -> None:
    match = re.search(rf"<!-- example:{name} -->\s*```json\n(.*?)```", README.read_text(), re.S)
    assert match, f"no example for {name}"
    document = json.loads(match.group(1))
    event = MODELS[name].model_validate(document)
    # every field of the model appears in the example, so the README shows the whole schema
    assert set(type(event).model_fields) == set(document)


def test_readme_gives_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text

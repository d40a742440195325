"""The GRPO rewards as tables: what each query's answer earns, with the serving parser and geometry."""

from __future__ import annotations

import math
from typing import Any

import pytest

from zoomguard.training.bleu import bleu2, clipped_matches, tokenize
from zoomguard.training.rewards import (
    REWARDS,
    accuracy_reward,
    completion_text,
    explanation_reward,
    format_reward,
    localisation_reward,
)

LOCATE_OK = '{"explanation":"odd hand","regions":[{"bbox_2d":[1,2,30,40],"finding":"six fingers"}],"verdict":"real"}'
EXAMINE_OK = '{"explanation":"The crops show six fingers.","verdict":"ai_generated"}'


@pytest.mark.parametrize(
    ("text", "stage", "expected"),
    [
        (LOCATE_OK, "locate", 1.0),
        ('{"explanation": "x", "regions": [], "verdict": "ai_generated"}', "locate", 1.0),  # whitespace is fine
        ('  {"explanation":"x","regions":[],"verdict":"real"}\n', "locate", 1.0),
        (EXAMINE_OK, "examine", 1.0),
        (EXAMINE_OK, "locate", 0.0),  # Query 1 must give regions
        (LOCATE_OK, "examine", 0.0),  # Query 2 gives no regions
        ('{"explanation":"x","regions":[],"verdict":"AI-generated"}', "locate", 0.0),  # parser reads it; schema not
        ('{"explanation":"x","regions":[{"bbox_2d":[1,2,3],"finding":"f"}],"verdict":"real"}', "locate", 0.0),
        ('{"explanation":"x","verdict":"real"', "examine", 0.0),  # truncated: repaired by the parser, no reward
        ('Sure! {"explanation":"x","verdict":"real"}', "examine", 0.0),  # wrapped in prose
        ('{"explanation":"x","verdict":"maybe"}', "examine", 0.0),
        ('{"explanation":"x"}', "examine", 0.0),
        ("the image is real", "examine", 0.0),
        ("", "locate", 0.0),
    ],
)
def test_format_reward(text: str, stage: str, expected: float) -> None:
    assert format_reward([None], [text], stage=[stage]) == [expected]


def test_completions_in_conversational_form_are_read() -> None:
    message = [{"role": "assistant", "content": EXAMINE_OK}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": EXAMINE_OK}]}]
    assert completion_text(message) == completion_text(parts) == EXAMINE_OK
    assert format_reward([None, None], [message, parts], stage=["examine", "examine"]) == [1.0, 1.0]


def _loc(text: str, ref: list[list[int]], *, family: str = "qwen2_5_vl", stage: str = "locate") -> float | None:
    """Original image 400x200, shown to the model at 200x100 (so model pixels are half the original's)."""
    columns: dict[str, Any] = {
        "stage": [stage],
        "ref_boxes": [ref],
        "width": [400],
        "height": [200],
        "model_width": [200],
        "model_height": [100],
        "family": [family],
    }
    return localisation_reward([None], [text], **columns)[0]


def _answer(*boxes: list[float]) -> str:
    regions = ",".join(f'{{"bbox_2d":{list(b)},"finding":"f"}}' for b in boxes)
    return f'{{"explanation":"x","regions":[{regions}],"verdict":"ai_generated"}}'


REF = [[0, 0, 100, 100]]


@pytest.mark.parametrize(
    ("text", "ref", "family", "expected"),
    [
        (_answer([0, 0, 50, 50]), REF, "qwen2_5_vl", 1.0),  # model (0,0,50,50) = original (0,0,100,100)
        (_answer([25, 0, 75, 50]), REF, "qwen2_5_vl", 1 / 3),  # original (50,0,150,100): 5000 / 15000
        (_answer([0, 0, 50, 50], [150, 50, 200, 100]), REF, "qwen2_5_vl", 0.5),  # mean of 1 and 0
        (_answer([0, 0, 50, 50]), [[0, 0, 100, 100], [300, 100, 400, 200]], "qwen2_5_vl", 1.0),  # best reference
        (_answer([50, 50, 0, 0]), REF, "qwen2_5_vl", 1.0),  # reversed corners are ordered, as serving does
        (_answer([0, 0, 50, 500]), REF, "qwen2_5_vl", 0.5),  # clamped to the image: (0,0,100,200)
        (_answer([0, 0, 250, 500]), REF, "qwen2_vl", 1.0),  # 0-1000 grid: (0,0,100,100) of 400x200
        (_answer([10, 10, 10, 40]), REF, "qwen2_5_vl", 0.0),  # degenerate box is no prediction
        (_answer(), REF, "qwen2_5_vl", 0.0),  # no box where the reviewer marked one
        ("not json", REF, "qwen2_5_vl", 0.0),
        (_answer([0, 0, 50, 50]), [], "qwen2_5_vl", None),  # nothing to ground against: not applicable
    ],
)
def test_localisation_reward(text: str, ref: list[list[int]], family: str, expected: float | None) -> None:
    got = _loc(text, ref, family=family)
    assert got == expected if expected is None else math.isclose(got or 0.0, expected, abs_tol=1e-9)


def test_localisation_reward_is_for_query_one_only() -> None:
    assert _loc(_answer([0, 0, 50, 50]), REF, stage="examine") is None


@pytest.mark.parametrize(
    ("text", "stage", "label", "expected"),
    [
        (EXAMINE_OK, "examine", "ai_generated", 1.0),
        (EXAMINE_OK, "examine", "real", 0.0),
        ('{"explanation":"x","verdict":"Fake"}', "examine", "ai_generated", 1.0),  # serving reads it the same way
        ('{"explanation":"x","verdict":"real"', "examine", "real", 1.0),  # cut off after the verdict: still read
        ("no answer", "examine", "real", 0.0),
        (LOCATE_OK, "locate", "real", None),  # never reward Query 1's verdict (the paper's collapse)
    ],
)
def test_accuracy_reward(text: str, stage: str, label: str, expected: float | None) -> None:
    assert accuracy_reward([None], [text], stage=[stage], label=[label]) == [expected]


@pytest.mark.parametrize(
    ("text", "stage", "reference", "expected"),
    [
        ('{"explanation":"the cat sat on the mat","verdict":"real"}', "examine", "the cat sat on the mat", 1.0),
        ('{"explanation":"Six fingers.","verdict":"real"}', "examine", "six fingers on the hand.", math.exp(-1) * math.sqrt(2 / 3)),
        ('{"explanation":"dog","verdict":"real"}', "examine", "cat", 0.0),
        ("garbage", "examine", "cat", 0.0),
        (EXAMINE_OK, "examine", None, None),
        (EXAMINE_OK, "examine", "", None),
        (LOCATE_OK, "locate", "odd hand", None),
    ],
)  # fmt: skip
def test_explanation_reward(text: str, stage: str, reference: str | None, expected: float | None) -> None:
    got = explanation_reward([None], [text], stage=[stage], reference_explanation=[reference])[0]
    assert got == expected if expected is None else math.isclose(got or 0.0, expected, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),
        # p1 = 2/2, p2 = (1+1)/(1+1), brevity exp(1 - 6/2)
        ("the cat", "the cat sat on the mat", math.exp(-2)),
        # clipped p1 = 1/3, p2 = (0+1)/(2+1), no brevity penalty (3 > 2 tokens)
        ("the the the", "the cat", 1 / 3),
        # p1 = 3/3, p2 = (1+1)/(2+1), brevity exp(1 - 6/3)
        ("Six fingers.", "six fingers on the hand.", math.exp(-1) * math.sqrt(2 / 3)),
        # one token: no bigram, p2 = (0+1)/(0+1); p1 = 1, brevity exp(1 - 2)
        ("cat", "the cat", math.exp(-1)),
        ("dog", "cat", 0.0),
        ("", "cat", 0.0),
        ("cat", "", 0.0),
    ],
)
def test_bleu2_hand_computed(candidate: str, reference: str, expected: float) -> None:
    assert math.isclose(bleu2(candidate, reference), expected, abs_tol=1e-9)


def test_bleu_helpers() -> None:
    assert tokenize("Six fingers, odd!") == ["six", "fingers", ",", "odd", "!"]
    assert clipped_matches(["a", "a", "b"], ["a", "b"], 1) == (2, 3)
    assert clipped_matches(["a", "b", "a", "b"], ["a", "b"], 2) == (1, 3)


def test_every_reward_answers_every_sample_of_a_mixed_batch() -> None:
    columns: dict[str, Any] = {
        "stage": ["locate", "examine"],
        "label": ["ai_generated", "ai_generated"],
        "ref_boxes": [REF, REF],
        "width": [400, 400],
        "height": [200, 200],
        "model_width": [200, 200],
        "model_height": [100, 100],
        "family": ["qwen2_5_vl", "qwen2_5_vl"],
        "reference_explanation": ["The crops show six fingers.", "The crops show six fingers."],
    }
    completions = [_answer([0, 0, 50, 50]), EXAMINE_OK]
    table = {name: fn([None, None], completions, **columns) for name, fn in REWARDS.items()}
    assert table == {
        "format": [1.0, 1.0],
        "localisation": [1.0, None],
        "accuracy": [None, 1.0],
        "explanation": [None, 1.0],
    }

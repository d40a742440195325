"""Parsing of valid, partial and garbage answers."""

from __future__ import annotations

import pytest

from zoomguard.detector.parsing import normalise_verdict, parse_answer

VALID = (
    '{"explanation": "six fingers", "regions": [{"bbox_2d": [10, 20, 110, 220], "finding": "hand"}, '
    '{"bbox_2d": [0, 0, 5, 5], "finding": "logo"}], "verdict": "ai_generated"}'
)


def test_valid_answer_reads_every_field() -> None:
    parsed = parse_answer(VALID, with_regions=True)
    assert parsed.ok and not parsed.repaired
    assert parsed.verdict == "ai_generated"
    assert parsed.explanation == "six fingers"
    assert [r.box for r in parsed.regions] == [(10, 20, 110, 220), (0, 0, 5, 5)]
    assert [r.finding for r in parsed.regions] == ["hand", "logo"]


def test_regions_ignored_for_examine_answers() -> None:
    assert parse_answer(VALID, with_regions=False).regions == ()


@pytest.mark.parametrize(
    ("text", "verdict", "explanation", "n_regions", "repaired"),
    [
        # truncated inside a region: the complete region survives, verdict missing
        (
            '{"explanation": "x", "regions": [{"bbox_2d": [1, 2, 3, 4], "finding": "a"}, {"bbox_2d": [5, 6',
            None,
            "x",
            1,
            True,
        ),
        # truncated inside the explanation string
        ('{"explanation": "the shadow is wro', None, "the shadow is wro", 0, True),
        # truncated after a dangling key
        ('{"explanation": "ok", "verdict"', None, "ok", 0, True),
        # wrapped in prose, with a trailing comma
        ('Answer: {"explanation": "fine", "verdict": "real",} thanks', "real", "fine", 0, True),
        # raw control characters inside strings (weak models emit them under a grammar)
        ('{"explanation": "a\tb\nc\x01", "verdict": "real"}', "real", "a b c", 0, False),
        # alternative keys some models use
        ('{"reasoning": "r", "boxes": [[1, 1, 9, 9]], "label": "fake"}', "ai_generated", "r", 1, False),
    ],
)
def test_partial_answers(text: str, verdict: str | None, explanation: str, n_regions: int, repaired: bool) -> None:
    parsed = parse_answer(text, with_regions=True)
    assert parsed.verdict == verdict
    assert parsed.ok is (verdict is not None)
    assert parsed.explanation == explanation
    assert len(parsed.regions) == n_regions
    assert parsed.repaired is repaired


@pytest.mark.parametrize("text", ["", "no json here", "}{", "[1, 2, 3]", '{"explanation": 5}', "{{{{"])
def test_garbage_is_a_result_not_an_exception(text: str) -> None:
    parsed = parse_answer(text, with_regions=True)
    assert not parsed.ok
    assert parsed.verdict is None
    assert parsed.error


@pytest.mark.parametrize(
    "region",
    [
        '{"bbox_2d": [1, 2, 3], "finding": "short"}',
        '{"bbox_2d": [1, 2, 3, "x"], "finding": "text"}',
        '{"bbox_2d": [1, 2, 3, true], "finding": "bool"}',
        '{"bbox_2d": [1, 2, 3, 1e999], "finding": "inf"}',
        '{"finding": "no box"}',
        '"just a string"',
    ],
)
def test_malformed_regions_are_dropped_and_counted(region: str) -> None:
    text = (
        f'{{"explanation": "", "regions": [{region}, {{"bbox_2d": [1, 1, 8, 8], "finding": "ok"}}], "verdict": "real"}}'
    )
    parsed = parse_answer(text, with_regions=True)
    assert [r.finding for r in parsed.regions] == ["ok"]
    assert parsed.dropped_regions == 1


def test_region_cap() -> None:
    regions = ", ".join(f'{{"bbox_2d": [{i}, {i}, {i + 10}, {i + 10}], "finding": "r{i}"}}' for i in range(9))
    parsed = parse_answer(
        f'{{"explanation": "", "regions": [{regions}], "verdict": "real"}}', with_regions=True, max_regions=3
    )
    assert [r.finding for r in parsed.regions] == ["r0", "r1", "r2"]
    assert parsed.dropped_regions == 6


@pytest.mark.parametrize(
    ("word", "verdict"),
    [
        ("ai_generated", "ai_generated"),
        ("AI-generated", "ai_generated"),
        ("AI generated", "ai_generated"),
        ("Fake", "ai_generated"),
        ("synthetic", "ai_generated"),
        ("REAL", "real"),
        (" authentic ", "real"),
        ("maybe", None),
        ("", None),
        (None, None),
        (1, None),
    ],
)
def test_verdict_spellings(word: object, verdict: str | None) -> None:
    assert normalise_verdict(word) == verdict


@pytest.mark.parametrize(
    "number",
    ["1" * 400, "9" * 5000, "-" + "1" * 400, "1e400"],
    ids=["huge-int", "past-digit-limit", "huge-negative", "float-overflow"],
)
def test_absurd_numbers_from_weak_models_are_dropped_not_crashing(number: str) -> None:
    text = f'{{"explanation": "", "regions": [{{"bbox_2d": [{number}, 1, 2, 3], "finding": "x"}}], "verdict": "real"}}'
    parsed = parse_answer(text, with_regions=True)
    assert parsed.regions == ()
    assert parsed.verdict == "real"  # the rest of the answer survives

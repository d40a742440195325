"""P(ai_generated) from verdict token logprobs, and thresholds."""

from __future__ import annotations

import math

import pytest

from zoomguard.detector.confidence import Thresholds, p_ai_from_logprobs, shift_log_odds
from zoomguard.detector.engines.base import TokenLogprob


def _tokens(pieces: list[str], at: int, top: list[tuple[str, float]]) -> list[TokenLogprob]:
    return [TokenLogprob(p, dict(top).get(p, 0.0), tuple(top) if i == at else ()) for i, p in enumerate(pieces)]


def test_renormalises_over_the_two_labels() -> None:
    pieces = ['{"', "verdict", '":', ' "', "ai", "_generated", '"}']
    tokens = _tokens(pieces, 4, [("ai", math.log(0.6)), ("real", math.log(0.2)), ("xyz", math.log(0.2))])
    assert p_ai_from_logprobs(tokens) == pytest.approx(0.75)


def test_sums_every_token_that_starts_a_label() -> None:
    # grammar-masked alternatives as vLLM reports them: "a"/"ai" start ai_generated, "r"/"re"/"real" start real
    pieces = ['{"verdict":"', "a", "i_generated", '"}']
    top = [
        ("a", math.log(0.3)),
        ("ai", math.log(0.1)),
        ("r", math.log(0.3)),
        ("re", math.log(0.2)),
        ("real", math.log(0.1)),
        ("<|im_end|>", float("-inf")),
    ]
    assert p_ai_from_logprobs(_tokens(pieces, 1, top)) == pytest.approx(0.4)


def test_token_that_includes_the_opening_quote() -> None:
    # the value's first token also carries the quote: alternatives must share that prefix
    pieces = ['{"verdict":', ' "real', '"}']
    top = [
        (' "real', math.log(0.5)),
        (' "ai', math.log(0.25)),
        (' "', math.log(0.25)),
        ("real", math.log(0.9)),
    ]
    assert p_ai_from_logprobs(_tokens(pieces, 1, top)) == pytest.approx(1 / 3)


def test_uses_the_last_verdict_in_the_answer() -> None:
    pieces = ['{"verdict": "', "real", '", "x": {"verdict": "', "ai", '"}}']
    tokens = list(_tokens(pieces, 3, [("ai", math.log(0.9)), ("real", math.log(0.1))]))
    assert p_ai_from_logprobs(tokens) == pytest.approx(0.9)


def test_chosen_token_counts_even_if_missing_from_top() -> None:
    tokens = [
        TokenLogprob('{"verdict": "', 0.0),
        TokenLogprob("real", math.log(0.5), (("ai", math.log(0.25)),)),
    ]
    assert p_ai_from_logprobs(tokens) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        [TokenLogprob('{"explanation": "x"}', 0.0)],
        [TokenLogprob('{"verdict": "', 0.0)],
        [TokenLogprob('{"verdict": "', 0.0), TokenLogprob("zz", 0.0, (("zz", 0.0),))],
    ],
)
def test_none_when_no_verdict_probability(tokens: list[TokenLogprob]) -> None:
    assert p_ai_from_logprobs(tokens) is None


@pytest.mark.parametrize(
    ("p_ai", "decision"),
    [
        (0.95, "ai_generated"),
        (0.8, "ai_generated"),
        (0.79, "uncertain"),
        (0.5, "uncertain"),
        (0.21, "uncertain"),
        (0.2, "real"),
        (0.0, "real"),
        (None, "uncertain"),
    ],
)
def test_thresholds(p_ai: float | None, decision: str) -> None:
    assert Thresholds(ai_at=0.8, real_at=0.2).decide(p_ai) == decision


@pytest.mark.parametrize(("ai_at", "real_at"), [(0.5, 0.5), (0.2, 0.8), (1.1, 0.1), (0.9, -0.1)])
def test_invalid_thresholds(ai_at: float, real_at: float) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        Thresholds(ai_at=ai_at, real_at=real_at)


@pytest.mark.parametrize(
    ("p", "shift", "expected"),
    [
        (0.5, -1.0, 1 / (1 + math.e)),
        (0.85, 0.0, 0.85),
        (0.85, -1.0, 0.85 / (0.85 + 0.15 * math.e)),
        (0.0, -1.0, 0.0),
        (1.0, -1.0, 1.0),  # certainty stays certain
        (1e-300, -800.0, 0.0),  # no overflow far out in the tails
        (None, -1.0, None),
    ],
)
def test_a_prior_moves_the_log_odds(p: float | None, shift: float, expected: float | None) -> None:
    got = shift_log_odds(p, shift)
    assert got == (None if expected is None else pytest.approx(expected, rel=1e-9, abs=1e-12))

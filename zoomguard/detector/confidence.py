"""P(ai_generated) from the verdict token's log-probabilities, and the decision it leads to.

The paper gives no confidence score. Ours: at the token where the verdict's value starts, the engine
reports the log-probabilities of the alternatives (under the JSON grammar, only tokens that can begin
"real" or "ai_generated" have finite values). The probability mass of the tokens that begin each label,
renormalised over the two, is P(ai_generated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from zoomguard.detector.engines.base import TokenLogprob

Decision = Literal["ai_generated", "real", "uncertain"]

_VERDICT_VALUE = re.compile(r'"verdict"\s*:\s*"')
_LABELS = ("ai_generated", "real")


@dataclass(frozen=True)
class Thresholds:
    """p_ai >= ai_at: ai_generated; p_ai <= real_at: real; in between: uncertain (goes to review)."""

    ai_at: float = 0.8
    real_at: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_at < self.ai_at <= 1.0:
            raise ValueError(
                f"thresholds need 0 <= real_at < ai_at <= 1, got real_at={self.real_at} ai_at={self.ai_at}"
            )

    def decide(self, p_ai: float | None) -> Decision:
        if p_ai is None:
            return "uncertain"
        if p_ai >= self.ai_at:
            return "ai_generated"
        if p_ai <= self.real_at:
            return "real"
        return "uncertain"


def p_ai_from_logprobs(tokens: Sequence[TokenLogprob]) -> float | None:
    """P(ai_generated) at the last `"verdict": "` value in the generated tokens; None if not found."""
    if not tokens:
        return None
    texts = [t.token for t in tokens]
    joined = "".join(texts)
    matches = list(_VERDICT_VALUE.finditer(joined))
    if not matches:
        return None
    value_start = matches[-1].end()
    index, token_start = _token_at(texts, value_start)
    if index is None:
        return None
    fixed_prefix = joined[token_start:value_start]
    token = tokens[index]
    alternatives = dict(token.top)
    alternatives.setdefault(token.token, token.logprob)
    mass = {label: 0.0 for label in _LABELS}
    for text, logprob in alternatives.items():
        label = _label_of(text, fixed_prefix)
        if label is not None and math.isfinite(logprob):
            mass[label] += math.exp(logprob)
    total = mass["ai_generated"] + mass["real"]
    if total <= 0.0:
        return None
    return mass["ai_generated"] / total


def _token_at(texts: Sequence[str], offset: int) -> tuple[int | None, int]:
    """The index of the token covering character `offset`, and where that token starts."""
    position = 0
    for index, text in enumerate(texts):
        end = position + len(text)
        if position <= offset < end:
            return index, position
        position = end
    return None, position


def _label_of(token_text: str, fixed_prefix: str) -> str | None:
    """Which label a candidate token starts, given the characters it must share before the value."""
    if not token_text.startswith(fixed_prefix):
        return None
    rest = token_text[len(fixed_prefix) :]
    if not rest:
        return None
    for label in _LABELS:
        if label.startswith(rest) or rest.startswith(label):
            return label
    return None


def shift_log_odds(p: float | None, shift: float) -> float | None:
    """P(ai) with its log-odds moved by `shift` (a prior from evidence: < 0 makes AI less likely); 0 and 1 stay."""
    if p is None or shift == 0.0 or p in (0.0, 1.0):
        return p
    odds = math.log(p / (1.0 - p)) + shift
    return 1.0 / (1.0 + math.exp(-odds)) if odds >= 0 else math.exp(odds) / (1.0 + math.exp(odds))

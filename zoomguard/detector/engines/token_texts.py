"""Texts for an answer that the engine returned as token ids only.

Why: when vLLM detokenizes, its front end decodes every generated token and every reported alternative,
one position at a time, as they arrive. On a small model that costs more CPU than the model itself
(benchmarks/RESULTS.md). Here the answer is decoded once, and per-token texts are made only for the
tokens from the last `marker` on, where the verdict's probability is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from zoomguard.detector.engines.base import TokenLogprob

# Tokens decoded one by one at the end of an answer, doubled until the marker is inside.
FIRST_WINDOW = 16
# Single-token texts kept per tokenizer: the tails of answers keep meeting the same ids (JSON punctuation, the
# verdict words and their alternatives), and the memory stays bounded whatever the vocabulary.
PIECES_KEPT = 32768


class Decoder(Protocol):
    """The part of a Hugging Face tokenizer this needs."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str: ...


class FlatAlternatives(Protocol):
    """vLLM's FlatLogprobs: the alternatives of position i are entries start_indices[i]:end_indices[i]."""

    start_indices: list[int]
    end_indices: list[int]
    token_ids: list[int]
    logprobs: list[float]


class TokenPieces:
    """The text of one token, memoised. Why: every answer's tail decodes its tokens and their alternatives
    one by one, and a call into the Hugging Face tokenizer costs more than a dictionary lookup by far; it
    was a tenth of the front end's CPU in the engine ceiling (benchmarks/RESULTS.md)."""

    def __init__(self, tokenizer: Decoder, kept: int = PIECES_KEPT):
        self.tokenizer = tokenizer
        self._piece = lru_cache(maxsize=kept)(self._decode)

    def __call__(self, token_id: int, skip_special_tokens: bool = False) -> str:
        return self._piece(token_id, skip_special_tokens)

    def _decode(self, token_id: int, skip_special_tokens: bool) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=skip_special_tokens)


def answer_text(tokenizer: Decoder, token_ids: Sequence[int]) -> str:
    return tokenizer.decode(list(token_ids), skip_special_tokens=True)


def scored_tokens(
    pieces: TokenPieces,
    token_ids: Sequence[int],
    alternatives: FlatAlternatives,
    text: str,
    marker: str | None,
) -> tuple[TokenLogprob, ...]:
    """The answer as one text token for everything before the last `marker`, then one TokenLogprob per
    token with its alternatives. Without a marker (or when `text` lacks it) every token is scored."""
    ids = list(token_ids)
    positions = min(len(ids), len(alternatives.start_indices))
    start, head = _window(pieces.tokenizer, ids[:positions], text, marker)
    tokens: list[TokenLogprob] = [TokenLogprob(head, 0.0)] if start > 0 else []
    for position in range(start, positions):
        first, end = alternatives.start_indices[position], alternatives.end_indices[position]
        chosen = ids[position]
        top = tuple((pieces(alternatives.token_ids[i]), alternatives.logprobs[i]) for i in range(first, end))
        chosen_logprob = next(
            (alternatives.logprobs[i] for i in range(first, end) if alternatives.token_ids[i] == chosen), float("-inf")
        )
        tokens.append(TokenLogprob(pieces(chosen, skip_special_tokens=True), chosen_logprob, top))
    return tuple(tokens)


def _window(tokenizer: Decoder, ids: list[int], text: str, marker: str | None) -> tuple[int, str]:
    """The first token to score, early enough that the tokens from it on hold the whole last `marker`, and
    the text of the tokens before it (decoded once, to find the start)."""
    cut = text.rfind(marker) if marker else -1
    if cut < 0:
        return 0, ""
    width = FIRST_WINDOW
    while width < len(ids):
        start = len(ids) - width
        head = tokenizer.decode(ids[:start], skip_special_tokens=True)
        if len(head) < cut:
            return start, head
        width *= 2
    return 0, ""

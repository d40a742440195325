"""Decoding an answer returned as token ids: one text for the answer, per-token texts from the verdict on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from zoomguard.detector.confidence import p_ai_from_logprobs
from zoomguard.detector.engines import token_texts
from zoomguard.detector.engines.token_texts import TokenPieces, answer_text, scored_tokens

EOS = "<eos>"


class PieceTokenizer:
    """Token i is PIECES[i]; counts decode calls so the windowing can be checked."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces
        self.calls = 0

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        self.calls += 1
        return "".join(p for p in (self.pieces[i] for i in token_ids) if not (skip_special_tokens and p == EOS))


@dataclass
class Flat:
    start_indices: list[int] = field(default_factory=list)
    end_indices: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    def add(self, alternatives: list[tuple[int, float]]) -> None:
        self.start_indices.append(len(self.token_ids))
        for token_id, logprob in alternatives:
            self.token_ids.append(token_id)
            self.logprobs.append(logprob)
        self.end_indices.append(len(self.token_ids))


def _answer(filler: int) -> tuple[PieceTokenizer, list[int], Flat]:
    """`{"explanation":"x x x ...","verdict":"ai_generated"}<eos>` with P(ai) 0.7 at the verdict."""
    pieces = ['{"explanation":"', "x ", '","verdict":"', "ai", "_generated", "real", '"}', EOS]
    index = {p: i for i, p in enumerate(pieces)}
    ids = [index['{"explanation":"'], *[index["x "]] * filler, index['","verdict":"'], index["ai"]]
    ids += [index["_generated"], index['"}'], index[EOS]]
    flat = Flat()
    for token_id in ids:
        if token_id == index["ai"]:
            flat.add([(index["ai"], math.log(0.7)), (index["real"], math.log(0.3))])
        else:
            flat.add([(token_id, -0.01), (index["x "], -5.0)])
    return PieceTokenizer(pieces), ids, flat


def test_the_answer_text_skips_special_tokens() -> None:
    tokenizer, ids, _ = _answer(3)
    assert answer_text(tokenizer, ids) == '{"explanation":"x x x ","verdict":"ai_generated"}'


@pytest.mark.parametrize("filler", [0, 5, 40, 300])
def test_only_the_tail_from_the_marker_is_scored(filler: int) -> None:
    tokenizer, ids, flat = _answer(filler)
    text = answer_text(tokenizer, ids)
    tokens = scored_tokens(TokenPieces(tokenizer), ids, flat, text, '"verdict":"')
    assert "".join(t.token for t in tokens) == text
    assert p_ai_from_logprobs(tokens) == pytest.approx(0.7)
    assert len(tokens) <= token_texts.FIRST_WINDOW + 1  # one text token for the head, then the tail
    if len(ids) > token_texts.FIRST_WINDOW:
        assert tokens[0].top == () and tokens[0].logprob == 0.0
        # decode calls depend on the window (a token and its alternatives each), not on the answer's length
        assert tokenizer.calls <= 3 + 3 * token_texts.FIRST_WINDOW


def test_every_token_is_scored_without_a_marker() -> None:
    tokenizer, ids, flat = _answer(30)
    text = answer_text(tokenizer, ids)
    tokens = scored_tokens(TokenPieces(tokenizer), ids, flat, text, None)
    assert len(tokens) == len(ids)
    assert [t.logprob for t in tokens[:2]] == [-0.01, -0.01]
    assert tokens[1].top == (("x ", -0.01), ("x ", -5.0))


def test_an_answer_cut_before_the_verdict_has_no_probability() -> None:
    tokenizer, ids, flat = _answer(30)
    cut = ids[:20]
    tokens = scored_tokens(TokenPieces(tokenizer), cut, flat, answer_text(tokenizer, cut), '"verdict":"')
    assert len(tokens) == 20
    assert p_ai_from_logprobs(tokens) is None


def test_a_chosen_token_missing_from_its_alternatives_scores_minus_infinity() -> None:
    tokenizer, ids, _ = _answer(0)
    flat = Flat()
    for _ in ids:
        flat.add([(1, -0.5)])  # only "x " reported
    tokens = scored_tokens(TokenPieces(tokenizer), ids, flat, answer_text(tokenizer, ids), None)
    assert tokens[0].logprob == float("-inf")


def test_single_token_texts_are_decoded_once_for_all_answers() -> None:
    tokenizer, ids, flat = _answer(40)
    pieces = TokenPieces(tokenizer)
    text = answer_text(tokenizer, ids)
    first = scored_tokens(pieces, ids, flat, text, '"verdict":"')
    calls = tokenizer.calls
    again = scored_tokens(pieces, ids, flat, text, '"verdict":"')
    assert again == first
    assert tokenizer.calls - calls <= 2  # only the head, found by the window; every piece came from memory


def test_a_special_token_keeps_both_of_its_texts() -> None:
    tokenizer, ids, flat = _answer(0)
    tokens = scored_tokens(TokenPieces(tokenizer), ids, flat, answer_text(tokenizer, ids), None)
    assert tokens[-1].token == ""  # the chosen end-of-answer token is not part of the text
    assert tokens[-1].top[0][0] == EOS  # but it is named among the alternatives


def test_the_memory_of_pieces_is_bounded() -> None:
    tokenizer = PieceTokenizer(["a", "b", "c"])
    pieces = TokenPieces(tokenizer, kept=2)
    assert [pieces(0), pieces(1), pieces(0)] == ["a", "b", "a"]
    assert tokenizer.calls == 2
    pieces(2)  # evicts the least recently used piece (1)
    pieces(1)
    assert tokenizer.calls == 4

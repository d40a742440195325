"""Query 2's prompt as token ids continuing Query 1's generated answer."""

from __future__ import annotations

from collections.abc import Sequence

from zoomguard.detector.engines.base import Turn
from zoomguard.detector.engines.continuation import continued_prompt_ids

END = 999  # the end-of-turn id


def render(turns: Sequence[Turn]) -> str:
    """A Qwen-like template: <|role|>text<|end|> per turn, then the assistant's generation prompt."""
    return "".join(f"<{t.role}>{t.text}<end>" for t in turns) + "<assistant>"


def encode(text: str, add_special_tokens: bool) -> list[int]:
    return ([1] if add_special_tokens else []) + [ord(c) for c in text]


QUESTION = Turn("user", "where?")
FOLLOW_UP = Turn("user", "why?")


def test_the_generated_ids_replace_the_answer_text() -> None:
    generated = (500, 501, 502, END)  # a split the tokenizer would not make, ending with the end of turn
    turns = [QUESTION, Turn("assistant", '{"a":1}', token_ids=generated), FOLLOW_UP]
    ids = continued_prompt_ids(turns, render, encode, {END})
    head, tail = encode("<user>where?<end><assistant>", True), encode("<end><user>why?<end><assistant>", False)
    assert ids == [*head, 500, 501, 502, *tail]


def test_ids_without_an_end_of_turn_are_kept_whole() -> None:
    turns = [QUESTION, Turn("assistant", "x", token_ids=(7, 8)), FOLLOW_UP]
    ids = continued_prompt_ids(turns, render, encode, {END})
    assert ids is not None and ids[len(encode("<user>where?<end><assistant>", True)) :][:3] == [7, 8, ord("<")]


def test_text_is_used_without_generated_ids() -> None:
    assert continued_prompt_ids([QUESTION], render, encode, {END}) is None
    assert continued_prompt_ids([QUESTION, Turn("assistant", "x"), FOLLOW_UP], render, encode, {END}) is None


def test_text_is_used_when_the_template_rewrites_the_answer() -> None:
    def stripping(turns: Sequence[Turn]) -> str:  # e.g. a template that trims assistant content
        return "".join(f"<{t.role}>{t.text.strip()}<end>" for t in turns) + "<assistant>"

    turns = [QUESTION, Turn("assistant", " x ", token_ids=(7, END)), FOLLOW_UP]
    assert continued_prompt_ids(turns, stripping, encode, {END}) is None

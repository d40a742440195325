"""Query 2's prompt as token ids that continue Query 1's exactly.

Why: Query 2 repeats Query 1's conversation and answer. Sent as text, the answer is tokenized again, and a
constrained model's tokens are often not the tokenizer's own split of the same text, so vLLM's prefix cache
stops matching where they first differ, and most of the answer is computed again. Built from the ids the
model generated, Query 2's prompt shares Query 1's prompt and answer token for token.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from zoomguard.detector.engines.base import Turn

Render = Callable[[Sequence[Turn]], str]  # the chat template, ending with the assistant's generation prompt
Encode = Callable[[str, bool], list[int]]  # (text, add_special_tokens) -> ids


def continued_prompt_ids(
    turns: Sequence[Turn], render: Render, encode: Encode, end_ids: Collection[int]
) -> list[int] | None:
    """The prompt's token ids with the last assistant turn's generated ids in place of its text; None when
    no assistant turn carries ids or the template does not render the answer verbatim (use the text)."""
    index = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "assistant"), None)
    if index is None or not turns[index].token_ids:
        return None
    before = render(turns[:index])
    whole = render(turns)
    answered = before + turns[index].text
    if not whole.startswith(answered):
        return None
    generated = list(turns[index].token_ids)
    if generated[-1] in end_ids:  # the template writes its own end-of-turn after the answer
        generated.pop()
    return encode(before, True) + generated + encode(whole[len(answered) :], False)

"""A scripted engine for unit tests of pure flow logic: answers come from a function, no model runs."""

from __future__ import annotations

import math
from collections.abc import Callable

from zoomguard.detector.engines.base import Generation, GenerationRequest, TokenLogprob

Script = Callable[[GenerationRequest], str | tuple[str, float]]


class ScriptedEngine:
    """`script(request)` returns the answer text (no logprobs, like a server that gives none), or
    (text, p_ai) to put logprobs on the verdict token."""

    def __init__(self, script: Script, name: str = "scripted"):
        self._script = script
        self._name = name
        self.requests: list[GenerationRequest] = []

    @property
    def model_name(self) -> str:
        return self._name

    async def start(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        answer = self._script(request)
        text, p_ai = answer if isinstance(answer, tuple) else (answer, None)
        prompt_tokens = 100 * sum(1 + len(turn.images) for turn in request.turns)
        return Generation(
            text=text,
            tokens=_tokens(text, p_ai),
            prompt_tokens=prompt_tokens,
            cached_prompt_tokens=100 if len(request.turns) > 1 else 0,
            finish_reason="stop",
            completion_tokens=len(text),
        )

    def queue_depth(self) -> int:
        return 0

    async def close(self) -> None:
        return None


def _tokens(text: str, p_ai: float | None) -> tuple[TokenLogprob, ...]:
    """One token per character; where a verdict value starts, alternatives carry p_ai."""
    if p_ai is None:
        return ()
    tokens = []
    marker = '"verdict": "'
    verdict_at = text.find(marker) + len(marker) if marker in text else -1
    for index, char in enumerate(text):
        if index == verdict_at:
            top = ((("a", _log(p_ai))), ("r", _log(1.0 - p_ai)))
            tokens.append(TokenLogprob(char, dict(top)[char] if char in "ar" else 0.0, top))
        else:
            tokens.append(TokenLogprob(char, 0.0))
    return tuple(tokens)


def _log(p: float) -> float:
    return math.log(p) if p > 0 else float("-inf")

"""An engine wrapper that watches Query 1's prompt cache: proof that a stage ran cold.

Why: vLLM's prefix cache (and its encoder cache) serve what an earlier request computed for the same image. A
stage measured on images an earlier stage saw would be served from that cache and look faster than serving
really is. Every Query 1 prompt starts with the same text (system turn, user turn opening) and then the image,
so on an image the engine has not seen the cached prompt is exactly that shared preamble; more means the image
itself was served from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoomguard.detector.engines.base import Engine, Generation, GenerationRequest

_LOCATE = ":locate"


@dataclass
class StageCache:
    """Query 1 requests of one stage and how many of them found more than the preamble in the cache."""

    requests: int = 0
    hits: int = 0
    cached_tokens: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"locate_requests": self.requests, "locate_cache_hits": self.hits}


class CacheProbe:
    """Delegates to `engine`; records Query 1's cached prompt tokens under the stage named by `stage(...)`.

    The preamble is learned on images nobody sent before (`learn_preamble`): the smallest cached count there.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._stage: StageCache | None = None
        self._learning: list[int] | None = None
        self.preamble_tokens: int | None = None

    def __getattr__(self, name: str) -> Any:  # start, close, queue_depth, prefix_block_size, load_adapter ...
        return getattr(self._engine, name)

    def learn_preamble(self) -> None:
        self._learning = []

    def stop_learning(self) -> int:
        """The preamble: what every cold Query 1 finds cached (None seen: 0, the most conservative)."""
        seen, self._learning = self._learning or [], None
        self.preamble_tokens = min(seen, default=0)
        return self.preamble_tokens

    def stage(self) -> StageCache:
        """Start recording a new stage; the returned record fills as its requests finish."""
        self._stage = StageCache()
        return self._stage

    def end_stage(self) -> None:
        self._stage = None

    @property
    def model_name(self) -> str:
        return self._engine.model_name

    async def generate(self, request: GenerationRequest) -> Generation:
        generation = await self._engine.generate(request)
        if request.request_id.endswith(_LOCATE):
            cached = generation.cached_prompt_tokens or 0
            if self._learning is not None:
                self._learning.append(cached)
            stage = self._stage
            if stage is not None:
                stage.requests += 1
                stage.cached_tokens.append(cached)
                if self.preamble_tokens is not None and cached > self.preamble_tokens:
                    stage.hits += 1
        return generation

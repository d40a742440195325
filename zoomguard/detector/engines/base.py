"""The narrow engine interface the detector talks to.

Why: the ZoomIn flow is the same whether the model runs in this process (vLLM's async engine), behind
vLLM's OpenAI-compatible servers, or is scripted in a unit test. Everything engine-specific stays behind
`Engine.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from PIL import Image

from zoomguard.errors import ZoomguardError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One chat turn; images come before the text, as Qwen-VL prompts put them.

    An assistant turn may carry the token ids the engine generated for `text`: an engine that takes token
    prompts continues from exactly those (prefix cache); others send the text."""

    role: Role
    text: str
    images: tuple[Image.Image, ...] = ()
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    """A structured-output chat request: the answer must follow `json_schema`."""

    request_id: str
    turns: tuple[Turn, ...]
    json_schema: dict[str, Any]
    max_tokens: int
    top_logprobs: int = 10
    temperature: float = 0.0
    adapter: str | None = None  # the name of a LoRA adapter loaded with `load_adapter`; None = base weights
    # Optional: logprobs are only read from the last `score_marker` on (the verdict). An engine may then
    # report the answer before it as one text token, without alternatives.
    score_marker: str | None = None
    # Requests with the same affinity (the two queries of one image) should run where the first one ran:
    # with several servers, that is where the prefix cache holds Query 1's image tokens.
    affinity: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token and the log-probabilities of the alternatives the engine reported for it."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: tuple[TokenLogprob, ...]
    prompt_tokens: int
    cached_prompt_tokens: int | None
    finish_reason: str | None
    completion_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    token_ids: tuple[int, ...] = ()  # the generated ids, where the engine has them (see Turn.token_ids)


class Engine(Protocol):
    """What the detector needs from a model runtime."""

    @property
    def model_name(self) -> str: ...

    async def start(self) -> None:
        """Load or connect; raises EngineUnavailableError when that is not possible now."""

    async def generate(self, request: GenerationRequest) -> Generation:
        """Run one request; raises EngineUnavailableError on transient failure."""

    def queue_depth(self) -> int:
        """Requests accepted and not finished (for metrics and autoscaling)."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter (peft directory) the engine serves under `name`, one name per model version."""

    name: str
    path: str


class AdapterLoadError(ZoomguardError):
    """The engine cannot serve this adapter (missing files, wrong base model, rank, or no LoRA support)."""

    kind = "adapter_load"


@runtime_checkable
class AdapterEngine(Protocol):
    """Engines that can serve LoRA adapters next to the base weights, switched per request."""

    async def load_adapter(self, adapter: Adapter) -> None:
        """Make `adapter` servable; requests then name it. Raises AdapterLoadError and keeps serving
        what it served before when that is not possible."""

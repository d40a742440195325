"""vLLM's async engine inside this process: one GPU pod runs the worker and the model together.

Many `generate` calls in flight at once are batched by vLLM's scheduler; nothing here serialises them.
LoRA adapters: each request names the adapter it runs on (a vLLM LoRARequest per request), so switching
versions never touches requests already running. An engine started without LoRA support gets it by a
clean restart: new requests wait, running ones finish, the engine is rebuilt with LoRA on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Sequence
from typing import Any

import structlog

from zoomguard.detector.engines.adapters import check_adapter
from zoomguard.detector.engines.base import (
    Adapter,
    AdapterLoadError,
    Generation,
    GenerationRequest,
    Turn,
)
from zoomguard.detector.engines.continuation import continued_prompt_ids
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.engines.token_texts import TokenPieces, answer_text, scored_tokens
from zoomguard.errors import BadInputError, EngineUnavailableError
from zoomguard.process_guard import watch_parent

log = structlog.get_logger("zoomguard.engine")

DEFAULT_CPU_KVCACHE_GIB = 2


class ModelInputError(BadInputError):
    """The engine refused this input itself (e.g. the prompt does not fit the context)."""

    kind = "model_input"


class VllmInProcessEngine:
    def __init__(self, settings: EngineSettings, images_per_prompt: int, adapter: Adapter | None = None):
        self._settings = settings
        self._images_per_prompt = images_per_prompt
        self._llm: Any = None
        self._template_owner: Any = None
        self._tokenizer: Any = None
        self._pieces: TokenPieces | None = None
        self._end_ids: frozenset[int] = frozenset()
        self._startup_adapter = adapter
        self._lora_enabled = settings.enable_lora or adapter is not None
        self._adapters: dict[str, Any] = {}  # adapter name -> vLLM LoRARequest
        self._lora_ids = itertools.count(1)
        self._open = asyncio.Event()  # cleared while the engine restarts: new requests wait
        self._open.set()
        self._running = 0  # generate() calls inside the engine
        self._idle = asyncio.Event()
        self._idle.set()
        self._restart_lock = asyncio.Lock()
        self.restarts = 0

    @property
    def model_name(self) -> str:
        return self._settings.model

    @property
    def lora_enabled(self) -> bool:
        return self._lora_enabled

    @property
    def adapters(self) -> dict[str, str]:
        """Loaded adapters: name -> path."""
        return {name: request.lora_path for name, request in self._adapters.items()}

    def engine_args(self) -> Any:
        """The AsyncEngineArgs this engine is built from (kept separate so it can be inspected and tested)."""
        from vllm.engine.arg_utils import AsyncEngineArgs

        s = self._settings
        kwargs: dict[str, Any] = {
            "model": s.model,
            "dtype": s.dtype,
            "max_model_len": s.max_model_len,
            "gpu_memory_utilization": s.gpu_memory_utilization,
            "tensor_parallel_size": s.tensor_parallel_size,
            "max_num_seqs": s.max_num_seqs,
            "enforce_eager": s.enforce_eager,
            "enable_prefix_caching": s.enable_prefix_caching,
            "load_format": s.load_format,
            "seed": s.seed,
            "limit_mm_per_prompt": {"image": self._images_per_prompt},
            "mm_processor_cache_gb": s.mm_processor_cache_gb,
            "structured_outputs_config": {
                "backend": s.structured_outputs_backend,
                "disable_any_whitespace": True,
            },
        }
        if self._lora_enabled:
            kwargs.update(enable_lora=True, max_lora_rank=s.max_lora_rank, max_loras=s.max_loras)
        kwargs.update(s.engine_args)
        return AsyncEngineArgs(**kwargs)

    async def start(self) -> None:
        if self._llm is not None:
            return
        await self._start_llm()
        if self._startup_adapter is not None:
            await self.load_adapter(self._startup_adapter)

    async def _start_llm(self) -> None:
        _size_cpu_kv_cache(self._settings.cpu_kvcache_gib)
        # vLLM calls this as a plugin too; called here as well, forked EngineCore/workers die with this process
        # even where VLLM_PLUGINS leaves the plugin out or the entry point is not installed.
        watch_parent()
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            self._llm = AsyncLLM.from_engine_args(self.engine_args())
        except Exception as exc:  # a failed load is an availability problem, reported with its cause
            raise EngineUnavailableError(f"vLLM engine failed to start: {exc}") from exc
        self._tokenizer = self._llm.get_tokenizer()
        self._pieces = TokenPieces(self._tokenizer)
        self._end_ids = _end_of_turn_ids(self._tokenizer, self._settings.model)
        self._template_owner = _template_owner(self._tokenizer, self._settings.model)

    async def load_adapter(self, adapter: Adapter) -> None:
        """Load `adapter` for the requests that name it. Running requests are untouched. When this engine was
        started without LoRA support, it is restarted with it (clean: no request is lost or cut)."""
        known = self._adapters.get(adapter.name)
        if known is not None and known.lora_path == adapter.path:
            return
        if self._llm is None:
            raise EngineUnavailableError("engine not started")
        check_adapter(adapter.path, self._settings.max_lora_rank)
        if not self._lora_enabled:
            log.error(
                "engine cannot load LoRA adapters: it was started without LoRA (engine.enable_lora=false); "
                "restarting it with LoRA enabled",
                adapter=adapter.name,
            )
            await self._restart_with_lora()
        from vllm.lora.request import LoRARequest

        request = LoRARequest(adapter.name, next(self._lora_ids), adapter.path)
        try:
            await self._llm.add_lora(request)
        except Exception as exc:  # vLLM reports load failures as plain exceptions; the engine keeps serving
            raise AdapterLoadError(f"vLLM could not load adapter {adapter.name} from {adapter.path}: {exc}") from None
        self._adapters[adapter.name] = request  # one assignment: requests see the adapter whole or not at all
        log.info("adapter loaded", adapter=adapter.name, path=adapter.path)

    async def _restart_with_lora(self) -> None:
        """Close the gate, let running requests finish, rebuild the engine with LoRA on; if that fails,
        bring the previous engine back and refuse the adapter."""
        async with self._restart_lock:
            if self._lora_enabled:
                return
            self._open.clear()
            try:
                await self._idle.wait()
                await self._shutdown_llm()
                self._lora_enabled = True
                try:
                    await self._start_llm()
                except EngineUnavailableError as exc:
                    self._lora_enabled = False
                    log.error("engine restart with LoRA failed; restarting it as it was", error=str(exc))
                    await self._start_llm()
                    raise AdapterLoadError(
                        f"this model or vLLM build cannot serve LoRA adapters ({exc}); kept the current model"
                    ) from None
                self.restarts += 1
                log.warning("engine restarted with LoRA enabled", restarts=self.restarts)
            finally:
                self._open.set()

    async def generate(self, request: GenerationRequest) -> Generation:
        await self._open.wait()
        if self._llm is None:
            raise EngineUnavailableError("engine not started")
        self._running += 1
        self._idle.clear()
        try:
            return await self._generate(request)
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _generate(self, request: GenerationRequest) -> Generation:
        lora = self._lora_request(request.adapter)
        images = [image for turn in request.turns for image in turn.images]
        prompt = self._prompt(request.turns)
        final = await self._run(request.request_id, prompt, images, self._params(request), lora)
        completion = final.outputs[0]
        text = answer_text(self._tokenizer, completion.token_ids)
        tokens = (
            scored_tokens(self._pieces, completion.token_ids, completion.logprobs, text, request.score_marker)
            if completion.logprobs and self._pieces is not None
            else ()
        )
        return Generation(
            text=text,
            tokens=tokens,
            prompt_tokens=len(final.prompt_token_ids or ()),
            cached_prompt_tokens=final.num_cached_tokens,
            finish_reason=completion.finish_reason,
            completion_tokens=len(completion.token_ids),
            token_ids=tuple(completion.token_ids),
        )

    def _prompt(self, turns: tuple[Turn, ...]) -> dict[str, Any]:
        """vLLM's input without the images: token ids when an assistant turn carries the ids it was generated
        as (continuation: Query 2 shares Query 1's cached prompt and answer), else the templated text."""
        ids = continued_prompt_ids(turns, self._render, self._encode, self._end_ids)
        return {"prompt_token_ids": ids} if ids is not None else {"prompt": self._render(turns)}

    def _render(self, turns: Sequence[Turn]) -> str:
        rendered: str = self._template_owner.apply_chat_template(
            _chat_messages(tuple(turns)), tokenize=False, add_generation_prompt=True
        )
        return rendered

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def _params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        return SamplingParams(
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            logprobs=request.top_logprobs or None,
            flat_logprobs=True,  # a few flat lists instead of a dict per token: much less Python work and GC
            detokenize=False,  # decoded once at the end (token_texts): vLLM would decode every alternative too
            output_kind=RequestOutputKind.FINAL_ONLY,  # no output object per step: only the answer is read
            structured_outputs=StructuredOutputsParams(json=request.json_schema),
        )

    def _lora_request(self, adapter: str | None) -> Any:
        if adapter is None:
            return None
        request = self._adapters.get(adapter)
        if request is None:  # the detector only names adapters it loaded: this is a bug, not bad input
            raise RuntimeError(f"adapter {adapter!r} was never loaded into this engine")
        return request

    async def _run(
        self, request_id: str, prompt: dict[str, Any], images: list[Any], params: Any, lora: Any = None
    ) -> Any:
        from vllm.v1.engine.exceptions import EngineDeadError

        assert self._llm is not None
        inputs: dict[str, Any] = dict(prompt)
        if images:
            inputs["multi_modal_data"] = {"image": images}
        final = None
        try:
            async for output in self._llm.generate(inputs, params, request_id, lora_request=lora):
                final = output
        except EngineDeadError as exc:
            raise EngineUnavailableError(f"vLLM engine died: {exc}") from exc
        except ValueError as exc:  # vLLM's input validation: this input can never run on this engine
            raise ModelInputError(str(exc)) from exc
        if final is None or not final.outputs:
            raise EngineUnavailableError("vLLM returned no output")
        return final

    @property
    def prefix_block_size(self) -> int:
        """Tokens per KV-cache block: prefix caching reuses whole blocks only (the engine must be started)."""
        return int(self._llm.vllm_config.cache_config.block_size)

    def queue_depth(self) -> int:
        return int(self._llm.get_num_unfinished_requests()) if self._llm is not None else 0

    async def close(self) -> None:
        await self._shutdown_llm()

    async def _shutdown_llm(self) -> None:
        if self._llm is not None:
            llm, self._llm = self._llm, None
            llm.shutdown()


def _size_cpu_kv_cache(gib: int | None) -> None:
    """On CPU builds, size the KV cache explicitly: vLLM's default reserves 90% of RAM and refuses to
    start when other processes hold some of it. The variable must be set before the engine spawns."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(gib or DEFAULT_CPU_KVCACHE_GIB))


def _template_owner(tokenizer: Any, model: str) -> Any:
    """The tokenizer when it carries the chat template, else the model's processor (VL checkpoints keep it there)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model)


def _end_of_turn_ids(tokenizer: Any, model: str) -> frozenset[int]:
    """The ids that end a generated answer: the tokenizer's EOS and the generation config's (for chat models
    the end-of-turn token, which the template writes itself after an assistant turn)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    try:
        from transformers import GenerationConfig

        configured = GenerationConfig.from_pretrained(model).eos_token_id
    except (OSError, ValueError):  # no generation_config.json: the tokenizer's EOS is all there is
        configured = None
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return frozenset(ids)


def _chat_messages(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == "assistant" or not turn.images:
            messages.append({"role": turn.role, "content": turn.text})
            continue
        content: list[dict[str, Any]] = [{"type": "image"} for _ in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": turn.role, "content": content})
    return messages

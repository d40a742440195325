"""vLLM's OpenAI-compatible servers as the engine: CPU workers in front of GPU model servers.

Images travel as data URIs, answers are constrained with the JSON-schema response format, logprobs come
back per token. Several endpoints: each request goes to the least busy healthy one; a failing endpoint is
skipped for a cooldown and the request tries the next. Only when none answers is the engine unavailable.
LoRA adapters are loaded into every server at runtime (POST /v1/load_lora_adapter; the servers run with
--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) and requests name the adapter as `model`. An
endpoint that missed the load (down, or restarted since) gets the adapter before its next request.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from zoomguard.detector.engines.base import (
    Adapter,
    AdapterLoadError,
    Generation,
    GenerationRequest,
    TokenLogprob,
    Turn,
)
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.engines.vllm_inprocess import ModelInputError
from zoomguard.errors import ConfigError, EngineUnavailableError
from zoomguard.media.images import encode_image

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_INPUT_STATUS = {400, 413, 422}
_NO_RUNTIME_LORA = (
    "start it with --enable-lora (and --max-lora-rank at least the adapter's rank) and the environment "
    "variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
)

log = structlog.get_logger("zoomguard.engine")
AFFINITY_ENTRIES = 16384  # images between their two queries; bounded so abandoned ones cannot grow it


@dataclass
class _Endpoint:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    adapters: set[str] = field(default_factory=set)  # adapter names this server has loaded


class OpenAIServerEngine:
    def __init__(
        self,
        settings: EngineSettings,
        client: httpx.AsyncClient | None = None,
        startup_adapter: Adapter | None = None,
    ):
        if not settings.server_urls:
            raise ConfigError("server mode needs at least one server URL (--server or engine.server_urls)")
        self._settings = settings
        self._endpoints = [_Endpoint(url.rstrip("/")) for url in settings.server_urls]
        self._order = itertools.count()
        self._affinity: OrderedDict[str, _Endpoint] = OrderedDict()  # affinity key -> where it last ran
        self._client = client
        self._owns_client = client is None
        self._model = settings.served_model_name
        self._adapters: dict[str, Adapter] = {}
        self._startup_adapter = startup_adapter

    @property
    def model_name(self) -> str:
        return self._model or self._settings.model

    async def start(self) -> None:
        if self._client is None:
            headers = {}
            if self._settings.api_key is not None:
                headers["Authorization"] = f"Bearer {self._settings.api_key.get_secret_value()}"
            self._client = httpx.AsyncClient(
                timeout=self._settings.request_timeout_s,
                headers=headers,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        if not self._model:
            # servers may still be starting: then the name is discovered on the first request (retried)
            with contextlib.suppress(EngineUnavailableError):
                self._model = await self._discover_model()
        if self._startup_adapter is not None:
            # servers still starting get it before their first request; a refusal is reported now
            await self.load_adapter(self._startup_adapter, require_one=False)

    async def load_adapter(self, adapter: Adapter, *, require_one: bool = True) -> None:
        """Load `adapter` into every reachable server. A server that refuses it fails the load (it would
        fail every request naming it); unreachable ones get it later, before their next request."""
        loaded, unreachable = 0, []
        for endpoint in self._endpoints:
            try:
                await self._load_on(endpoint, adapter)
                loaded += 1
            except EngineUnavailableError as exc:
                unreachable.append(str(exc))
        if require_one and not loaded:
            raise AdapterLoadError(f"no server could load adapter {adapter.name}: " + "; ".join(unreachable))
        self._adapters[adapter.name] = adapter
        log.info("adapter loaded", adapter=adapter.name, path=adapter.path, servers=loaded, pending=len(unreachable))

    async def _load_on(self, endpoint: _Endpoint, adapter: Adapter) -> None:
        body = {"lora_name": adapter.name, "lora_path": adapter.path}
        try:
            response = await self._http().post(f"{endpoint.url}/v1/load_lora_adapter", json=body)
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(f"{endpoint.url}: {type(exc).__name__}") from None
        if response.status_code == 200 or (response.status_code == 400 and "already been loaded" in response.text):
            endpoint.adapters.add(adapter.name)
            return
        if response.status_code == 404 and not _is_vllm_error(response):  # the route itself is absent
            raise AdapterLoadError(f"server {endpoint.url} cannot load adapters at runtime: {_NO_RUNTIME_LORA}")
        if response.status_code in (502, 503, 504):
            raise EngineUnavailableError(f"{endpoint.url}: HTTP {response.status_code}")
        raise AdapterLoadError(
            f"server {endpoint.url} refused adapter {adapter.name} ({adapter.path}): HTTP {response.status_code} "
            f"{_detail(response)}; if LoRA is off there, {_NO_RUNTIME_LORA}"
        )

    @property
    def affinity_entries(self) -> int:
        """Images whose Query 2 is pinned to the server that ran their Query 1 (bounded)."""
        return len(self._affinity)

    async def _discover_model(self) -> str:
        """The served model name from /v1/models (the first endpoint that answers)."""
        for endpoint in self._endpoints:
            try:
                response = await self._http().get(f"{endpoint.url}/v1/models")
                response.raise_for_status()
                models = response.json().get("data", [])
                if models:
                    return str(models[0]["id"])
            except (httpx.HTTPError, ValueError, KeyError):
                continue
        raise EngineUnavailableError("no vLLM server answered /v1/models: " + ", ".join(self._urls()))

    async def generate(self, request: GenerationRequest) -> Generation:
        if not self._model:
            self._model = await self._discover_model()
        body = self._body(request)
        errors: list[str] = []
        for endpoint in self._candidates(request.affinity):
            endpoint.in_flight += 1
            try:
                await self._ensure_adapter(endpoint, request.adapter)
                response = await self._http().post(f"{endpoint.url}/v1/chat/completions", json=body)
                if request.adapter and response.status_code == 404:  # the server restarted and forgot it
                    endpoint.adapters.discard(request.adapter)
                    await self._ensure_adapter(endpoint, request.adapter)
                    response = await self._http().post(f"{endpoint.url}/v1/chat/completions", json=body)
            except EngineUnavailableError as exc:
                self._mark_down(endpoint)
                errors.append(str(exc))
                continue
            except httpx.HTTPError as exc:
                self._mark_down(endpoint)
                errors.append(f"{endpoint.url}: {type(exc).__name__}")
                continue
            finally:
                endpoint.in_flight -= 1
            if response.status_code in _TRANSIENT_STATUS:
                self._mark_down(endpoint)
                errors.append(f"{endpoint.url}: HTTP {response.status_code}")
                continue
            if response.status_code in _INPUT_STATUS:
                raise ModelInputError(f"server refused the request: HTTP {response.status_code} {_detail(response)}")
            if response.status_code >= 400:
                raise ConfigError(f"server {endpoint.url} answered HTTP {response.status_code}: {_detail(response)}")
            self._remember(request.affinity, endpoint)
            return _generation(response.json())
        raise EngineUnavailableError("no vLLM server could answer: " + "; ".join(errors or self._urls()))

    async def _ensure_adapter(self, endpoint: _Endpoint, name: str | None) -> None:
        if name is None or name in endpoint.adapters:
            return
        adapter = self._adapters.get(name)
        if adapter is None:  # the detector only names adapters it loaded: this is a bug, not bad input
            raise RuntimeError(f"adapter {name!r} was never loaded into this engine")
        try:
            await self._load_on(endpoint, adapter)
        except AdapterLoadError as exc:  # this server cannot serve it (now): let another one try
            raise EngineUnavailableError(str(exc)) from None

    def queue_depth(self) -> int:
        return sum(endpoint.in_flight for endpoint in self._endpoints)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise EngineUnavailableError("engine not started")
        return self._client

    def _candidates(self, affinity: str | None = None) -> list[_Endpoint]:
        """Healthy endpoints, least busy first (round-robin among equals); all of them if none is healthy.

        A request whose affinity ran before goes first to that endpoint while it is healthy: Query 2 then
        finds Query 1's prompt in that server's prefix cache instead of recomputing the image.
        """
        now = time.monotonic()
        start = next(self._order) % len(self._endpoints)
        rotated = self._endpoints[start:] + self._endpoints[:start]
        healthy = [e for e in rotated if e.down_until <= now]
        ordered = sorted(healthy or rotated, key=lambda e: e.in_flight)
        sticky = self._affinity.pop(affinity, None) if affinity else None
        if sticky is not None and sticky in healthy:
            ordered.remove(sticky)
            ordered.insert(0, sticky)
        return ordered

    def _remember(self, affinity: str | None, endpoint: _Endpoint) -> None:
        if not affinity or len(self._endpoints) < 2:
            return
        self._affinity[affinity] = endpoint
        self._affinity.move_to_end(affinity)
        while len(self._affinity) > AFFINITY_ENTRIES:
            self._affinity.popitem(last=False)

    def _mark_down(self, endpoint: _Endpoint) -> None:
        endpoint.down_until = time.monotonic() + self._settings.endpoint_cooldown_s

    def _urls(self) -> list[str]:
        return [e.url for e in self._endpoints]

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.adapter or self.model_name,
            "messages": [self._message(turn) for turn in request.turns],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "logprobs": True,
            "top_logprobs": request.top_logprobs,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
            },
        }
        return body

    def _message(self, turn: Turn) -> dict[str, Any]:
        if not turn.images:
            return {"role": turn.role, "content": turn.text}
        fmt = self._settings.image_encoding
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": _data_uri(encode_image(image, fmt.upper()), fmt)}}
            for image in turn.images
        ]
        parts.append({"type": "text", "text": turn.text})
        return {"role": turn.role, "content": parts}


def _data_uri(data: bytes, fmt: str) -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"


def _is_vllm_error(response: httpx.Response) -> bool:
    """vLLM's own errors carry {"error": {...}}; a missing route answers FastAPI's {"detail": "Not Found"}."""
    try:
        return isinstance(response.json().get("error"), dict)
    except (ValueError, AttributeError):
        return False


def _detail(response: httpx.Response) -> str:
    return response.text[:300]


def _generation(payload: dict[str, Any]) -> Generation:
    choice = payload["choices"][0]
    usage = payload.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    content = ((choice.get("logprobs") or {}).get("content")) or []
    tokens = tuple(
        TokenLogprob(
            token=item.get("token", ""),
            logprob=float(item.get("logprob", float("-inf"))),
            top=tuple(
                (alt.get("token", ""), float(alt.get("logprob", float("-inf"))))
                for alt in item.get("top_logprobs") or []
            ),
        )
        for item in content
    )
    return Generation(
        text=choice["message"].get("content") or "",
        tokens=tokens,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        cached_prompt_tokens=details.get("cached_tokens"),
        finish_reason=choice.get("finish_reason"),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )

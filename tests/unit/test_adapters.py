"""Adapter directories are checked before any engine sees them; server engines load adapters per endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import save_file

from zoomguard.detector.engines.adapters import adapter_version, check_adapter, startup_adapter
from zoomguard.detector.engines.base import Adapter, AdapterLoadError, Generation, GenerationRequest, Turn
from zoomguard.detector.engines.openai_server import OpenAIServerEngine
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.engines.vllm_inprocess import VllmInProcessEngine
from zoomguard.errors import EngineUnavailableError

PREFIX = "base_model.model.model.language_model.layers.0.self_attn"


def _adapter(
    root: Path, *, rank: int = 8, config: object = None, shapes: dict[str, tuple[int, ...]] | None = None
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    body = config if config is not None else {"peft_type": "LORA", "r": rank, "lora_alpha": 16}
    (root / "adapter_config.json").write_text(json.dumps(body))
    shapes = shapes or {f"{PREFIX}.q_proj.lora_A.weight": (rank, 128), f"{PREFIX}.q_proj.lora_B.weight": (128, rank)}
    save_file(
        {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()},
        str(root / "adapter_model.safetensors"),
    )
    return root


def test_a_valid_adapter_passes(tmp_path: Path) -> None:
    assert check_adapter(_adapter(tmp_path / "a"), max_rank=8)["r"] == 8


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nowhere", "does not exist"),
        (lambda d: (d.mkdir(), d)[1], "no adapter_config.json"),
        (lambda d: _adapter(d, config=["not", "an", "object"]), "not a JSON object"),
        (lambda d: _adapter(d, config={"peft_type": "IA3", "r": 8}), "IA3 adapter"),
        (lambda d: _adapter(d, rank=16), "rank 16, above engine.max_lora_rank=8"),
        (
            lambda d: _adapter(d, shapes={f"{PREFIX}.q_proj.lora_A.weight": (3, 5), f"{PREFIX}.q_proj.lora_B.weight": (5, 7)}),
            "lora_A rank 3 and lora_B rank 7",
        ),
        (lambda d: _adapter(d, shapes={f"{PREFIX}.q_proj.lora_A.weight": (8, 128)}), "lora_B rank None"),
        (lambda d: _adapter(d, shapes={f"{PREFIX}.q_proj.lora_A.weight": (8, 2, 64)}), "LoRA matrices are 2-D"),
        (lambda d: _adapter(d, shapes={"something.else": (2, 2)}), "no lora_A / lora_B tensors"),
    ],
)  # fmt: skip
def test_bad_adapters_are_refused_with_the_reason(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(AdapterLoadError, match=message):
        check_adapter(make(tmp_path / "adapter"), max_rank=8)


def test_config_without_weights_and_unreadable_config(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    with pytest.raises(AdapterLoadError, match="no adapter weights"):
        check_adapter(bare)
    (bare / "adapter_config.json").write_text("{oops")
    with pytest.raises(AdapterLoadError, match="not readable JSON"):
        check_adapter(bare)


def test_versions_follow_the_content(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "a")
    same = _adapter(tmp_path / "same")
    other = _adapter(
        tmp_path / "other",
        shapes={f"{PREFIX}.k_proj.lora_A.weight": (8, 128), f"{PREFIX}.k_proj.lora_B.weight": (64, 8)},
    )
    assert adapter_version(a) == adapter_version(same) != adapter_version(other)
    assert adapter_version(a).startswith("lora-sha256:")
    assert startup_adapter("", "v1") is None
    assert startup_adapter(str(a), "v1") == Adapter(name="v1", path=str(a))
    assert startup_adapter(str(a), "") == Adapter(name=adapter_version(a), path=str(a))


def _server_engine(handler: Callable[[httpx.Request], httpx.Response], urls: list[str]) -> OpenAIServerEngine:
    settings = EngineSettings(mode="server", server_urls=urls, served_model_name="base", endpoint_cooldown_s=0)
    return OpenAIServerEngine(settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def _request(adapter: str | None) -> GenerationRequest:
    return GenerationRequest("r", (Turn("user", "hi"),), {"type": "object"}, max_tokens=4, adapter=adapter)


CHAT = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": {}}


def test_a_server_without_runtime_lora_says_how_to_start_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})  # FastAPI: the route is not there

    engine = _server_engine(handler, ["http://gpu-1:8000"])
    with pytest.raises(AdapterLoadError, match=r"--enable-lora .* VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        asyncio.run(engine.load_adapter(Adapter("v1", "/registry/v1")))


def test_a_down_server_gets_the_adapter_before_its_next_request() -> None:
    calls: list[tuple[str, str, object]] = []
    down = {"gpu-2"}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in down:
            raise httpx.ConnectError("refused")
        body = json.loads(request.content)
        calls.append((host, request.url.path, body.get("model", body.get("lora_name"))))
        if request.url.path == "/v1/load_lora_adapter":
            return httpx.Response(200, text="ok")
        return httpx.Response(200, json=CHAT)

    engine = _server_engine(handler, ["http://gpu-1:8000", "http://gpu-2:8000"])

    async def scenario() -> None:
        await engine.start()
        await engine.load_adapter(Adapter("v1", "/registry/v1"))  # gpu-2 is down: pending there
        down.clear()
        down.add("gpu-1")
        await engine.generate(_request("v1"))  # only gpu-2 answers: it loads v1 first
        await engine.generate(_request(None))

    asyncio.run(scenario())
    assert calls == [
        ("gpu-1", "/v1/load_lora_adapter", "v1"),
        ("gpu-2", "/v1/load_lora_adapter", "v1"),
        ("gpu-2", "/v1/chat/completions", "v1"),
        ("gpu-2", "/v1/chat/completions", "base"),
    ]


def test_a_server_that_forgot_the_adapter_gets_it_again() -> None:
    loaded: set[str] = set()
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        paths.append(request.url.path)
        if request.url.path == "/v1/load_lora_adapter":
            loaded.add(body["lora_name"])
            return httpx.Response(200, text="ok")
        if body["model"] not in loaded and body["model"] != "base":
            return httpx.Response(404, json={"error": {"message": "model does not exist", "code": 404}})
        return httpx.Response(200, json=CHAT)

    engine = _server_engine(handler, ["http://gpu-1:8000"])

    async def scenario() -> None:
        await engine.load_adapter(Adapter("v1", "/registry/v1"))
        loaded.clear()  # the server restarted
        await engine.generate(_request("v1"))

    asyncio.run(scenario())
    assert paths == ["/v1/load_lora_adapter", "/v1/chat/completions", "/v1/load_lora_adapter", "/v1/chat/completions"]


def test_a_server_refusing_the_adapter_fails_the_load() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"message": "No adapter found for /registry/v1", "code": 404}})

    engine = _server_engine(handler, ["http://gpu-1:8000"])
    with pytest.raises(AdapterLoadError, match=r"refused adapter v1 .*No adapter found"):
        asyncio.run(engine.load_adapter(Adapter("v1", "/registry/v1")))


class _FakeLLM:
    def __init__(self, lora: bool):
        self.lora = lora
        self.added: list[str] = []
        self.shut = False

    async def add_lora(self, request: object) -> bool:
        self.added.append(request.lora_name)  # type: ignore[attr-defined]
        return True

    def shutdown(self) -> None:
        self.shut = True


class _GatedEngine(VllmInProcessEngine):
    """The in-process engine's restart logic with vLLM replaced: generations wait on `release`, and an
    engine with LoRA on fails to start when `lora_start_fails`."""

    def __init__(self, lora_start_fails: bool = False):
        super().__init__(EngineSettings(model="m"), images_per_prompt=2)
        self.lora_start_fails = lora_start_fails
        self.release = asyncio.Event()
        self.llms: list[_FakeLLM] = []
        self.events: list[str] = []

    async def _start_llm(self) -> None:
        if self.lora_enabled and self.lora_start_fails:
            raise EngineUnavailableError("vLLM engine failed to start: model does not support LoRA")
        self._llm = _FakeLLM(self.lora_enabled)
        self.llms.append(self._llm)
        self.events.append(f"start lora={self.lora_enabled}")

    async def _generate(self, request: GenerationRequest) -> Generation:
        await self.release.wait()
        llm = self._llm
        self.events.append(f"done {request.request_id} on engine {self.llms.index(llm)}")
        return Generation(text="{}", tokens=(), prompt_tokens=1, cached_prompt_tokens=0, finish_reason="stop")


def _gen(request_id: str) -> GenerationRequest:
    return GenerationRequest(request_id, (Turn("user", "hi"),), {"type": "object"}, max_tokens=4)


def test_restart_with_lora_waits_for_running_requests_and_holds_new_ones(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "a")
    engine = _GatedEngine()

    async def scenario() -> None:
        await engine.start()
        running = [asyncio.create_task(engine.generate(_gen(f"old-{i}"))) for i in range(2)]
        await asyncio.sleep(0)
        swap = asyncio.create_task(engine.load_adapter(Adapter("v1", str(adapter))))
        await asyncio.sleep(0.01)
        assert not engine.llms[0].shut  # running requests are not cut
        late = asyncio.create_task(engine.generate(_gen("new")))  # arrives during the restart: waits
        engine.release.set()
        await asyncio.gather(*running, swap, late)

    asyncio.run(scenario())
    assert engine.events == [
        "start lora=False",
        "done old-0 on engine 0",
        "done old-1 on engine 0",
        "start lora=True",
        "done new on engine 1",
    ]
    assert engine.restarts == 1 and engine.lora_enabled and engine.llms[0].shut
    assert engine.llms[1].added == ["v1"] and engine.adapters == {"v1": str(adapter)}


def test_restart_that_cannot_enable_lora_brings_the_engine_back(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "a")
    engine = _GatedEngine(lora_start_fails=True)
    engine.release.set()

    async def scenario() -> Generation:
        await engine.start()
        with pytest.raises(AdapterLoadError, match=r"cannot serve LoRA adapters .*does not support LoRA"):
            await engine.load_adapter(Adapter("v1", str(adapter)))
        return await engine.generate(_gen("after"))

    assert asyncio.run(scenario()).text == "{}"
    assert engine.events == ["start lora=False", "start lora=False", "done after on engine 1"]
    assert engine.restarts == 0 and not engine.lora_enabled and engine.adapters == {}


def test_a_bad_adapter_never_restarts_the_engine(tmp_path: Path) -> None:
    engine = _GatedEngine()

    async def scenario() -> None:
        await engine.start()
        with pytest.raises(AdapterLoadError, match="does not exist"):
            await engine.load_adapter(Adapter("v1", str(tmp_path / "nowhere")))

    asyncio.run(scenario())
    assert engine.events == ["start lora=False"] and engine.restarts == 0

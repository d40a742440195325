"""Test helpers shared by the tiers: a background event loop for session-wide async engines, free ports, a TCP
proxy that can cut connections, LoRA adapters for the tiny model."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from zoomguard.app.config import Settings, load_settings
from zoomguard.detector.tiny_model import TINY_DETECTOR_SETTINGS, TINY_ENGINE_SETTINGS

T = TypeVar("T")


def tiny_settings(model: str, engine: dict[str, Any] | None = None, **sections: Any) -> Settings:
    """Settings for the tiny model; `engine` and other sections are merged over the tiny defaults."""
    detector = {**TINY_DETECTOR_SETTINGS, **sections.pop("detector", {})}
    overrides = {"engine": {"model": model, **TINY_ENGINE_SETTINGS, **(engine or {})}, "detector": detector, **sections}
    return load_settings(environ={}, overrides=overrides)


class LoopThread:
    """One event loop in a thread for the whole session, so an engine started once serves every test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 600.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """A loopback TCP proxy that can be switched off (connections refused) and on again: a real outage."""

    def __init__(self, target_host: str, target_port: int):
        self.port = free_port()
        self._target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


def make_lora_adapter(model_dir: Path, out: Path, *, seed: int, rank: int = 8) -> Path:
    """A peft LoRA adapter for the tiny model on the language model's attention projections, with non-zero
    lora_B (peft starts it at zero, which would change nothing), saved as training saves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(out))
    return out


class RecordingEngine:
    """Passes requests to an engine and keeps them: which queries ran, and what they asked (replays)."""

    def __init__(self, engine: Any):
        self._engine = engine
        self.requests: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def generate(self, request: Any) -> Any:
        self.requests.append(request)
        return await self._engine.generate(request)


def overconfident_scores(n: int, true_temperature: float, seed: int) -> tuple[list[float], list[bool]]:
    """Raw p = sigmoid(T * z), labels drawn from sigmoid(z): raw p is overconfident by T, so a fit should find T."""
    rng = random.Random(seed)
    raw, labels = [], []
    for _ in range(n):
        z = rng.gauss(0.0, 1.5)
        raw.append(1.0 / (1.0 + math.exp(-true_temperature * z)))
        labels.append(rng.random() < 1.0 / (1.0 + math.exp(-z)))
    return raw, labels

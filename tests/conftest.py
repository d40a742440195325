"""Session fixtures: the tiny model, one in-process vLLM engine and one vLLM server, shared by all tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hostile_corpus import corpus_folder, missing_corpus
from tests.support import LoopThread, free_port, tiny_settings
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.detector.tiny_model import build_tiny_model
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.kafka.embedded_broker import EmbeddedBroker

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


ENGINE_FIXTURES = frozenset({"tiny_model", "inprocess_engine", "inprocess_detector", "vllm_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use, so `-m "not engine and not broker"` (make test-fast) is exact."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & ENGINE_FIXTURES:
            item.add_marker(pytest.mark.engine)
        if "broker" in names:
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def inprocess_engine(tiny_model: Path, loop: LoopThread) -> Iterator[Engine]:
    settings = tiny_settings(str(tiny_model))
    engine = build_engine(settings.engine, settings.detector)
    loop.run(engine.start())
    yield engine
    loop.run(engine.close())


@pytest.fixture(scope="session")
def inprocess_detector(tiny_model: Path, inprocess_engine: Engine) -> ZoomInDetector:
    settings = tiny_settings(str(tiny_model))
    return build_detector(settings.engine, settings.detector, inprocess_engine)


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server on the tiny model, as production runs `vllm serve`."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tiny_model), "--served-model-name", "tiny",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "4096",
        "--limit-mm-per-prompt", '{"image": 4}', "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
        "--enable-lora", "--max-lora-rank", "8",  # promoted adapters are loaded at runtime (hot swap)
    ]  # fmt: skip
    with log.open("wb") as sink:
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM server exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"vLLM server not healthy after {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def pillow_corpus() -> Path:
    """Pillow's Tests/images (`make corpus`). Absent, the tests that use it fail, never skip: CI must run them."""
    folder = corpus_folder()
    if not folder.is_dir():
        pytest.fail(missing_corpus(folder), pytrace=False)
    return folder


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log") as running:
        yield running

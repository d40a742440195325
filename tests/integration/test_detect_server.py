"""ZoomIn through a real vLLM OpenAI-compatible server started by the test, as CPU workers run in production."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import LoopThread, tiny_settings
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.errors import EngineUnavailableError
from zoomguard.samples import make_samples, write_samples
from zoomguard.schemas.detection import Detection


def test_detect_through_the_server(loop: LoopThread, tiny_model: Path, vllm_server: str) -> None:
    # two endpoints, one of them dead: requests must all land on the live one
    settings = tiny_settings(str(tiny_model), {"mode": "server", "server_urls": ["http://127.0.0.1:9", vllm_server]})
    samples = make_samples(4, seed=200, size=(320, 240))

    async def run() -> list[Detection]:
        engine = build_engine(settings.engine, settings.detector)
        await engine.start()
        try:
            detector = build_detector(settings.engine, settings.detector, engine)
            return list(
                await asyncio.gather(
                    *(detector.detect_bytes(s.data, request_id=f"srv-{i}") for i, s in enumerate(samples))
                )
            )
        finally:
            await engine.close()

    detections = loop.run(run())
    assert len(detections) == 4
    for detection in detections:
        assert detection.decision in ("ai_generated", "real", "uncertain")
        assert detection.model.name == str(tiny_model)
        assert detection.usage.locate_prompt_tokens > 0
        if detection.examined:
            # the server reports cached prompt tokens (--enable-prompt-tokens-details)
            assert detection.usage.examine_cached_tokens is not None
            assert detection.usage.examine_cached_tokens > 0


def test_no_live_server_is_unavailable_not_bad_input(loop: LoopThread, tiny_model: Path) -> None:
    engine = {
        "mode": "server",
        "server_urls": ["http://127.0.0.1:9"],
        "served_model_name": "tiny",
        "request_timeout_s": 2,
    }
    settings = tiny_settings(str(tiny_model), engine)

    async def run() -> None:
        engine = build_engine(settings.engine, settings.detector)
        await engine.start()
        try:
            await build_detector(settings.engine, settings.detector, engine).detect_bytes(
                make_samples(1)[0].data, request_id="x"
            )
        finally:
            await engine.close()

    with pytest.raises(EngineUnavailableError, match="no vLLM server"):
        loop.run(run())


def test_cli_detect_with_server(tmp_path: Path, tiny_model: Path, vllm_server: str) -> None:
    images = write_samples(tmp_path / "in", 3, seed=300, size=(320, 240))
    missing = tmp_path / "in" / "missing.png"
    config = tmp_path / "zoomguard.json"
    config.write_text(json.dumps({"detector": {"max_pixels": 224 * 224, "crops": {"max_crops": 3}}}))
    result = subprocess.run(
        [sys.executable, "-m", "zoomguard.cli", "detect", *map(str, images), str(missing),
         "--model", str(tiny_model), "--server", vllm_server, "--config", str(config), "--json", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # one input failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == [*map(str, images), str(missing)]
    assert all("decision" in line for line in lines[:3]), lines[:3]
    assert lines[3]["error"]["kind"] == "io"

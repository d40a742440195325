"""LoRA adapters on the real vLLM CPU engine and a running worker on the real broker.

A promoted model reaches a running worker through `models.updates`: later verdicts carry its version and
come from its weights; bad updates are ignored; a restarted worker serves the promoted model at once; an
engine started without LoRA is restarted cleanly with it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_helpers import RunningService, TopicWatcher, image_event, inline, kafka_overrides, produce, wait_for
from tests.support import LoopThread, make_lora_adapter, tiny_settings
from zoomguard.detector.calibration import calibrate
from zoomguard.detector.engines.base import Adapter, AdapterLoadError
from zoomguard.detector.engines.openai_server import OpenAIServerEngine
from zoomguard.detector.engines.vllm_inprocess import VllmInProcessEngine
from zoomguard.detector.factory import build_detector, build_engine
from zoomguard.detector.zoomin import ServingModel
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples
from zoomguard.schemas.detection import Detection
from zoomguard.schemas.review import Calibration, ModelUpdate

LORA_ENGINE = {"enable_lora": True, "max_lora_rank": 8}


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    good = make_lora_adapter(tiny_model, root / "good", seed=1)
    second = make_lora_adapter(tiny_model, root / "second", seed=2)
    too_wide = make_lora_adapter(tiny_model, root / "rank16", seed=3, rank=16)
    # right files, wrong tensor shapes
    mangled = root / "mangled"
    shutil.copytree(good, mangled)
    _mangle_weights(mangled / "adapter_model.safetensors")
    return {"good": good, "second": second, "rank16": too_wide, "mangled": mangled}


def _mangle_weights(path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    save_file({name: torch.ones(3, 5) for name in tensors}, path)


@pytest.fixture(scope="module")
def lora_engine(tiny_model: Path, loop: LoopThread) -> Iterator[VllmInProcessEngine]:
    """One LoRA-enabled engine for this module (the session engine runs without LoRA)."""
    settings = tiny_settings(str(tiny_model), engine=LORA_ENGINE)
    engine = build_engine(settings.engine, settings.detector)
    assert isinstance(engine, VllmInProcessEngine)
    loop.run(engine.start())
    yield engine
    loop.run(engine.close())


def _fingerprint(detection: Detection) -> tuple[Any, ...]:
    return (detection.p_ai_raw, detection.explanation, detection.first_pass, detection.regions)


def test_engine_refuses_bad_adapters_and_keeps_serving(
    loop: LoopThread, tiny_model: Path, lora_engine: VllmInProcessEngine, adapters: dict[str, Path]
) -> None:
    for path, message in (
        (tiny_model / "missing", "does not exist"),
        (tiny_model, "no adapter_config.json"),
        (adapters["rank16"], "LoRA rank 16, above engine.max_lora_rank=8"),
        (adapters["mangled"], "must match and be at most 8"),  # vLLM itself would serve it as garbage
    ):
        with pytest.raises(AdapterLoadError, match=message):
            loop.run(lora_engine.load_adapter(Adapter(name=f"bad-{path.name}", path=str(path))))
    assert not any(name.startswith("bad-") for name in lora_engine.adapters)
    settings = tiny_settings(str(tiny_model), engine=LORA_ENGINE)
    detector = build_detector(settings.engine, settings.detector, lora_engine)
    image = make_samples(1, seed=5, size=(160, 120))[0].data
    detection = loop.run(detector.detect_bytes(image, request_id="after-bad-adapters"))
    assert detection.model.version == detector.model.version and lora_engine.restarts == 0


def test_running_worker_switches_to_a_promoted_adapter(
    loop: LoopThread,
    broker: EmbeddedBroker,
    tiny_model: Path,
    lora_engine: VllmInProcessEngine,
    adapters: dict[str, Path],
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "swap", partitions=1)
    topics = kafka["topics"]
    settings = tiny_settings(
        str(tiny_model),
        engine={**LORA_ENGINE, "model_version": "tiny-base"},
        **kafka,
        worker={"audit_rate": 0.0, "max_in_flight": 4, "low_water": 1, "model_updates_catchup_s": 10},
    )
    samples = [s.data for s in make_samples(4, seed=77, size=(200, 160))]
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    running = RunningService(loop, settings, lora_engine)
    try:
        produce(broker.bootstrap, topics["input"], [(b"e-0", image_event("e-0", inline(samples[0])))])
        wait_for(lambda: watcher.event_ids()["e-0"] == 1, 240, "the first verdict")

        update = _update("tiny-lora-1", adapters["good"], tiny_model, Calibration(method="temperature", temperature=3))
        bad = _update("tiny-lora-bad", tiny_model / "nowhere", tiny_model)
        updates: list[tuple[bytes | None, bytes]] = [
            (None, b"{not a model update"),
            (None, _json(bad)),
            (None, _json(update)),
        ]
        produce(broker.bootstrap, topics["model_updates"], updates)
        wait_for(lambda: "tiny-lora-1" in lora_engine.adapters, 120, "the promoted adapter to load")
        wait_for(lambda: running.detector_version() == "tiny-lora-1", 30, "the detector to switch")

        # the same image again (the verdict cache is per version, so this is a new detection) and a new one
        produce(
            broker.bootstrap,
            topics["input"],
            [(b"e-1", image_event("e-1", inline(samples[0]))), (b"e-2", image_event("e-2", inline(samples[1])))],
        )
        wait_for(lambda: {"e-1", "e-2"} <= set(watcher.event_ids()), 240, "verdicts after the switch")
    finally:
        stats = running.stop()
        watcher.close()

    verdicts = {v["event_id"]: v for v in watcher.values}
    assert verdicts["e-0"]["model"]["version"] == "tiny-base"
    assert verdicts["e-1"]["model"]["version"] == verdicts["e-2"]["model"]["version"] == "tiny-lora-1"
    assert verdicts["e-1"]["model"]["name"] == str(tiny_model) and not verdicts["e-1"]["cache_hit"]
    # the adapter's weights produced it: same image, same prompt, different answer
    before, after = verdicts["e-0"], verdicts["e-1"]
    assert (before["p_ai_raw"], before["explanation"], before["first_pass"]) != (
        after["p_ai_raw"],
        after["explanation"],
        after["first_pass"],
    )
    # the version's calibration applies to p_ai (the raw value stays visible), and not before the switch
    assert before["p_ai"] == before["p_ai_raw"]
    expected = calibrate(after["p_ai_raw"], update.calibration)
    assert after["p_ai"] == (None if expected is None else pytest.approx(expected, abs=1e-5))
    assert stats.outcomes["verdict"] == 3 and lora_engine.restarts == 0
    assert "tiny-lora-bad" not in lora_engine.adapters

    # a restarted worker (here: a new group, so it reads the input again) serves the promoted model from its
    # first event: it reads models.updates before it consumes
    settings_again = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"group_id": settings.kafka.group_id + "-again"})}
    )
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    restarted = RunningService(loop, settings_again, lora_engine)
    try:
        wait_for(lambda: sum(watcher.event_ids().values()) == 6, 240, "the restarted worker's verdicts")
    finally:
        restarted.stop()
        watcher.close()
    assert [v["model"]["version"] for v in watcher.values[3:]] == ["tiny-lora-1"] * 3


def test_engine_without_lora_restarts_cleanly_with_it(
    loop: LoopThread, tiny_model: Path, adapters: dict[str, Path]
) -> None:
    settings = tiny_settings(str(tiny_model))
    engine = build_engine(settings.engine, settings.detector)
    assert isinstance(engine, VllmInProcessEngine) and not engine.lora_enabled
    detector = build_detector(settings.engine, settings.detector, engine)
    images = [s.data for s in make_samples(3, seed=31, size=(160, 120))]
    loop.run(engine.start())
    try:
        base_before = loop.run(detector.detect_bytes(images[0], request_id="base-before"))

        async def swap_while_busy() -> list[Detection]:
            # detections in flight while the engine restarts: they finish or wait, none fails
            busy = [
                asyncio.create_task(detector.detect_bytes(img, request_id=f"busy-{i}")) for i, img in enumerate(images)
            ]
            await asyncio.sleep(0.2)
            await engine.load_adapter(Adapter(name="tiny-lora-2", path=str(adapters["second"])))
            return list(await asyncio.gather(*busy))

        busy = loop.run(swap_while_busy())
        assert engine.restarts == 1 and engine.lora_enabled and "tiny-lora-2" in engine.adapters
        assert [d.model.version for d in busy] == [detector.model.version] * 3

        base_after = loop.run(detector.detect_bytes(images[0], request_id="base-after"))
        assert _fingerprint(base_after) == _fingerprint(base_before)  # same base weights after the restart

        detector.use(
            ServingModel(info=detector.model.model_copy(update={"version": "tiny-lora-2"}), adapter="tiny-lora-2")
        )
        with_adapter = loop.run(detector.detect_bytes(images[0], request_id="with-adapter"))
        assert with_adapter.model.version == "tiny-lora-2"
        assert _fingerprint(with_adapter) != _fingerprint(base_before)

        # loading the next adapter needs no restart now
        loop.run(engine.load_adapter(Adapter(name="tiny-lora-1", path=str(adapters["good"]))))
        assert engine.restarts == 1
    finally:
        loop.run(engine.close())


def test_servers_load_adapters_at_runtime_and_requests_name_them(
    loop: LoopThread, tiny_model: Path, vllm_server: str, adapters: dict[str, Path]
) -> None:
    settings = tiny_settings(str(tiny_model), engine={"mode": "server", "server_urls": [vllm_server]})
    engine = build_engine(settings.engine, settings.detector)
    assert isinstance(engine, OpenAIServerEngine)
    detector = build_detector(settings.engine, settings.detector, engine)
    name = f"hot-swap-{uuid.uuid4().hex[:8]}"  # the session's server is shared: a name of our own
    image = make_samples(1, seed=41, size=(160, 120))[0].data

    async def scenario() -> tuple[Detection, Detection]:
        await engine.start()
        try:
            base = await detector.detect_bytes(image, request_id="server-base")
            await engine.load_adapter(Adapter(name=name, path=str(adapters["good"])))
            await engine.load_adapter(Adapter(name=name, path=str(adapters["good"])))  # again: already there
            with pytest.raises(AdapterLoadError, match="refused adapter"):
                await engine.load_adapter(Adapter(name=name + "-missing", path=str(tiny_model / "missing")))
            detector.use(ServingModel(info=detector.model.model_copy(update={"version": name}), adapter=name))
            return base, await detector.detect_bytes(image, request_id="server-adapter")
        finally:
            await engine.close()

    base, with_adapter = loop.run(scenario())
    assert base.model.version != name and with_adapter.model.version == name
    assert _fingerprint(with_adapter) != _fingerprint(base)


def _update(version: str, adapter: Path, base: Path, calibration: Calibration | None = None) -> ModelUpdate:
    return ModelUpdate(
        model_version=version,
        base_model=str(base),
        adapter_path=str(adapter),
        metrics={"accuracy": 0.9},
        calibration=calibration or Calibration(),
        promoted_at=datetime.now(UTC),
    )


def _json(update: ModelUpdate) -> bytes:
    return json.dumps(json.loads(update.model_dump_json())).encode()

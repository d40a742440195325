"""The model-update follower's logic with fakes: which update is served, what is ignored, what a switch changes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from zoomguard.detector.engines.base import Adapter, AdapterLoadError, Generation, GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.samples import encode, make_image
from zoomguard.schemas.detection import Detection, ModelInfo
from zoomguard.schemas.review import Calibration, ModelUpdate
from zoomguard.worker.model_updates import (
    ModelSwitcher,
    ModelUpdateFollower,
    decode_update,
    newest_first,
    same_base,
)

BASE = ModelInfo(name="/models/Qwen2.5-VL-7B-Instruct", version="base-1", family="qwen2_5_vl")
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _answer(verdict: str) -> str:
    return json.dumps({"explanation": "because", "regions": [], "verdict": verdict})


class AdapterScriptedEngine(ScriptedEngine):
    """A scripted engine that 'loads' adapters: paths containing 'broken' are refused, others recorded."""

    def __init__(self) -> None:
        super().__init__(lambda request: (_answer("ai_generated"), 0.9))
        self.loaded: list[Adapter] = []

    async def load_adapter(self, adapter: Adapter) -> None:
        if "broken" in adapter.path:
            raise AdapterLoadError(f"cannot load {adapter.path}")
        self.loaded.append(adapter)


class FakeSource:
    def __init__(self, batches: list[list[bytes | None]]):
        self.batches = list(batches)
        self.closed = False

    async def read(self) -> list[bytes | None]:
        await asyncio.sleep(0)
        return self.batches.pop(0) if self.batches else []

    async def close(self) -> None:
        self.closed = True


def _update(version: str, path: str | None = None, minutes: int = 0, **fields: object) -> ModelUpdate:
    values: dict[str, object] = {
        "model_version": version,
        "base_model": "Qwen2.5-VL-7B-Instruct",
        "adapter_path": path or f"/registry/{version}/adapter",
        "promoted_at": T0 + timedelta(minutes=minutes),
        **fields,
    }
    return ModelUpdate.model_validate(values)


def _raw(update: ModelUpdate) -> bytes:
    return update.model_dump_json().encode()


def _detector(engine: ScriptedEngine | None = None) -> ZoomInDetector:
    return ZoomInDetector(engine or AdapterScriptedEngine(), DetectorSettings(), FAMILIES["qwen2_5_vl"], BASE)


def _follower(detector: ZoomInDetector, batches: list[list[bytes | None]]) -> ModelUpdateFollower:
    return ModelUpdateFollower(FakeSource(batches), ModelSwitcher(detector), max_bytes=64 * 1024, catchup_s=5)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "no value"),
        (b"x" * 70_000, "limit is 65536"),
        (b"{not json", "invalid ModelUpdate"),
        (b'{"model_version": "v1"}', "base_model"),
        (json.dumps({**json.loads(_update("v1").model_dump_json()), "model_version": "bad version!"}).encode(), "model_version"),
        (json.dumps({**json.loads(_update("v1").model_dump_json()), "extra": 1}).encode(), "extra"),
    ],
)  # fmt: skip
def test_decode_refuses_what_is_not_a_model_update(value: bytes | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_update(value, 64 * 1024)


def test_decode_reads_a_model_update() -> None:
    update = _update("v7", calibration=Calibration(method="temperature", temperature=1.5))
    assert decode_update(_raw(update), 64 * 1024) == update


def test_newest_first_by_promotion_time_then_topic_order() -> None:
    a, b, c, d = _update("a", minutes=5), _update("b", minutes=1), _update("c", minutes=9), _update("d", minutes=5)
    assert [u.model_version for u in newest_first([a, b, c, d])] == ["c", "d", "a", "b"]


@pytest.mark.parametrize(
    ("update_base", "served", "same"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", True),
        ("/models/Qwen2.5-VL-7B-Instruct/", "Qwen/Qwen2.5-VL-7B-Instruct", True),
        ("", "anything", True),
        ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", False),
    ],
)
def test_same_base(update_base: str, served: str, same: bool) -> None:
    assert same_base(update_base, served) is same


def test_catch_up_serves_the_newest_update_that_loads() -> None:
    detector = _detector()
    older, newer_broken = _update("v1", minutes=1), _update("v2", path="/registry/broken", minutes=2)
    follower = _follower(detector, [[_raw(older)], [b"garbage", _raw(newer_broken)]])
    asyncio.run(follower.catch_up())
    assert detector.model.version == "v1" and detector.serving.adapter == "v1"
    assert follower.applied == ["v1"]
    assert any("invalid ModelUpdate" in reason for reason in follower.ignored)
    assert any(reason.startswith("v2: cannot load") for reason in follower.ignored)


def test_catch_up_on_an_empty_topic_keeps_the_base_model() -> None:
    detector = _detector()
    follower = _follower(detector, [])
    asyncio.run(follower.catch_up())
    assert detector.model == BASE and detector.serving.adapter is None and follower.applied == []


def test_follow_switches_and_ignores_bad_updates() -> None:
    engine = AdapterScriptedEngine()
    detector = _detector(engine)
    batches: list[list[bytes | None]] = [
        [_raw(_update("v1"))],
        [b"{}"],  # not an update
        [_raw(_update("v2", path="/registry/broken"))],  # unloadable
        [_raw(_update("v1"))],  # the version already served: no reload
        [_raw(_update("v3", base_model="Qwen/Qwen2.5-VL-3B-Instruct"))],  # another base model
        [_raw(_update("v4")), _raw(_update("v5"))],  # two at once: the last one read is served
    ]
    source = FakeSource(batches)
    follower = ModelUpdateFollower(source, ModelSwitcher(detector), max_bytes=64 * 1024, catchup_s=5)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(follower.follow(stop))
        while source.batches:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    assert follower.applied == ["v1", "v5"]
    assert [a.name for a in engine.loaded] == ["v1", "v5"]
    assert detector.model.version == "v5" and detector.model.name == BASE.name
    assert len(follower.ignored) == 3
    assert any("serves /models/Qwen2.5-VL-7B-Instruct" in reason for reason in follower.ignored)


def test_an_engine_without_adapters_is_reported_and_kept() -> None:
    detector = _detector(ScriptedEngine(lambda request: _answer("real")))
    follower = _follower(detector, [])
    assert asyncio.run(follower.apply(_update("v1"))) is False
    assert "cannot serve LoRA adapters" in follower.ignored[0]
    assert detector.model == BASE


def test_an_unexpected_error_is_contained() -> None:
    class Exploding(AdapterScriptedEngine):
        async def load_adapter(self, adapter: Adapter) -> None:
            raise RuntimeError("boom")

    detector = _detector(Exploding())
    follower = _follower(detector, [])
    assert asyncio.run(follower.apply(_update("v1"))) is False
    assert follower.ignored == ["v1: RuntimeError: boom"] and detector.model == BASE


def test_after_a_switch_detections_use_the_adapter_the_version_and_the_calibration() -> None:
    engine = AdapterScriptedEngine()
    detector = _detector(engine)
    data = encode(make_image(3, (320, 240)), "PNG")
    before = asyncio.run(detector.detect_bytes(data, request_id="a"))
    calibration = Calibration(method="temperature", temperature=8.0)  # 0.9 -> ~0.57: no longer confident
    follower = _follower(detector, [])
    assert asyncio.run(follower.apply(_update("v2", calibration=calibration)))
    after = asyncio.run(detector.detect_bytes(data, request_id="b"))

    assert before.model.version == "base-1" and before.decision == "ai_generated"
    assert before.p_ai == pytest.approx(0.9) and before.p_ai_raw == pytest.approx(0.9)
    assert after.model.version == "v2" and after.model.name == BASE.name
    assert after.p_ai_raw == pytest.approx(0.9)
    assert after.p_ai == pytest.approx(0.5686, abs=1e-3)
    assert after.decision == "uncertain" and after.reason == "low_confidence"  # thresholds apply to calibrated
    requests: list[GenerationRequest] = engine.requests
    assert [r.adapter for r in requests] == [None] * (len(requests) // 2) + ["v2"] * (len(requests) // 2)


def test_a_detection_finishes_on_the_model_it_started_with() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    class Slow(AdapterScriptedEngine):
        async def generate(self, request: GenerationRequest) -> Generation:
            started.set()
            await release.wait()
            return await super().generate(request)

    engine = Slow()
    detector = _detector(engine)
    data = encode(make_image(4, (320, 240)), "PNG")

    async def run() -> tuple[Detection, Detection]:
        running = asyncio.create_task(detector.detect_bytes(data, request_id="old"))
        await started.wait()
        await ModelSwitcher(detector).switch(_update("v9"))
        release.set()
        old = await running
        new = await detector.detect_bytes(data, request_id="new")
        return old, new

    old, new = asyncio.run(run())
    assert old.model.version == "base-1" and new.model.version == "v9"
    by_id = {r.request_id.split(":")[0]: r.adapter for r in engine.requests}
    assert by_id == {"old": None, "new": "v9"}

"""The cascade in the real worker (real broker, real vLLM CPU engine): marked uploads are decided by their own
bytes without a model call; unmarked ones still go to the model; Label Studio tasks and metrics say so."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.kafka_helpers import image_event, inline, kafka_overrides, produce, read_json, run_until_handled
from tests.support import LoopThread, RecordingEngine, tiny_settings
from zoomguard.commands.demo import marked_samples
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples


def test_marked_uploads_skip_the_model(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "evidence", 2)
    settings = tiny_settings(str(tiny_model), **kafka, worker={"audit_rate": 1.0, "max_in_flight": 8, "low_water": 2})
    marked = marked_samples()
    plain = make_samples(2, seed=77, size=(320, 240))
    records = [(k.encode(), image_event(k, inline(data))) for k, data in marked.items()]
    records += [(f"plain-{i}".encode(), image_event(f"plain-{i}", inline(s.data))) for i, s in enumerate(plain)]
    produce(broker.bootstrap, kafka["topics"]["input"], records)
    engine = RecordingEngine(inprocess_engine)
    run_until_handled(loop, settings, engine, len(records))  # type: ignore[arg-type]

    verdicts = {v["event_id"]: v for v in read_json(broker.bootstrap, kafka["topics"]["verdicts"])}
    assert set(verdicts) == {*marked, "plain-0", "plain-1"}
    kinds = {"mark-c2pa": "c2pa", "mark-xmp": "xmp", "mark-a1111": "generator_metadata", "mark-sdxl": "watermark"}
    for event_id, kind in kinds.items():
        verdict = verdicts[event_id]
        assert verdict["decision"] == "ai_generated" and verdict["decision_source"] == "evidence"
        assert verdict["p_ai"] is None and verdict["regions"] == [] and not verdict["examined"]
        assert [item["kind"] for item in verdict["evidence"]] == [kind]
        assert verdict["image"]["pdq"] is (None if kind != "watermark" else verdict["image"]["pdq"])
    for event_id in ("plain-0", "plain-1"):
        assert verdicts[event_id]["decision_source"] == "model" and verdicts[event_id]["evidence"] == []
    # the model ran for the two plain uploads only: Query 1 twice (and Query 2 when regions were found)
    assert sum(1 for r in engine.requests if len(r.turns) == 1) == 2

    reviews = {r["event_id"]: r for r in read_json(broker.bootstrap, kafka["topics"]["review"])}  # audit_rate 1
    task = reviews["mark-c2pa"]["label_studio_task"]["data"]
    assert task["decision_source"] == "evidence" and task["evidence"].startswith("c2pa: ai_generated (valid)")


def test_a_trusted_camera_lowers_the_prior_and_the_model_still_decides(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine, tmp_path: Path
) -> None:
    import c2pa

    from zoomguard.evidence.demo_credentials import make_chain, sign
    from zoomguard.samples import encode, make_image

    camera = make_chain("test camera maker")
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(camera.root_pem)
    captured = sign(camera, encode(make_image(77, (320, 240)), "JPEG"), "image/jpeg",
                    c2pa.C2paDigitalSourceType.DIGITAL_CAPTURE)  # fmt: skip
    kafka = kafka_overrides(broker.bootstrap, "capture", 1)
    settings = tiny_settings(
        str(tiny_model), **kafka, worker={"audit_rate": 0.0, "max_in_flight": 2, "low_water": 1},
        evidence={"c2pa": {"trust_anchors_pem": str(anchors)}, "trusted_capture_log_odds": -2.0},
    )  # fmt: skip
    produce(broker.bootstrap, kafka["topics"]["input"], [(b"camera", image_event("camera", inline(captured)))])
    engine = RecordingEngine(inprocess_engine)
    run_until_handled(loop, settings, engine, 1)  # type: ignore[arg-type]

    [verdict] = read_json(broker.bootstrap, kafka["topics"]["verdicts"])
    assert verdict["decision_source"] == "model" and len(engine.requests) >= 1  # never decided by the claim
    [item] = verdict["evidence"]
    assert (item["kind"], item["claim"], item["valid"], item["trusted"]) == ("c2pa", "real", True, True)
    assert verdict["explanation"].startswith("A trusted capture signature")
    raw, shifted = verdict["p_ai_raw"], verdict["p_ai"]
    assert raw is not None and 0 < raw < 1  # the tiny model's own number, kept for calibration fits
    odds = raw / (1 - raw) * math.exp(-2.0)
    assert shifted == pytest.approx(odds / (1 + odds), abs=1e-5)


def test_with_from_evidence_a_stripped_copy_of_a_marked_upload_is_still_caught(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    from PIL import Image

    from tests.kafka_helpers import RunningService, TopicWatcher, wait_for
    from zoomguard.samples import encode, make_image, with_a1111_parameters

    scene = make_image(906, (320, 240))
    noise = Image.merge("RGB", [Image.effect_noise((40, 30), 60) for _ in range(3)]).resize(scene.size)
    photo = Image.blend(scene, noise, 0.4)  # colour texture: PDQ quality 100
    marked, stripped = with_a1111_parameters(photo), encode(photo.resize((240, 180)), "JPEG")
    kafka = kafka_overrides(broker.bootstrap, "from-evidence", 1)
    settings = tiny_settings(
        str(tiny_model), **kafka, worker={"audit_rate": 0.0, "max_in_flight": 2, "low_water": 1},
        known={"from_evidence": True},
    )  # fmt: skip
    engine = RecordingEngine(inprocess_engine)
    watcher = TopicWatcher(broker.bootstrap, kafka["topics"]["verdicts"])
    running = RunningService(loop, settings, engine)  # type: ignore[arg-type]
    topic = kafka["topics"]["input"]
    try:
        produce(broker.bootstrap, topic, [(b"marked", image_event("marked", inline(marked)))])
        wait_for(lambda: "marked" in watcher.event_ids(), 120, "the marked upload's verdict")
        attempt = 0
        while True:  # the entry went out with the verdict; the running worker reads it back from the bank
            event_id = f"stripped-{attempt}"
            produce(broker.bootstrap, topic, [(event_id.encode(), image_event(event_id, inline(stripped)))])
            wait_for(lambda e=event_id: e in watcher.event_ids(), 240, f"the verdict of {event_id}")
            if next(v for v in watcher.values if v["event_id"] == event_id)["decision_source"] == "known_content":
                break
            assert attempt < 20, "the evidence entry never reached the worker's bank"
            attempt += 1
    finally:
        running.stop()
        watcher.close()
    verdicts = {v["event_id"]: v for v in watcher.values}
    assert verdicts["marked"]["decision_source"] == "evidence"
    copy = verdicts[event_id]
    assert copy["decision"] == "ai_generated" and copy["evidence"][-1]["source"] == "evidence:marked"
    [entry] = read_json(broker.bootstrap, kafka["topics"]["known"])
    assert entry["source"] == "evidence" and entry["decided_by"] == "generator_metadata: A1111"

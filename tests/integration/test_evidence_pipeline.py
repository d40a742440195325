"""The cascade in the real worker (real broker, real vLLM CPU engine): marked uploads are decided by their own
bytes without a model call; unmarked ones still go to the model; Label Studio tasks and metrics say so."""

from __future__ import annotations

from pathlib import Path

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

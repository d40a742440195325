"""Known content in the real worker (real broker, real vLLM CPU engine): a bank entry, written by another Kafka
client (librdkafka, as people's tools write it), decides a re-encoded, resized copy without a model call; a
later opposite decision reaches the running worker and flips the next copy; a worker started afterwards decides
another copy the same way; an unrelated upload still goes to the model. `zoomguard bank` imports and exports."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.kafka_helpers import RunningService, TopicWatcher, image_event, inline, kafka_overrides, produce, wait_for
from tests.support import LoopThread, RecordingEngine, tiny_settings
from zoomguard.app.bank import ensure_bank_topic, read_bank
from zoomguard.cli import main
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.known.bank import BankEntry, record_of
from zoomguard.known.hashing import pdq_of_bytes


@pytest.fixture(scope="module")
def photos() -> tuple[Image.Image, Image.Image]:
    from sklearn.datasets import load_sample_images  # ships its two photos; no download

    china, flower = (Image.fromarray(array).reduce(2) for array in load_sample_images().images)
    return china, flower


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _decision(pdq: str, label: str, reviewer: str) -> tuple[bytes, bytes]:
    entry = BankEntry(
        entry_id="review:first-upload", pdq=pdq, quality=100, label=label, source="review", decided_by=reviewer,
        decided_at="2026-12-01T10:00:00Z", event_id="first-upload",
    )  # fmt: skip
    return record_of(entry)


def _publish_with_librdkafka(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_one_decision_decides_every_copy_on_every_worker(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine,
    photos: tuple[Image.Image, Image.Image],
) -> None:  # fmt: skip
    china, flower = photos
    kafka = kafka_overrides(broker.bootstrap, "known", 2)
    topics = kafka["topics"]
    settings = tiny_settings(str(tiny_model), **kafka, worker={"audit_rate": 0.0, "max_in_flight": 4, "low_water": 1})
    ensure_bank_topic(settings.kafka, topics["known"])
    original = _jpeg(china, 95)
    key, value = _decision(pdq_of_bytes(original).hex, "ai_generated", "alice")
    _publish_with_librdkafka(broker.bootstrap, topics["known"], key, value)

    copies = {  # what other apps make of the same upload
        "copy-resized": _jpeg(china.resize((china.width * 3 // 4, china.height * 3 // 4)), 80),
        "copy-recompressed": _jpeg(china, 50),
        "copy-png": _png(china.resize((china.width // 2, china.height // 2))),
    }
    engine = RecordingEngine(inprocess_engine)
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    running = RunningService(loop, settings, engine)  # type: ignore[arg-type]
    try:
        produce(broker.bootstrap, topics["input"], [
            (b"copy-resized", image_event("copy-resized", inline(copies["copy-resized"]))),
            (b"unrelated", image_event("unrelated", inline(_jpeg(flower, 90)))),
        ])  # fmt: skip
        wait_for(lambda: {"copy-resized", "unrelated"} <= set(watcher.event_ids()), 240, "the first verdicts")
        # the reviewer changes their mind: the running worker hears of it through the bank's topic
        produce(broker.bootstrap, topics["known"], [_decision(pdq_of_bytes(original).hex, "real", "bob")])
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 60:  # a new copy every second until one is decided the new way
            event_id = f"copy-recompressed-{sent}"
            produce(
                broker.bootstrap,
                topics["input"],
                [(event_id.encode(), image_event(event_id, inline(copies["copy-recompressed"])))],
            )
            sent += 1
            wait_for(lambda e=event_id: e in watcher.event_ids(), 120, f"the verdict of {event_id}")
            if {v["event_id"]: v for v in watcher.values}[event_id]["decision"] == "real":
                break
            time.sleep(1.0)
        flipped_after_s = time.monotonic() - started
    finally:
        running.stop()
    verdicts = {v["event_id"]: v for v in watcher.values}
    first = verdicts["copy-resized"]
    assert first["decision"] == "ai_generated" and first["decision_source"] == "known_content"
    assert first["p_ai"] is None and not first["cache_hit"]
    [item] = first["evidence"]
    assert item["kind"] == "known_content" and item["source"] == "review:first-upload" and "alice" in item["detail"]
    assert first["image"]["pdq"] == pdq_of_bytes(copies["copy-resized"]).hex
    assert verdicts["unrelated"]["decision_source"] == "model" and verdicts["unrelated"]["image"]["pdq"]
    flipped = verdicts[f"copy-recompressed-{sent - 1}"]
    assert flipped["decision"] == "real" and flipped["decision_source"] == "known_content"
    assert "bob" in flipped["evidence"][0]["detail"] and flipped_after_s < 30
    # the model ran for the unrelated upload only (Query 1 once, Query 2 when it found regions)
    assert sum(1 for r in engine.requests if len(r.turns) == 1) == 1

    # a worker started afterwards (a new group: it reads the whole input again) loads the bank first
    first_run = len(watcher.values)
    watcher.close()
    later = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"group_id": settings.kafka.group_id + "-later"})}
    )
    produce(broker.bootstrap, topics["input"], [(b"copy-png", image_event("copy-png", inline(copies["copy-png"])))])
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    restarted = RunningService(loop, later, engine)  # type: ignore[arg-type]
    try:
        wait_for(lambda: sum(watcher.event_ids().values()) == 2 * first_run + 1, 240, "the later worker's verdicts")
    finally:
        restarted.stop()
        watcher.close()
    again = {v["event_id"]: v for v in watcher.values[first_run:]}
    assert again["copy-png"]["decision_source"] == "known_content"
    assert {v["decision"] for k, v in again.items() if k.startswith("copy-")} == {"real"}  # every copy, the new way
    assert again["unrelated"]["decision_source"] == "model"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_bank_import_and_export_round_trip(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = kafka_overrides(broker.bootstrap, "bank", 1)["topics"]["known"]
    flags = ["--bootstrap-servers", broker.bootstrap]
    env_topic = {"ZOOMGUARD_TOPICS__KNOWN": topic}
    hashes = ["3f18cef3407e8678e483fb1937d14067188e58d21c6eac5f783103f157a3f50e", "a" * 64]
    listing = tmp_path / "partner.csv"
    listing.write_text(
        "pdq,label,source,note\n"
        f"{hashes[0]},ai_generated,partner-2026-11,viral\n"
        "not-a-hash,real,,\n"
        f"{hashes[1].upper()},real,,\n"
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in env_topic.items():
            env.setenv(name, value)
        assert main(["bank", "import", str(listing), *flags]) == 0
        out = capsys.readouterr()
        assert "2 entries published" in out.out and "line 3:" in out.err
        assert main(["bank", "remove", f"import:{hashes[1]}", *flags]) == 0
        exported = tmp_path / "export.csv"
        assert main(["bank", "export", "--out", str(exported), *flags]) == 0
    rows = exported.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(hashes[0] + ",ai_generated")
    [entry] = read_bank(KafkaSettings(bootstrap_servers=broker.bootstrap), topic, timeout_s=30)
    assert (entry.entry_id, entry.source, entry.decided_by, entry.note) == (
        f"import:{hashes[0]}", "import", "partner-2026-11", "viral"
    )  # fmt: skip
    assert json.loads(entry.model_dump_json())["label"] == "ai_generated"

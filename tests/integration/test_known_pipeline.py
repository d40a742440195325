"""Known content in the real worker (real broker, real vLLM CPU engine): a reviewer's decision on one upload,
written by another Kafka client (librdkafka, as reviewers' tools write it) with only the event id and the label,
is joined by `bank feed` with that upload's hash; the bank entry then decides a re-encoded, resized copy on a
running worker without a model call; a later opposite decision flips the next copy; a worker started afterwards
decides another copy the same way; an unrelated upload still goes to the model. `zoomguard bank` imports and
exports."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.kafka_helpers import RunningService, TopicWatcher, image_event, inline, kafka_overrides, produce, wait_for
from tests.support import LoopThread, RecordingEngine, tiny_settings
from zoomguard.app.bank import read_bank
from zoomguard.app.bank_feed import feed_bank
from zoomguard.app.config import Settings
from zoomguard.cli import main
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.known.bank import BankEntry
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.samples import encode


@pytest.fixture(scope="module")
def photos() -> tuple[Image.Image, Image.Image]:
    from sklearn.datasets import load_sample_images  # ships its two photos; no download

    china, flower = (Image.fromarray(array).reduce(2) for array in load_sample_images().images)
    return china, flower


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


class _Feed:
    """`zoomguard bank feed` running on the test loop."""

    def __init__(self, loop: LoopThread, settings: Settings):
        self._loop, self._stop = loop, asyncio.Event()
        self.entries: list[BankEntry] = []

        async def launch() -> asyncio.Task[Any]:
            return asyncio.create_task(feed_bank(settings, self._stop, on_entry=self.entries.append))

        self._task = loop.run(launch())

    def stop(self) -> Any:
        async def finish() -> Any:
            self._stop.set()
            return await self._task

        return self._loop.run(finish(), timeout=60)


def _decide_with_librdkafka(bootstrap: str, topic: str, event_id: str, label: str, reviewer: str) -> None:
    """A reviewer's tool writes only the event and the label: zoomguard joins the image itself."""
    from confluent_kafka import Producer

    decision = {"schema_version": 1, "event_id": event_id, "label": label, "reviewer": reviewer,
                "decided_at": datetime.now(UTC).isoformat()}  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=event_id.encode(), value=json.dumps(decision).encode())
    assert producer.flush(30) == 0


def _verdict(watcher: TopicWatcher, event_id: str) -> dict[str, Any]:
    wait_for(lambda: event_id in watcher.event_ids(), 240, f"the verdict of {event_id}")
    return [v for v in watcher.values if v["event_id"] == event_id][-1]


def test_one_decision_decides_every_copy_on_every_worker(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine,
    photos: tuple[Image.Image, Image.Image],
) -> None:  # fmt: skip
    china, flower = photos
    kafka = kafka_overrides(broker.bootstrap, "known", 2)
    topics = kafka["topics"]
    settings = tiny_settings(
        str(tiny_model), **kafka, worker={"audit_rate": 0.0, "max_in_flight": 4, "low_water": 1},
        known={"feed_group_id": f"{kafka['kafka']['group_id']}-bank", "join_wait_s": 60},
    )  # fmt: skip
    copies = {  # what other apps make of the same upload
        "copy-resized": _jpeg(china.resize((china.width * 3 // 4, china.height * 3 // 4)), 80),
        "copy-recompressed": _jpeg(china, 50),
        "copy-png": encode(china.resize((china.width // 2, china.height // 2)), "PNG"),
    }
    engine = RecordingEngine(inprocess_engine)
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    feed = _Feed(loop, settings)
    running = RunningService(loop, settings, engine)  # type: ignore[arg-type]

    def send(event_id: str, data: bytes) -> dict[str, Any]:
        produce(broker.bootstrap, topics["input"], [(event_id.encode(), image_event(event_id, inline(data)))])
        return _verdict(watcher, event_id)

    def decide_and_wait(label: str, reviewer: str) -> float:
        started, published = time.monotonic(), len(feed.entries)
        _decide_with_librdkafka(broker.bootstrap, topics["review_decisions"], "first-upload", label, reviewer)
        wait_for(lambda: len(feed.entries) > published, 60, "the feed to publish the decision's bank entry")
        return time.monotonic() - started

    try:
        first = send("first-upload", _jpeg(china, 95))  # nobody knows it yet: the model decides
        assert first["decision_source"] == "model" and first["image"]["pdq"]
        decide_and_wait("ai_generated", "alice")
        # the running worker hears of the entry through the bank's topic within a poll: send copies until one
        # is decided by it (each is a new upload, so none is served from the cache)
        resized = _until_known(send, "copy-resized", copies["copy-resized"], "ai_generated")
        unrelated = send("unrelated", _jpeg(flower, 90))
        decide_and_wait("real", "bob")  # the reviewer changes their mind
        flipped = _until_known(send, "copy-recompressed", copies["copy-recompressed"], "real")
    finally:
        running.stop()
        feed_stats = feed.stop()
    assert feed_stats.published == 2 and feed_stats.unjoinable == 0
    [entry] = {e.entry_id: e for e in feed.entries}.values()
    assert entry.entry_id == "review:first-upload" and entry.pdq == first["image"]["pdq"] and entry.label == "real"
    assert resized["decision"] == "ai_generated" and resized["decision_source"] == "known_content"
    assert resized["p_ai"] is None and not resized["cache_hit"]
    [item] = resized["evidence"]
    assert item["kind"] == "known_content" and item["source"] == "review:first-upload" and "alice" in item["detail"]
    assert resized["image"]["pdq"] == pdq_of_bytes(copies["copy-resized"]).hex
    assert unrelated["decision_source"] == "model" and unrelated["image"]["pdq"]
    assert flipped["decision"] == "real" and flipped["decision_source"] == "known_content"
    assert "bob" in flipped["evidence"][0]["detail"]
    # the model ran for the first upload and the unrelated one only (Query 1 once each)
    assert sum(1 for r in engine.requests if len(r.turns) == 1) == 2

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
    # every copy, and the first upload itself, the reviewer's latest way; the unrelated one by the model
    assert {v["decision"] for k, v in again.items() if k != "unrelated"} == {"real"}
    assert again["unrelated"]["decision_source"] == "model"


def _until_known(send: Callable[[str, bytes], dict[str, Any]], name: str, data: bytes, label: str) -> dict[str, Any]:
    """Send `data` as new uploads, a second apart, until the bank decides one `label`; fail after 30 s."""
    started = time.monotonic()
    attempt = 0
    while True:
        verdict = send(f"{name}-{attempt}" if attempt else name, data)
        if verdict["decision_source"] == "known_content" and verdict["decision"] == label:
            return verdict
        assert time.monotonic() - started < 30, f"{name}: the bank's entry did not reach the running worker"
        attempt += 1
        time.sleep(1.0)


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

"""Input that real producers send: compressed batches from librdkafka (confluent-kafka), and batches the client
cannot read, through the real broker and the real worker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.kafka_helpers import committed, image_event, inline, kafka_overrides, produce, read_json, run_until_handled
from tests.support import LoopThread, tiny_settings
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples

CODECS = ("gzip", "snappy", "lz4", "zstd")


def _produce_with_librdkafka(
    bootstrap: str, topic: str, codec: str, records: list[tuple[bytes, bytes]], **extra: object
) -> None:
    """One producer per codec, lingering so several records share one compressed batch."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50, "acks": "all", **extra}
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=delivered)
    assert producer.flush(30) == 0, "librdkafka did not deliver everything"
    assert not failures, failures


def _events(prefix: str, count: int, seed: int) -> list[tuple[bytes, bytes]]:
    samples = make_samples(count, seed=seed, size=(96, 80))
    return [(f"{prefix}-{i}".encode(), image_event(f"{prefix}-{i}", inline(s.data))) for i, s in enumerate(samples)]


def test_every_codec_from_librdkafka_gets_its_verdicts(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "codecs", partitions=1)
    expected: set[str] = set()
    for seed, codec in enumerate(CODECS):
        events = _events(codec, 3, seed=1300 + seed)
        _produce_with_librdkafka(broker.bootstrap, kafka["topics"]["input"], codec, events)
        expected |= {key.decode() for key, _ in events}
    settings = tiny_settings(str(tiny_model), **kafka, worker={"commit_interval_s": 0.2, "audit_rate": 0.0})

    stats = run_until_handled(loop, settings, inprocess_engine, total=len(expected))

    verdicts = Counter(v["event_id"] for v in read_json(broker.bootstrap, kafka["topics"]["verdicts"]))
    assert verdicts == Counter(expected), "every compressed record gets exactly one verdict"
    assert read_json(broker.bootstrap, kafka["topics"]["dead_letter"]) == []
    assert stats.outcomes == Counter({"verdict": len(expected)})


def test_a_batch_the_client_cannot_read_is_dead_lettered_and_the_partition_moves_on(
    loop: LoopThread,
    broker: EmbeddedBroker,
    tiny_model: Path,
    inprocess_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a worker without the snappy library met: UnsupportedCodecError on every poll, a crash loop."""
    kafka = kafka_overrides(broker.bootstrap, "unreadable", partitions=2)
    topic = kafka["topics"]["input"]
    before = _events("plain-before", 2, seed=1400)
    produce(broker.bootstrap, topic, list(before))
    unreadable = _events("snappy", 3, seed=1401)
    _produce_with_librdkafka(broker.bootstrap, topic, "snappy", unreadable)
    after = _events("plain-after", 2, seed=1402)
    produce(broker.bootstrap, topic, list(after))
    monkeypatch.setattr("kafka.codec.has_snappy", lambda: False)  # as on a machine without python-snappy
    settings = tiny_settings(
        str(tiny_model),
        **kafka,
        worker={"commit_interval_s": 0.2, "audit_rate": 0.0, "retry_initial_s": 0.05, "unreadable_attempts": 2},
    )

    stats = run_until_handled(loop, settings, inprocess_engine, total=len(before) + len(unreadable) + len(after))

    letters = read_json(broker.bootstrap, kafka["topics"]["dead_letter"])
    assert len(letters) == len(unreadable), letters
    assert {(letter["stage"], letter["error"]["kind"], letter["original_omitted"]) for letter in letters} == {
        ("consume", "unreadable_record", "unreadable")
    }
    assert all("snappy" in letter["error"]["message"] for letter in letters)
    pointed = sorted((letter["source"]["partition"], letter["source"]["offset"]) for letter in letters)
    assert [partition for partition, _ in pointed] == [0, 0, 0]
    offsets = [offset for _, offset in pointed]
    assert offsets == list(range(offsets[0], offsets[0] + len(unreadable))), "one letter per unreadable offset"
    verdicts = Counter(v["event_id"] for v in read_json(broker.bootstrap, kafka["topics"]["verdicts"]))
    assert verdicts == Counter(k.decode() for k, _ in before + after), "records around the bad batch are served"
    assert stats.outcomes == Counter({"verdict": len(before) + len(after), "dead_letter": len(unreadable)})
    ends = committed(broker.bootstrap, kafka["kafka"]["group_id"], topic, 2)
    assert ends[0] is not None and ends[0] > offsets[-1], f"the partition moved past the batch: {ends}"

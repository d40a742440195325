"""Readers with nowhere to dead-letter meet a batch the Kafka client cannot read: the bank follower every worker
runs and the bank feed's decision consumer skip it (logged, counted) and go on, on the real broker.

The unreadable batch is the real case: librdkafka compressed it with snappy, and this client lacks snappy (as on
a machine without python-snappy)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.kafka_helpers import kafka_overrides, produce, wait_for
from tests.support import LoopThread, tiny_settings
from zoomguard.app.bank import ensure_bank_topic
from zoomguard.app.bank_feed import FeedStats, feed_bank
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.follow import TopicFollower
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.known.bank import BankEntry, record_of
from zoomguard.samples import make_samples


def _snappy_batch(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """One lingering librdkafka producer: the records share one snappy batch on partition 0."""
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "snappy", "linger.ms": 50, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0)
    assert producer.flush(30) == 0


def _entries(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(count):
        entry = BankEntry.model_validate(
            {"entry_id": f"review:{prefix}-{i}", "pdq": f"{i + 1:064x}", "label": "ai_generated",
             "source": "review", "decided_at": datetime.now(UTC)}
        )  # fmt: skip
        key, value = record_of(entry)
        out.append((key, value))
    return out


def test_the_bank_follower_skips_what_it_cannot_read_and_loads_the_rest(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = kafka_overrides(broker.bootstrap, "follow-unreadable")["topics"]["known"]
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    ensure_bank_topic(kafka, topic)
    before, unreadable, after = _entries("before", 2), _entries("snappy", 3), _entries("after", 2)
    produce(broker.bootstrap, topic, [(k, v) for k, v in before])
    _snappy_batch(broker.bootstrap, topic, unreadable)
    produce(broker.bootstrap, topic, [(k, v) for k, v in after])
    monkeypatch.setattr("kafka.codec.has_snappy", lambda: False)

    async def load() -> tuple[list[bytes | None], int, int]:
        follower = TopicFollower(kafka, topic, poll_ms=200, unreadable_attempts=2)
        keys: list[bytes | None] = []
        failures = 0
        try:
            for _ in range(200):
                try:
                    keys += [key for key, _ in await follower.read_keyed()]
                except Exception:  # the first attempts at the batch raise, as a bad fetch would
                    failures += 1
                if await follower.caught_up():
                    return keys, failures, follower.skipped_unreadable
            raise AssertionError(f"the follower never caught up; read {keys}")
        finally:
            await follower.close()

    keys, failures, skipped = asyncio.run(load())

    assert sorted(k or b"" for k in keys) == sorted(k for k, _ in before + after), "every readable entry, once"
    assert skipped == len(unreadable), "one skip per unreadable offset"
    assert failures >= 1, "a failed read is retried before anything is skipped"


def _decision(event_id: str, image: bytes) -> bytes:
    return json.dumps(
        {"schema_version": 1, "event_id": event_id, "label": "ai_generated", "reviewer": "r1",
         "decided_at": datetime.now(UTC).isoformat(), "image": {"data_b64": base64.b64encode(image).decode()}}
    ).encode()  # fmt: skip


def test_the_bank_feed_skips_decisions_it_cannot_read_and_publishes_the_rest(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "feed-unreadable", partitions=1)
    topics = kafka["topics"]
    settings = tiny_settings(
        str(tiny_model), **kafka, known={"feed_group_id": f"{kafka['kafka']['group_id']}-bank", "join_wait_s": 5}
    )
    images = [s.data for s in make_samples(7, seed=1501, size=(96, 80))]
    readable = [(f"ok-{i}".encode(), _decision(f"ok-{i}", images[i])) for i in range(2)]
    unreadable = [(f"bad-{i}".encode(), _decision(f"bad-{i}", images[2 + i])) for i in range(3)]
    later = [(f"ok-{i}".encode(), _decision(f"ok-{i}", images[i])) for i in range(5, 7)]
    produce(broker.bootstrap, topics["review_decisions"], list(readable))
    _snappy_batch(broker.bootstrap, topics["review_decisions"], unreadable)
    produce(broker.bootstrap, topics["review_decisions"], list(later))
    monkeypatch.setattr("kafka.codec.has_snappy", lambda: False)
    stop = asyncio.Event()
    entries: list[BankEntry] = []

    async def launch() -> asyncio.Task[FeedStats]:
        return asyncio.create_task(feed_bank(settings, stop, on_entry=entries.append))

    task = loop.run(launch())
    try:
        wait_for(lambda: len(entries) >= len(readable) + len(later), 120, "entries for every readable decision")
    finally:

        async def finish() -> FeedStats:
            stop.set()
            return await task

        stats = loop.run(finish(), timeout=60)
    assert sorted(e.entry_id for e in entries) == sorted(f"review:{k.decode()}" for k, _ in readable + later)
    assert stats.unreadable == len(unreadable)
    assert stats.published == len(readable) + len(later)

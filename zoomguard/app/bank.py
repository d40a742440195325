"""The known-content bank on Kafka for the `bank` command: entries published (and acknowledged), or read back.

Workers read the same topic themselves (worker/known_bank.py); this is for people and their lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka.errors import KafkaError

from zoomguard.errors import BadInputError, UnavailableError
from zoomguard.kafka.clients import ensure_topics, make_producer
from zoomguard.kafka.reading import read_to_end
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.known.bank import BankEntry, Removal, decode_record, record_of, tombstone_of

COMPACTED = {"cleanup.policy": "compact"}  # the latest record per entry id is the bank


def ensure_bank_topic(kafka: KafkaSettings, topic: str) -> None:
    ensure_topics(kafka, [topic], configs=COMPACTED)


def publish_entries(kafka: KafkaSettings, topic: str, entries: Iterable[BankEntry | Removal], timeout_s: float) -> int:
    """Send every entry (or tombstone) keyed by its id; return once all are acknowledged, else UnavailableError."""
    try:
        producer = make_producer(kafka)
    except KafkaError as exc:
        raise UnavailableError(f"cannot reach Kafka to publish to {topic}: {exc}") from exc
    try:
        futures = []
        for entry in entries:
            key, value = tombstone_of(entry.entry_id) if isinstance(entry, Removal) else record_of(entry)
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)
        return len(futures)
    except KafkaError as exc:
        raise UnavailableError(f"bank entries were not acknowledged on {topic}: {exc}") from exc
    finally:
        producer.close(timeout=10)


def read_bank(
    kafka: KafkaSettings, topic: str, timeout_s: float, skipped: Callable[[str], None] | None = None
) -> list[BankEntry]:
    """The bank as the topic holds it now: the latest record per entry id, tombstones applied."""
    entries: dict[str, BankEntry] = {}
    for record in read_to_end(kafka, topic, timeout_s=timeout_s, timeout_setting="known.io_timeout_s"):
        try:
            change = decode_record(record.key, record.value)
        except BadInputError as exc:
            if skipped is not None:
                skipped(str(exc))
            continue
        if isinstance(change, Removal):
            entries.pop(change.entry_id, None)
        else:
            entries[change.entry_id] = change
    return list(entries.values())

"""Send one record and wait for the broker's acknowledgement: for callers whose next step depends on it.

A promotion moves the registry pointer only after its ModelUpdate was acknowledged, so the send must be
confirmed (acks=all), not just queued.
"""

from __future__ import annotations

from kafka.errors import KafkaError

from zoomguard.errors import UnavailableError
from zoomguard.kafka.clients import make_producer
from zoomguard.kafka.settings import KafkaSettings


class NotAcknowledgedError(UnavailableError):
    """The broker was reached but did not acknowledge the record; the caller may say what that leaves."""

    def __init__(self, message: str, topic: str):
        super().__init__(message)
        self.topic = topic


def send_and_wait(kafka: KafkaSettings, topic: str, key: bytes, value: bytes, timeout_s: float) -> None:
    """Send `value` keyed by `key` on `topic`; return once acknowledged, else raise UnavailableError."""
    name = key.decode(errors="replace")
    try:
        producer = make_producer(kafka)
    except KafkaError as exc:
        raise UnavailableError(f"cannot reach Kafka to publish {name}: {exc}") from exc
    try:
        producer.send(topic, key=key, value=value).get(timeout=timeout_s)
    except KafkaError as exc:
        raise NotAcknowledgedError(f"{name} was not acknowledged on {topic}: {exc}", topic) from exc
    finally:
        producer.close(timeout=10)

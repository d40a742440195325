"""Publishing reviewers' decisions with acks: the review tools' producer (reading lives in zoomguard.kafka)."""

from __future__ import annotations

import contextlib

from kafka import KafkaProducer
from kafka.errors import KafkaError

from zoomguard.errors import UnavailableError
from zoomguard.kafka.clients import make_producer
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.schemas.review import ReviewDecision

RECONNECT_BACKOFF_MAX_MS = 2000  # the webhook flusher's producer: how stale its view of a returning broker may be


class DecisionPublisher:
    """Publishes ReviewDecisions keyed by event_id and waits for the broker's ack (acks=all) on each call."""

    def __init__(self, kafka: KafkaSettings, topic: str, ack_timeout_s: float, producer: KafkaProducer | None = None):
        self._producer = producer or make_producer(kafka)
        self._topic = topic
        self._timeout = ack_timeout_s

    def publish(self, decisions: list[ReviewDecision]) -> None:
        """Send all, then wait for every ack; UnavailableError when the broker did not acknowledge them all."""
        try:
            futures = [
                self._producer.send(self._topic, key=d.event_id.encode(), value=d.model_dump_json().encode())
                for d in decisions
            ]
            self._producer.flush(timeout=self._timeout)
            for future in futures:
                future.get(timeout=self._timeout)
        except KafkaError as exc:
            raise UnavailableError(f"the broker did not acknowledge the decisions: {exc!r}") from exc

    def close(self) -> None:
        try:
            self._producer.flush(timeout=self._timeout)
        finally:
            self._producer.close(timeout=self._timeout)

    def abort(self) -> None:
        """Drop the producer now, failing what it still holds (after an error, before making a new one).

        kafka-python's close() flushes first and raises while records are pending, which would leave its
        sender thread running; forcing the sender closed fails the pending batches, then close() completes.
        """
        try:
            self._producer.close(timeout=0)
        except KafkaError:
            sender = getattr(self._producer, "_sender", None)
            if sender is not None:
                sender.force_close()
                sender.join(timeout=5)
            with contextlib.suppress(KafkaError):
                self._producer.close(timeout=0)


def spool_publisher(kafka: KafkaSettings, topic: str, ack_timeout_s: float) -> DecisionPublisher:
    """The webhook flusher's publisher, with its own producer; UnavailableError when Kafka cannot be reached.

    Not idempotent: after a broker restart kafka-python's idempotent producer fails for good (UnknownProducerId),
    and the flusher resends what was not acknowledged anyway. One request in flight keeps the spool's order.
    Connecting and waiting for metadata are bounded by the ack timeout, so an outage is noticed and retried;
    reconnects stay frequent (kafka-python's default backoff grows to 30 s) so a returning broker is seen soon.
    """
    timeout_ms = int(ack_timeout_s * 1000)
    try:
        producer = make_producer(
            kafka,
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            max_block_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
    except KafkaError as exc:
        raise UnavailableError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc!r}") from exc
    return DecisionPublisher(kafka, topic, ack_timeout_s, producer=producer)

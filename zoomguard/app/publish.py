"""How a promotion's ModelUpdate reaches the workers: the `publish` that `promote` is given.

The promotion flow only knows it must publish before it moves the registry pointer; this wiring says
where (kafka, topics.model_updates) and how long to wait for the ack (evaluation.publish_timeout_s).
"""

from __future__ import annotations

from collections.abc import Callable

from zoomguard.app.config import Settings
from zoomguard.errors import UnavailableError
from zoomguard.kafka.publish import NotAcknowledgedError, send_and_wait
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.schemas.review import ModelUpdate


def publish_model_update(kafka: KafkaSettings, topic: str, timeout_s: float, update: ModelUpdate) -> None:
    """Send the ModelUpdate keyed by its version and wait for the broker's acknowledgement (acks=all)."""
    try:
        send_and_wait(kafka, topic, update.model_version.encode(), update.model_dump_json().encode(), timeout_s)
    except NotAcknowledgedError as exc:
        raise UnavailableError(
            f"ModelUpdate {update.model_version} was not acknowledged on {exc.topic}: {exc.__cause__}; "
            "the registry still serves the previous version"
        ) from exc.__cause__


def model_update_publisher(settings: Settings) -> Callable[[ModelUpdate], None]:
    """`publish` for `promote`, bound to this process's broker, topic and ack timeout."""

    def publish(update: ModelUpdate) -> None:
        publish_model_update(
            settings.kafka, settings.topics.model_updates, settings.evaluation.publish_timeout_s, update
        )

    return publish

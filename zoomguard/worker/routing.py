"""What goes where: the verdict always; a review request for uncertain, unparseable and audit-sampled ones.

Pure functions over typed values. The audit sample is decided by a hash of the event id, so a redelivered
event makes the same choice and the sample stays unbiased (independent of the decision and its score).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zoomguard.schemas.detection import Detection
from zoomguard.schemas.events import ImageEvent, ReviewReason, ReviewRequest, SourceRecord, VerdictEvent

# (verdict, image reviewers see, review reason) -> the review tool's task; built by review (Label Studio),
# handed in by the wiring so the worker does not depend on the review tool.
ReviewTaskBuilder = Callable[[VerdictEvent, str, str], dict[str, Any]]


@dataclass(frozen=True)
class Routed:
    verdict: VerdictEvent
    review: ReviewRequest | None


def review_reason(detection: Detection, event_id: str, audit_rate: float) -> ReviewReason | None:
    if detection.reason in ("unparseable_locate", "unparseable_examine"):
        return "unparseable"
    if detection.decision == "uncertain":
        return "uncertain"
    if in_audit_sample(event_id, audit_rate):
        return "audit"
    return None


def in_audit_sample(event_id: str, rate: float) -> bool:
    """Deterministic per event id: uniform in [0, 1) from its sha256."""
    if rate <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


def route(
    detection: Detection,
    event: ImageEvent,
    source: SourceRecord,
    *,
    audit_rate: float,
    review_image: str,
    review_task: ReviewTaskBuilder,
    now: datetime | None = None,
) -> Routed:
    """Build the outputs of one event; `review_image` is the URL or data URI reviewers will see."""
    reason = review_reason(detection, event.event_id, audit_rate)
    verdict = VerdictEvent(
        **detection.model_dump(),
        event_id=event.event_id,
        content_id=event.content_id,
        submitted_at=event.submitted_at,
        processed_at=now or datetime.now(UTC),
        review_requested=reason is not None,
        metadata=event.metadata,
        source=source,
    )
    review = None
    if reason is not None:
        review = ReviewRequest(
            event_id=event.event_id,
            content_id=event.content_id,
            reason=reason,
            verdict=verdict,
            label_studio_task=review_task(verdict, review_image, reason),
        )
    return Routed(verdict, review)

"""The events on every topic. Versioned (schema_version), validated, documented in the README.

Input events are untrusted: sizes and shapes are bounded here, before any work is done on them.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from zoomguard.schemas.detection import Detection, ErrorInfo

EVENT_SCHEMA_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,200}$"
MAX_METADATA_BYTES = 16 * 1024


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageRef(_Event):
    """Exactly one of: an http(s) URL to fetch, or the image bytes inline as base64."""

    url: str | None = Field(None, max_length=4096, description="http(s) URL of the image")
    data_b64: str | None = Field(None, description="the image bytes, base64 (standard alphabet)")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.url is None) == (self.data_b64 is None):
            raise ValueError("image needs exactly one of 'url' or 'data_b64'")
        if self.url is not None and not self.url.lower().startswith(("http://", "https://")):
            raise ValueError("image.url must be http:// or https://")
        return self

    def inline_bytes(self) -> bytes:
        """Decode data_b64 strictly (a malformed payload is bad input, not a crash)."""
        assert self.data_b64 is not None
        try:
            return base64.b64decode(self.data_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"image.data_b64 is not valid base64: {exc}") from None


class ImageEvent(_Event):
    """Input on `images.submitted`: one uploaded image to moderate."""

    schema_version: Literal[1] = 1
    event_id: str = Field(pattern=ID_PATTERN, description="unique per submission; the output key")
    content_id: str = Field(pattern=ID_PATTERN, description="the platform's id of the post or upload")
    submitted_at: AwareDatetime = Field(description="when the upload happened (ISO 8601 with offset)")
    image: ImageRef
    metadata: dict[str, Any] = Field(default_factory=dict, description="passed through to the verdict")

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        import json

        size = len(json.dumps(value, default=str))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
        return value


class SourceRecord(_Event):
    """Where an output came from: the input record's coordinates."""

    topic: str
    partition: int
    offset: int


class VerdictEvent(Detection):
    """Output on `images.verdicts`: exactly one per processable input (key = event_id)."""

    event_id: str
    content_id: str
    submitted_at: datetime
    processed_at: datetime
    review_requested: bool
    cache_hit: bool = Field(False, description="served from the verdict cache (a repost of the same image)")
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: SourceRecord


ReviewReason = Literal["uncertain", "unparseable", "audit"]


class ReviewRequest(_Event):
    """Output on `images.review`: a verdict a human should check, with a ready Label Studio task."""

    schema_version: int = EVENT_SCHEMA_VERSION
    event_id: str
    content_id: str
    reason: ReviewReason
    verdict: VerdictEvent
    label_studio_task: dict[str, Any]


DeadLetterStage = Literal["consume", "parse", "fetch", "decode", "detect"]


class DeadLetter(_Event):
    """Output on `images.dlq`: input that can never be processed, with everything needed to replay it."""

    schema_version: int = EVENT_SCHEMA_VERSION
    event_id: str | None = Field(None, description="when the record was readable enough to have one")
    original_key_b64: str | None
    original_value_b64: str | None = Field(
        description="the record's value, base64; null when it would not fit in a dead-letter record"
    )
    original_value_bytes: int = Field(0, description="size of the original value")
    original_value_sha256: str = Field("", description="sha256 of the original value (replay from the source)")
    original_omitted: str | None = Field(None, description="why original_value_b64 is null (too_large, unreadable)")
    source: SourceRecord
    error: ErrorInfo
    stage: DeadLetterStage
    attempts: int
    failed_at: datetime

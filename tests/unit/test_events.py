"""Input events are untrusted: schema, ids, image reference and size are checked before any work."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from zoomguard.schemas.events import MAX_METADATA_BYTES, ImageEvent

BASE = {"schema_version": 1, "event_id": "e-1", "content_id": "c-1", "submitted_at": "2026-11-24T10:00:00+01:00"}


def test_valid_inline_and_url_events() -> None:
    inline = ImageEvent.model_validate({**BASE, "image": {"data_b64": base64.b64encode(b"abc").decode()}})
    assert inline.image.inline_bytes() == b"abc"
    by_url = ImageEvent.model_validate({**BASE, "image": {"url": "https://cdn.example/a.jpg"}})
    assert by_url.image.url == "https://cdn.example/a.jpg"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": {}}, "exactly one"),
        ({"image": {"url": "https://a/b", "data_b64": "YQ=="}}, "exactly one"),
        ({"image": {"url": "file:///etc/passwd"}}, "http"),
        ({"image": {"url": "https://a/b"}, "event_id": ""}, "event_id"),
        ({"image": {"url": "https://a/b"}, "event_id": "has spaces and ünïcode"}, "event_id"),
        ({"image": {"url": "https://a/b"}, "submitted_at": "2026-11-24T10:00:00"}, "timezone"),
        ({"image": {"url": "https://a/b"}, "schema_version": 2}, "schema_version"),
        ({"image": {"url": "https://a/b"}, "surprise": 1}, "surprise"),
        ({"image": {"url": "https://a/b"}, "metadata": {"blob": "x" * (MAX_METADATA_BYTES + 1)}}, "metadata"),
    ],
)
def test_invalid_events(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ImageEvent.model_validate({**BASE, **change})


def test_bad_base64_is_a_value_error() -> None:
    event = ImageEvent.model_validate({**BASE, "image": {"data_b64": "@@@"}})
    with pytest.raises(ValueError, match="base64"):
        event.image.inline_bytes()

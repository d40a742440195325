"""Metadata evidence of one upload: IPTC source type in XMP, and generator metadata; never raises on its bytes.

Most uploads carry nothing, so `sniff` decides first: it walks only the chunk headers and looks for the few
markers a reader needs (a `DigitalSourceType` property, a generator's text keyword, a UserComment encoding or
generator name in EXIF). Searching the whole file for them instead costs a few ms per marker on a 12 MP JPEG.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import TypeVar

import structlog

from zoomguard.evidence import generators, xmp
from zoomguard.evidence.containers import Blobs, Span, find_spans, read_blobs
from zoomguard.evidence.settings import MetadataSettings
from zoomguard.schemas.evidence import EvidenceItem

log = structlog.get_logger("zoomguard.evidence")

T = TypeVar("T")


def sniff(data: bytes, settings: MetadataSettings) -> bool:
    """Whether the readers could find anything: microseconds, no copy, no inflate."""
    try:
        return _any_worth_reading(data, find_spans(data, settings.max_chunks))
    except Exception as exc:  # a walker bug must not fail the message; the readers then get their chance
        log.warning("metadata sniff failed", error=repr(exc)[:200])
        return True


def _any_worth_reading(data: bytes, spans: list[Span]) -> bool:
    return any(_worth_reading(data, span) for span in spans) or _marker_across_portions(data, spans)


def _marker_across_portions(data: bytes, spans: list[Span]) -> bool:
    """A marker cut in two where one Extended XMP portion ends and the next begins (writers emit them in order,
    and a portion is cut at a byte count, not between properties)."""
    width = max(map(len, xmp.SNIFF_MARKERS)) - 1
    portions = [span for span in spans if span.kind == "xmp_ext"]
    for before, after in pairwise(portions):
        seam = data[max(before.start, before.end - width) : before.end] + data[after.start : after.start + width]
        if any(marker in seam for marker in xmp.SNIFF_MARKERS):
            return True
    return False


def _worth_reading(data: bytes, span: Span) -> bool:
    if span.kind == "text":
        return span.key in generators.TEXT_KEYS
    if span.chunk == b"zTXt" or (span.chunk == b"iTXt" and data[span.start] != 0):  # compressed: let it look
        return True
    markers = xmp.SNIFF_MARKERS if span.kind in ("xmp", "xmp_ext") else generators.SNIFF_MARKERS
    return any(data.find(marker, span.start, span.end) >= 0 for marker in markers)


def read_metadata(data: bytes, settings: MetadataSettings) -> list[EvidenceItem]:
    """The XMP and generator claims of the upload, deduplicated. Hostile bytes give a warning and what was found."""
    if not settings.enabled:
        return []
    spans: list[Span] = _guarded("containers", partial(find_spans, data, settings.max_chunks), [])
    if not _any_worth_reading(data, spans):
        return []
    blobs = _guarded("containers", partial(read_blobs, data, spans, settings), Blobs())
    if blobs.dropped:
        log.warning("metadata over limits or malformed, skipped", blobs=blobs.dropped)
    found: list[EvidenceItem] = []
    extensions = dict(blobs.extended_xmp)
    for packet in blobs.xmp:
        read = partial(xmp.read_xmp, packet, extensions) if extensions else partial(xmp.read_xmp, packet)
        found.extend(_guarded("xmp", read, []))
    found.extend(_guarded("generators", partial(generators.read_generators, blobs), []))
    return list(dict.fromkeys(found))


def _guarded(reader: str, read: Callable[[], T], default: T) -> T:
    try:
        return read()
    except Exception as exc:  # hostile input must never fail the message: log it, keep what the others found
        log.warning("metadata reader failed", reader=reader, error=repr(exc)[:200])
        return default

"""Every evidence reader the settings enable: one function over the raw bytes (the cascade's first stage), and
one over the decoded pixels (the invisible watermarks, read on the decode the model would use)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from PIL import Image

from zoomguard.evidence.c2pa_reader import C2paReader, load_anchors
from zoomguard.evidence.metadata import read_metadata
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.evidence.watermark import read_watermarks
from zoomguard.schemas.evidence import EvidenceItem

Reader = Callable[[bytes], list[EvidenceItem]]
PixelReader = Callable[[Image.Image], list[EvidenceItem]]


def build_reader(settings: EvidenceSettings) -> Reader | None:
    """None when evidence is off; otherwise the enabled readers, run in turn (each sniffs first, never raises).

    Bad trust anchors are a ConfigError here, at start-up, not a silent "untrusted" on every upload."""
    if not settings.enabled:
        return None
    readers: list[Reader] = []
    if settings.c2pa.enabled:
        c2pa = C2paReader(settings.c2pa, load_anchors(settings.c2pa))
        lock = threading.Lock()  # one native context, reads come from many threads: no claim it is thread-safe

        def read_c2pa(data: bytes) -> list[EvidenceItem]:
            with lock:
                return c2pa.read(data, "")

        readers.append(read_c2pa)
    if settings.metadata.enabled:
        metadata = settings.metadata
        readers.append(lambda data: read_metadata(data, metadata))

    def read(data: bytes) -> list[EvidenceItem]:
        found: list[EvidenceItem] = []
        for reader in readers:
            found.extend(item for item in reader(data) if item not in found)
        return found

    return read


def build_pixel_reader(settings: EvidenceSettings) -> PixelReader | None:
    """None when evidence or the watermark reader is off; otherwise the reader of the decoded RGB upload."""
    if not settings.enabled or not settings.watermark.enabled:
        return None
    watermark = settings.watermark
    return lambda image: read_watermarks(image, watermark)

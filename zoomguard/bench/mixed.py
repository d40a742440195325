"""The stream the cascade is for: a share of uploads carry marks, a share are near-duplicates of known images.

The near-duplicates are resized, re-encoded copies of originals whose PDQ hashes are published to the bank topic
before the run (as reviewers' decisions would be), so the worker decides them by known content; the marked ones are
decided by their evidence. Set against a stream of fresh uploads in the same run, the ratio is the throughput the
cascade buys. Each copy is checked to be within the bank's match distance of its original, and each mark to be read
by the worker's readers, so the report counts what really was decidable.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image

from zoomguard.bench.evidence import textured, with_marks
from zoomguard.known.bank import BankEntry
from zoomguard.known.hashing import hamming, pdq_of_image
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.images import decode_image
from zoomguard.samples import make_image


@dataclass(frozen=True)
class MixedStream:
    uploads: list[bytes]
    entries: list[BankEntry]  # the bank the worker must hold before the first upload
    marked: int  # marks the worker's readers find
    copies: int  # copies within the bank's match distance of their original


def near_duplicate(image: Image.Image) -> bytes:
    """What a repost looks like: scaled to 90% and re-saved as a JPEG of another quality."""
    width, height = image.size
    smaller = image.resize((max(1, width * 9 // 10), max(1, height * 9 // 10)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def mixed_stream(
    fresh: list[bytes], marked_share: float, copy_share: float, size: tuple[int, int], seed: int
) -> MixedStream:
    """`fresh` with evenly spread shares replaced by marked uploads and by copies of bank entries (labels alternate)."""
    uploads, marked = with_marks(fresh, marked_share, size, seed=seed)
    count = int(len(fresh) * copy_share)
    known = KnownContentSettings()
    entries: list[BankEntry] = []
    copies = 0
    taken = {index for index, (a, b) in enumerate(zip(uploads, fresh, strict=True)) if a is not b}
    free = [index for index in range(len(uploads)) if index not in taken]
    step = len(free) / count if count else 0.0
    for number in range(count):
        original = textured(make_image(seed + 10_000 + number, size))  # texture: a flat scene hashes below quality 50
        pdq = pdq_of_image(original, known.hash_size)
        entries.append(
            BankEntry(
                entry_id=f"import:bench-{seed}-{number}",
                pdq=pdq.hex,
                quality=pdq.quality,
                label="ai_generated" if number % 2 == 0 else "real",
                source="import",
                decided_by="zoomguard bench",
                decided_at=datetime.now(UTC),
            )
        )
        copy = near_duplicate(original)
        uploads[free[int(number * step)]] = copy
        copied = pdq_of_image(decode_image(copy).image, known.hash_size)
        close = hamming(copied.hex, pdq.hex) <= known.max_distance
        copies += close and pdq.quality >= known.min_quality and copied.quality >= known.min_quality
    return MixedStream(uploads, entries, marked, copies)

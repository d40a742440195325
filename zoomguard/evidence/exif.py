"""The two EXIF fields generators write: Software (0x0131, IFD0) and UserComment (0x9286, Exif IFD).

Why not Pillow's `Image.Exif`: its IFD parser reports hostile entries through `warnings.warn` (process-wide, and
not thread-safe to silence per call) and has raised TypeError on retyped tags; two tags need ~40 lines that read
only inside the blob and follow exactly one pointer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOFTWARE, EXIF_IFD, USER_COMMENT = 0x0131, 0x8769, 0x9286
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1, 13: 4}  # BYTE, ASCII, SHORT, LONG, UNDEFINED, IFD
_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class ExifFields:
    software: str | None = None
    user_comment: bytes | None = None


def read_exif(tiff: bytes) -> ExifFields:
    """Software and raw UserComment of a TIFF-structured EXIF blob (no `Exif\\0\\0` prefix); absent when malformed."""
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 8:
        return ExifFields()
    ifd0 = _entries(tiff, order, struct.unpack_from(order + "I", tiff, 4)[0])
    software = _value(tiff, order, ifd0.get(SOFTWARE), (2,))
    pointer = _value(tiff, order, ifd0.get(EXIF_IFD), (4, 13))
    comment = None
    if pointer is not None and len(pointer) == 4:
        exif_ifd = _entries(tiff, order, struct.unpack(order + "I", pointer)[0])
        comment = _value(tiff, order, exif_ifd.get(USER_COMMENT), (7, 1, 2))
    text = software.split(b"\x00", 1)[0].decode("utf-8", "replace").strip() if software is not None else None
    return ExifFields(text or None, comment)


def _entries(tiff: bytes, order: str, offset: int) -> dict[int, tuple[int, int, int]]:
    """tag -> (type, count, entry offset) of the IFD at `offset`; the first entry of a repeated tag wins."""
    if offset < 8 or offset + 2 > len(tiff):
        return {}
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    count = min(count, _MAX_ENTRIES, (len(tiff) - offset - 2) // 12)
    entries: dict[int, tuple[int, int, int]] = {}
    for index in range(count):
        at = offset + 2 + 12 * index
        tag, kind, number = struct.unpack_from(order + "HHI", tiff, at)
        entries.setdefault(tag, (kind, number, at))
    return entries


def _value(tiff: bytes, order: str, entry: tuple[int, int, int] | None, kinds: tuple[int, ...]) -> bytes | None:
    """The entry's bytes when its type is one of `kinds` and they lie inside the blob."""
    if entry is None or entry[0] not in kinds:
        return None
    kind, number, at = entry
    size = _TYPE_SIZES[kind] * number
    if size <= 4:
        return tiff[at + 8 : at + 8 + size]
    (offset,) = struct.unpack_from(order + "I", tiff, at + 8)
    return tiff[offset : offset + size] if offset + size <= len(tiff) else None


def decode_user_comment(raw: bytes) -> str:
    """The text of a UserComment: `UNICODE\\0` + UTF-16 (either byte order: writers disagree, so the zero bytes
    decide), `ASCII\\0\\0\\0` or eight NULs + text, or (as Fooocus writes it) bare UTF-8. JIS is not read."""
    head, body = raw[:8], raw[8:]
    if head == b"UNICODE\x00":
        text = body.decode(_utf16_order(body), "replace")
    elif head in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        text = body.decode("utf-8", "replace")
    elif head == b"JIS\x00\x00\x00\x00\x00":
        return ""
    else:
        text = raw.decode("utf-8", "replace")
    return text.rstrip("\x00")


def _utf16_order(body: bytes) -> str:
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    sample = body[:4096]
    # Latin text in UTF-16 has a zero high byte: first in big-endian, second in little-endian
    return "utf-16-be" if sample[0::2].count(0) >= sample[1::2].count(0) else "utf-16-le"

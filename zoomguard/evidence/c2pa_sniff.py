"""Does an upload plausibly embed a C2PA manifest store? A walk over container headers, no parsing of the store.

Why: most uploads carry none, and the sniff (microseconds) spares them the native reader (milliseconds). It looks
where each format keeps the store, as c2pa-rs writes it, and checks that a JUMBF box labelled `c2pa` (the
manifest store's description box) starts there:
- JPEG: an APP11 segment (0xFFEB, "JP" header) before the first scan;
- PNG: a `caBX` chunk anywhere before IEND. c2pa-rs writes it right after IHDR, but it reads one wherever it
  lies, and the C2PA specification only recommends placing it before the image data (other writers append it
  before IEND), so the walk goes on past IDAT, for at most _MAX_PNG_CHUNKS chunks;
- WebP: a top-level RIFF `C2PA` chunk;
- AVIF / HEIF / HEIC: a top-level `uuid` box with the C2PA UUID and purpose "manifest";
- TIFF (classic, DNG included): tag 52545 in the first IFD.
Other formats (GIF, SVG, JPEG XL, BigTIFF, video) are not sniffed, so never read; nor are remote manifests.
"""

from __future__ import annotations

import struct

# The manifest store's JUMBF description box: type "jumd", the store's UUID ("c2pa" + ISO suffix), toggles
# (0x03: requestable, label present), label "c2pa".
_STORE_UUID = b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_TIFF_TAG = 52545
_MAX_STEPS = 1024  # segments, chunks or boxes walked: bounds hostile files made of tiny headers
# PNG chunks walked: the store may follow the image data, which can be thousands of IDAT chunks (a 50 MB PNG in
# libpng's 8 kB chunks has ~6,400). Each step reads one header: ~1 us, so ~15 ms for a hostile file of 16,384
# empty chunks (196 kB), and well under a millisecond for ordinary files.
_MAX_PNG_CHUNKS = 16384
_BMFF_BRANDS = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic", b"heix": "image/heic"}


def is_store(data: bytes, at: int) -> bool:
    """A JUMBF superbox (`jumb`) whose description box says: the C2PA manifest store, labelled c2pa."""
    if len(data) < at + 38:
        return False
    return (
        data[at + 4 : at + 8] == b"jumb"
        and data[at + 12 : at + 32] == b"jumd" + _STORE_UUID
        and data[at + 32] & 0x02 != 0
        and data[at + 33 : at + 38] == b"c2pa\x00"
    )


def sniff_c2pa(data: bytes) -> str | None:
    """The MIME type of the container when `data` embeds a C2PA manifest store, else None."""
    if data[:2] == b"\xff\xd8":
        return "image/jpeg" if _jpeg(data) else None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png" if _png(data) else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp" if _webp(data) else None
    if data[4:8] == b"ftyp":
        return _BMFF_BRANDS.get(data[8:12], "image/heif") if _bmff(data) else None
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff" if _tiff(data) else None
    return None


def _jpeg(data: bytes) -> bool:
    at = 2
    for _ in range(_MAX_STEPS):
        if len(data) < at + 4 or data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan, end of image: no APP segment follows
            return False
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        # APP11: "JP", box instance (2), sequence number (4), then the JUMBF box
        if marker == 0xEB and data[at + 4 : at + 6] == b"JP" and is_store(data, at + 12):
            return True
        at += 2 + length
    return False


def _png(data: bytes) -> bool:
    at = 8
    for _ in range(_MAX_PNG_CHUNKS):
        if len(data) < at + 8:
            return False
        length, kind = struct.unpack_from(">I4s", data, at)
        if kind == b"caBX" and is_store(data, at + 8):
            return True
        if kind == b"IEND":
            return False
        at += 12 + length
    return False


def _webp(data: bytes) -> bool:
    at = 12
    for _ in range(_MAX_STEPS):
        if len(data) < at + 8:
            return False
        kind, length = struct.unpack_from("<4sI", data, at)
        if kind == b"C2PA" and is_store(data, at + 8):
            return True
        at += 8 + length + (length & 1)
    return False


def _bmff(data: bytes) -> bool:
    at = 0
    for _ in range(_MAX_STEPS):
        if len(data) < at + 8:
            return False
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and len(data) >= at + 16:  # 64-bit size
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        # uuid box: the C2PA UUID, version and flags (4), purpose "manifest\0", merkle offset (8), the store
        if kind == b"uuid" and data[at + header : at + header + 16] == _BMFF_UUID:
            body = at + header + 16
            if data[body + 4 : body + 13] == b"manifest\x00" and is_store(data, body + 21):
                return True
        if size < header:  # 0 (to the end of the file) or malformed: nothing after this box
            return False
        at += size
    return False


def _tiff(data: bytes) -> bool:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return False
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if len(data) < ifd + 2:
        return False
    (count,) = struct.unpack_from(order + "H", data, ifd)
    for entry in range(min(count, _MAX_STEPS)):
        at = ifd + 2 + 12 * entry
        if len(data) < at + 12:
            return False
        tag, _type, _count, offset = struct.unpack_from(order + "HHII", data, at)
        if tag == _TIFF_TAG:
            return is_store(data, offset)
    return False

"""Find the metadata blobs in an upload's raw bytes (JPEG segments, PNG chunks, WebP RIFF chunks), pixels untouched.

Why a walker of our own rather than `Image.open(...).info`: the three layouts are a length-prefixed loop each,
and owning the loop is what makes every limit ours and per call. Pillow's PNG text limits are process-wide
globals (`MAX_TEXT_CHUNK`, `MAX_TEXT_MEMORY`) that the decoder in `zoomguard.media` shares, and going over them
raises out of `open()`, losing every other chunk; Pillow reads PNG text after the first IDAT only when it decodes
the pixels; and `open()` also runs each format's header parsing, the code fuzzers break. Here a malformed length
ends the walk, a chunk with a bad CRC is skipped, and compressed text is inflated to a cap, never further.

The walk is split in two so the sniff stays cheap: `find_spans` only reads chunk headers (no copy, no inflate;
microseconds for a JPEG, whose metadata all precedes the first scan), `read_blobs` copies and inflates the spans.

JPEG Extended XMP (XMP specification part 3, 1.1.3.1) is read: an APP1 segment holds at most 64 kB, so a writer
with more XMP keeps a standard packet naming a GUID (`xmpNote:HasExtendedXMP`) and splits the rest over APP1
segments headed `http://ns.adobe.com/xmp/extension/`, GUID, full length and offset. Which properties move there
is the writer's choice, so a DigitalSourceType can be in the extension. It is put together only for a GUID the
standard packet holds, only when its portions tile the declared length exactly (no gap, no overlap, nothing
past the end) and that length fits the XMP cap and what is left of the text budget; anything else drops it whole.
The GUID is not checked against the MD5 of the content: it links the parts, and a mismatch would only say the
writer is wrong, which attacker-written bytes may be anyway.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Literal

from zoomguard.evidence.settings import MetadataSettings

BlobKind = Literal["xmp", "xmp_ext", "exif", "text"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXTENSION_PREFIX = b"http://ns.adobe.com/xmp/extension/\x00"
_EXTENSION_HEADER = 40  # GUID (32 hex digits), full length and offset of this portion (big-endian uint32 each)
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
EXIF_PREFIX = b"Exif\x00\x00"
XMP_PNG_KEYWORD = "XML:com.adobe.xmp"
_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True, slots=True)
class Span:
    """Where one metadata blob lies in the file: payload offsets, and for PNG text its chunk type and keyword; for
    a JPEG Extended XMP portion (`xmp_ext`) the key is the GUID, and the 8 bytes before `start` are its full
    length and offset."""

    kind: BlobKind
    start: int
    end: int
    chunk: bytes = b""
    key: str = ""


@dataclass(frozen=True)
class Blobs:
    """The metadata of one file, copied out and inflated within the limits; `dropped` counts what did not fit."""

    xmp: tuple[bytes, ...] = ()
    exif: tuple[bytes, ...] = ()
    texts: tuple[tuple[str, str], ...] = ()
    dropped: int = 0
    extended_xmp: tuple[tuple[str, bytes], ...] = ()  # (GUID, the whole extension packet) for JPEG Extended XMP

    def text(self, key: str) -> str | None:
        """The first PNG text chunk with this keyword."""
        return next((value for name, value in self.texts if name == key), None)


def find_spans(data: bytes, max_chunks: int) -> list[Span]:
    """The metadata spans of a JPEG, PNG or WebP file (any other bytes: none), walking at most `max_chunks`."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_spans(data, max_chunks)
    if data.startswith(PNG_SIGNATURE):
        return _png_spans(data, max_chunks)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_spans(data, max_chunks)
    return []


def _jpeg_spans(data: bytes, max_chunks: int) -> list[Span]:
    spans: list[Span] = []
    pos, seen = 2, 0
    while seen < max_chunks and pos + 4 <= len(data) and data[pos] == 0xFF:
        seen += 1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: metadata segments all come before
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        start, end = pos + 4, pos + 2 + length
        if length < 2 or end > len(data):
            break
        if marker == 0xE1:
            if data.startswith(XMP_JPEG_PREFIX, start, end):
                spans.append(Span("xmp", start + len(XMP_JPEG_PREFIX), end))
            elif data.startswith(EXIF_PREFIX, start, end):
                spans.append(Span("exif", start + len(EXIF_PREFIX), end))
            elif data.startswith(XMP_EXTENSION_PREFIX, start, end):
                span = _extension_span(data, start + len(XMP_EXTENSION_PREFIX), end)
                if span is not None:
                    spans.append(span)
        pos = end
    return spans


def _extension_span(data: bytes, header: int, end: int) -> Span | None:
    """An Extended XMP portion whose header is whole and whose GUID is 32 hex digits (else not one)."""
    guid = data[header : header + 32]
    if end - header < _EXTENSION_HEADER or len(guid) != 32 or not _HEX_DIGITS.issuperset(guid):
        return None
    return Span("xmp_ext", header + _EXTENSION_HEADER, end, key=guid.decode("ascii"))


def _png_spans(data: bytes, max_chunks: int) -> list[Span]:
    spans: list[Span] = []
    pos = len(PNG_SIGNATURE)
    for _ in range(max_chunks):
        if pos + 12 > len(data):
            break
        length, chunk = struct.unpack_from(">I4s", data, pos)
        start, end = pos + 8, pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            break
        if chunk in _PNG_TEXT_CHUNKS or chunk == b"eXIf":
            (crc,) = struct.unpack_from(">I", data, end)
            if zlib.crc32(memoryview(data)[pos + 4 : end]) == crc:
                span = _png_span(data, chunk, start, end)
                if span is not None:
                    spans.append(span)
        elif chunk == b"IEND":
            break
        pos = end + 4
    return spans


def _png_span(data: bytes, chunk: bytes, start: int, end: int) -> Span | None:
    if chunk == b"eXIf":
        skip = len(EXIF_PREFIX) if data.startswith(EXIF_PREFIX, start, end) else 0
        return Span("exif", start + skip, end)
    nul = data.find(b"\x00", start, min(end, start + 80))  # keywords are 1-79 Latin-1 characters
    if nul <= start:
        return None
    key = data[start:nul].decode("latin-1")
    return Span("xmp" if key == XMP_PNG_KEYWORD else "text", nul + 1, end, chunk, key)


def _webp_spans(data: bytes, max_chunks: int) -> list[Span]:
    spans: list[Span] = []
    (riff_size,) = struct.unpack_from("<I", data, 4)
    limit = min(len(data), 8 + riff_size)
    pos = 12
    for _ in range(max_chunks):
        if pos + 8 > limit:
            break
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        start, end = pos + 8, pos + 8 + size
        if end > limit:
            break
        if fourcc == b"XMP ":
            spans.append(Span("xmp", start, end))
        elif fourcc == b"EXIF":
            skip = len(EXIF_PREFIX) if data.startswith(EXIF_PREFIX, start, end) else 0
            spans.append(Span("exif", start + skip, end))
        pos = end + (size & 1)  # chunks are padded to an even size
    return spans


def read_blobs(data: bytes, spans: list[Span], settings: MetadataSettings) -> Blobs:
    """Copy (and inflate) the spans in file order while they fit in `max_text_bytes`; an XMP packet also has to
    fit in `max_xmp_bytes`. What does not fit, or does not inflate cleanly, is dropped whole. Extended XMP comes
    last, from what is left: it only adds to a standard packet."""
    xmp: list[bytes] = []
    exif: list[bytes] = []
    texts: list[tuple[str, str]] = []
    portions: dict[str, list[Span]] = {}
    left, dropped = settings.max_text_bytes, 0
    for span in spans:
        if span.kind == "xmp_ext":
            portions.setdefault(span.key, []).append(span)
            continue
        cap = min(left, settings.max_xmp_bytes) if span.kind == "xmp" else left
        payload = _payload(data, span, cap)
        if payload is None:
            dropped += 1
            continue
        left -= len(payload)
        if span.kind == "xmp":
            xmp.append(payload)
        elif span.kind == "exif":
            exif.append(payload)
        else:
            encoding = "utf-8" if span.chunk == b"iTXt" else "latin-1"
            texts.append((span.key, payload.decode(encoding, "replace")))
    extended: list[tuple[str, bytes]] = []
    for guid, parts in portions.items():
        named = any(guid.encode() in packet for packet in xmp)  # xmp.read_xmp then checks it is HasExtendedXMP
        packet = _extension(data, parts, min(left, settings.max_xmp_bytes)) if named else None
        if packet is None:
            dropped += 1
            continue
        left -= len(packet)
        extended.append((guid, packet))
    return Blobs(tuple(xmp), tuple(exif), tuple(texts), dropped, tuple(extended))


def _extension(data: bytes, parts: list[Span], cap: int) -> bytes | None:
    """The Extended XMP packet of one GUID: the portions sorted by offset must agree on the full length, which
    must fit in `cap`, and cover it exactly; checked on the headers before anything is copied."""
    lengths = {struct.unpack_from(">I", data, span.start - 8)[0] for span in parts}
    if len(lengths) != 1:
        return None
    (total,) = lengths
    if not 0 < total <= cap:
        return None
    placed = sorted((struct.unpack_from(">I", data, span.start - 4)[0], span.start, span.end) for span in parts)
    covered = 0
    for offset, start, end in placed:
        if offset != covered or start == end:  # a gap, an overlap (a repeated offset too) or an empty portion
            return None
        covered += end - start
    if covered != total:
        return None
    return b"".join(data[start:end] for _, start, end in placed)


def _payload(data: bytes, span: Span, cap: int) -> bytes | None:
    """The blob's bytes, at most `cap` of them; PNG text payloads start after the keyword's NUL."""
    start, end = span.start, span.end
    if span.chunk == b"zTXt":
        return _inflate(data, start + 1, end, cap) if start < end and data[start] == 0 else None
    if span.chunk == b"iTXt":
        if end - start < 2:
            return None
        compressed, method = data[start], data[start + 1]
        language_end = data.find(b"\x00", start + 2, end)
        keyword_end = data.find(b"\x00", language_end + 1, end) if language_end >= 0 else -1
        if keyword_end < 0:
            return None
        start = keyword_end + 1
        if compressed:
            return _inflate(data, start, end, cap) if compressed == 1 and method == 0 else None
    return data[start:end] if end - start <= cap else None


def _inflate(data: bytes, start: int, end: int, cap: int) -> bytes | None:
    """Inflate at most cap + 1 bytes: a bomb costs what the cap allows, then it is refused. A stream that does
    not end (truncated, or longer than the cap) is refused too."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(memoryview(data)[start:end], cap + 1)
    except zlib.error:
        return None
    return out if inflater.eof and len(out) <= cap else None

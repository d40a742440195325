"""Decode untrusted uploads into upright 8-bit RGB, refusing oversized images before any pixel is decoded.

Why so careful: uploads are hostile by assumption. A PNG of a few kB can declare 12,000 x 12,000 pixels
(a decompression bomb), a truncated file must fail rather than decode half-grey, and odd modes (CMYK,
16-bit grey, palette transparency) give wrong colours when converted naively.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from zoomguard.errors import ImageDecodeError, ImageTooLargeError
from zoomguard.media.jpeg_scans import count_jpeg_scans
from zoomguard.media.settings import ImageLimits

SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})

# The only openers Pillow may try. The JPEG opener also yields MPO (the multi-picture JPEG cameras
# write); MPO has no opener of its own, so listing it would make Pillow raise KeyError on non-JPEGs.
_OPEN_ORDER: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_REPORTED_AS = {"MPO": "JPEG"}
_SUPPORTED_TEXT = "JPEG, PNG, WebP, GIF, BMP, TIFF"

# Pillow's own bomb check runs inside open() (some plugins allocate there: a 44-byte GIF whose frame declares
# 65535 x 127017 makes the GIF plugin fill 8 Gpx, 15 s and 4 GB, before open returns), so it must stay on. It
# raises above twice Image.MAX_IMAGE_PIXELS (a process-wide value, 89.5 Mpx by default, which would make a larger
# configured max_pixels useless): `_align_pillow_limit` sets it to half the largest max_pixels in use, so
# Pillow refuses exactly what ours refuses, and its warning below that is silenced (ours is the message).
_PILLOW_LIMIT_LOCK = threading.Lock()
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_UNSIGNED_16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_DEEP_GREY_MODES = _UNSIGNED_16_MODES | {"I", "F"}
_WHITE = (255, 255, 255)
_CHUNK_ELEMENTS = 1 << 20  # bounds the float temporaries of deep-grey scaling to a few MB
_ENCODERS = {"PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG"}


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, read without decoding a pixel: enough to refuse, or to reserve memory for it."""

    width: int
    height: int
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class DecodedImage:
    """One upload ready for the model; the digest identifies it in verdicts and dead letters."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, fully loaded
    sha256: str  # hex sha256 of the input bytes exactly as received
    width: int  # after orientation
    height: int
    format: str  # Pillow format name; MPO is reported as JPEG


def probe_image(data: bytes, limits: ImageLimits = ImageLimits()) -> ImageHeader:
    """Every refusal that needs no pixel: byte size, format, declared size, JPEG scan count."""
    source = _open_checked(data, limits)
    try:
        return ImageHeader(source.width, source.height, _format_of(source))
    finally:
        source.close()


def decode_image(
    data: bytes, limits: ImageLimits = ImageLimits(), *, probed: ImageHeader | None = None
) -> DecodedImage:
    """Untrusted bytes -> RGB pixels. Every refusal is a BadInputError: dead-lettered, never retried.
    `probed`: what `probe_image` returned for these very bytes; its walk over a JPEG's scans is not repeated."""
    source = _open_checked(data, limits, scans_checked=probed is not None)
    fmt = _format_of(source)
    _load_first_frame(source, fmt)
    rgb = _upright_rgb(source, fmt)
    digest = hashlib.sha256(data).hexdigest()
    return DecodedImage(image=rgb, sha256=digest, width=rgb.width, height=rgb.height, format=fmt)


def decode_thumbnail(
    data: bytes, side: int, limits: ImageLimits = ImageLimits(), *, probed: ImageHeader | None = None
) -> Image.Image:
    """Upright RGB no larger than side x side. JPEGs decode at a reduced DCT scale (draft), so a 50 Mpx photo
    never exists at full size for a 1024 px review thumbnail. `probed` as in decode_image."""
    source = _open_checked(data, limits, scans_checked=probed is not None)
    fmt = _format_of(source)
    if fmt == "JPEG":
        with contextlib.suppress(Exception):  # draft is an optimisation: a full decode is still correct
            source.draft("RGB", (side, side))
    _load_first_frame(source, fmt)
    rgb = _upright_rgb(source, fmt)
    rgb.thumbnail((side, side), Image.Resampling.BICUBIC)
    return rgb


def _align_pillow_limit(max_pixels: int) -> None:
    """Never lowers it: another caller in this process may allow more (each call still checks its own)."""
    wanted = (max_pixels + 1) // 2
    with _PILLOW_LIMIT_LOCK:
        current = Image.MAX_IMAGE_PIXELS
        if current is None or current < wanted:
            Image.MAX_IMAGE_PIXELS = wanted


def _open_checked(data: bytes, limits: ImageLimits, *, scans_checked: bool = False) -> ImageFile.ImageFile:
    _check_byte_size(data, limits)
    _align_pillow_limit(limits.max_pixels)
    source = _open(data, limits)
    try:
        _check_declared_size(source, limits)
        if _format_of(source) == "JPEG" and not scans_checked:
            _check_scans(data, limits)
    except BaseException:
        source.close()
        raise
    return source


def _format_of(source: Image.Image) -> str:
    return _REPORTED_AS.get(source.format or "", source.format or "unknown")


def _upright_rgb(source: Image.Image, fmt: str) -> Image.Image:
    _apply_exif_orientation(source)
    try:
        return to_rgb(source)
    except Exception as exc:  # any failure on untrusted pixels is that image's fault
        raise ImageDecodeError(f"cannot convert {fmt} pixel mode {source.mode!r} to RGB: {exc}") from exc


def _check_byte_size(data: bytes, limits: ImageLimits) -> None:
    """Cheapest check first: refuse by length before any parser sees the bytes."""
    if not data:
        raise ImageDecodeError("empty image data (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes (detector.limits.max_bytes)"
        )


def _open(data: bytes, limits: ImageLimits) -> ImageFile.ImageFile:
    """Read the header only, with just the supported parsers (fewer parsers, less attack surface)."""
    try:
        return Image.open(io.BytesIO(data), formats=list(_OPEN_ORDER))
    except Image.DecompressionBombError as exc:  # Pillow's guard, aligned with ours: say it in our terms
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)):,}" if found else f"more than {limits.max_pixels:,}"
        raise ImageTooLargeError(
            f"image declares {declared} pixels; the limit is {limits.max_pixels:,} (detector.limits.max_pixels)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"unsupported image format or unreadable header (supported: {_SUPPORTED_TEXT})") from exc
    except Exception as exc:  # fuzzed headers make Pillow raise TypeError and worse, not only OSError
        raise ImageDecodeError(f"cannot read image header: {type(exc).__name__}: {exc}") from exc


def _check_declared_size(image: Image.Image, limits: ImageLimits) -> None:
    """Why before load(): the header's size is what the decoder will allocate, so refuse on it."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image declares an empty size {width}x{height}")
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageTooLargeError(
            f"image declares {width}x{height} = {pixels:,} pixels; the limit is {limits.max_pixels:,} "
            "(detector.limits.max_pixels)"
        )


def _check_scans(data: bytes, limits: ImageLimits) -> None:
    scans = count_jpeg_scans(data, stop_after=limits.max_jpeg_scans)
    if scans > limits.max_jpeg_scans:
        raise ImageTooLargeError(
            f"JPEG has more than {limits.max_jpeg_scans} scans (a progressive-JPEG scan bomb costs CPU per scan); "
            "the limit is detector.limits.max_jpeg_scans"
        )


def _load_first_frame(image: ImageFile.ImageFile, fmt: str) -> None:
    """Decode frame 0 (where Pillow leaves animations and multi-page TIFFs after open) and nothing more."""
    try:
        image.load()
    except Exception as exc:  # TypeError on retyped TIFF tags, and whatever else a fuzzer finds
        raise ImageDecodeError(f"corrupt or truncated {fmt} image: {type(exc).__name__}: {exc}") from exc


def _apply_exif_orientation(image: Image.Image) -> None:
    """Cameras store pixels sideways plus an EXIF tag; the model must see what a viewer shows."""
    # In place: no copy for the common unrotated case. Unreadable EXIF keeps the stored orientation:
    # the pixels themselves are intact, so refusing the image would be worse than a sideways view.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency goes over white, deep greys are rescaled, not clipped.

    Why not plain convert("RGB"): it clips 16/32-bit grey at 255 (most real scans turn white) and drops
    alpha, which shows whatever colour hides under transparent pixels (often black).
    Raises ValueError for a mode Pillow cannot convert.
    """
    if image.mode in _DEEP_GREY_MODES:
        grey = Image.fromarray(_deep_grey_to_8bit(image))
        transparent = image.info.get("transparency")
        if isinstance(transparent, int) and not isinstance(transparent, bool):
            return _grey_key_over_white(image, grey, transparent)
        return grey.convert("RGB")
    if image.has_transparency_data:
        return _over_white(image)
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _grey_key_over_white(image: Image.Image, grey: Image.Image, key: int) -> Image.Image:
    """A 16-bit grey PNG's tRNS names one grey value as transparent; Pillow's RGBA conversion of such modes
    loses it (black shows through), so build the mask from the raw values."""
    opaque = Image.fromarray(np.where(np.asarray(image) == key, 0, 255).astype(np.uint8))
    background = Image.new("RGB", grey.size, _WHITE)
    background.paste(grey.convert("RGB"), (0, 0), opaque)
    return background


def _over_white(image: Image.Image) -> Image.Image:
    """Composite over white, the background a viewer typically shows behind transparent uploads."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, (0, 0), rgba)
    return background


def _deep_grey_to_8bit(image: Image.Image) -> np.ndarray:
    """16-bit, 32-bit int or float grey -> uint8, chunked by rows so temporaries stay small."""
    values = np.asarray(image)
    scale = _float_scaler(values) if image.mode == "F" else _integer_scaler(values, image.mode)
    out = np.empty(values.shape, dtype=np.uint8)
    rows = max(1, _CHUNK_ELEMENTS // max(1, values.shape[1]))
    for start in range(0, values.shape[0], rows):
        out[start : start + rows] = scale(values[start : start + rows])
    return out


def _integer_scaler(values: np.ndarray, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """Full range -> 0..255. Mode "I" is 16-bit data in a 32-bit container when every value fits in
    0..65535 (how Pillow and most tools store it), else full signed 32-bit; negatives clip to black."""
    top = 65535.0
    if mode not in _UNSIGNED_16_MODES and values.size and int(values.max()) > 65535:
        top = float(np.iinfo(np.int32).max)
    return lambda chunk: _to_uint8(np.clip(chunk.astype(np.float64), 0.0, top) * (255.0 / top))


def _float_scaler(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Float grey is taken as 0..1 when no finite value exceeds 1, else as 0..255; NaN becomes black."""
    finite = np.isfinite(values)
    peak = float(np.max(values, where=finite, initial=0.0))
    factor = 255.0 if peak <= 1.0 else 1.0

    def scale(chunk: np.ndarray) -> np.ndarray:
        scaled = chunk.astype(np.float64) * factor
        return _to_uint8(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0))

    return scale


def _to_uint8(scaled: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def encode_image(image: Image.Image, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Bytes for a model server. PNG (default) is lossless, so the server sees exactly the pixels we
    judged; JPEG is several times smaller for slow links. Non-RGB input is converted like decode_image."""
    name = _ENCODERS.get(fmt.upper())
    if name is None:
        raise ValueError(f"encode_image writes PNG or JPEG, not {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    rgb = to_rgb(image)
    buffer = io.BytesIO()
    if name == "JPEG":
        rgb.save(buffer, format="JPEG", quality=quality)
    else:
        rgb.save(buffer, format="PNG", compress_level=1)  # fast: these bytes only cross the wire once
    return buffer.getvalue()


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize for the model. `reducing_gap` first shrinks by an integer factor (box filter, cheap) while the
    remaining bicubic step still covers at least 1.5x: a 12-megapixel photo resizes about 2x faster
    (benchmarks/RESULTS.md) with no visible difference at model resolution."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=1.5)

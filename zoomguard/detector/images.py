"""Decoding untrusted uploads into RGB pixels, with limits checked before any pixel is decoded.

Why so careful: uploads are hostile by assumption. A 50-kB PNG can declare 40,000 x 40,000 pixels
(a decompression bomb), a truncated file can hang a decoder half-way, and odd modes (CMYK, 16-bit,
palette with transparency) give wrong colours when converted naively.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoomguard.errors import ImageDecodeError, ImageTooLargeError

# Pillow decoders tried; the JPEG one also yields MPO (the multi-picture JPEG some cameras write).
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
_REPORTED_FORMAT = {"MPO": "JPEG"}
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageLimits:
    """Why: uploads are untrusted; these bound memory and CPU per image."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("image limits must be positive")


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, fully loaded
    sha256: str  # of the bytes exactly as received
    width: int
    height: int
    format: str


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    if not data:
        raise ImageDecodeError("empty image data")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=sorted(SUPPORTED_FORMATS))
        except UnidentifiedImageError:
            raise ImageDecodeError(
                "not a supported image (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"decompression bomb refused: {exc}") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageDecodeError(f"cannot read image header: {exc}") from None
        fmt = image.format or "unknown"
        _check_declared_size(image, limits)
        try:
            image.seek(0)  # first frame of animations and multi-page TIFFs
            image.load()
            oriented = ImageOps.exif_transpose(image)
            rgb = to_rgb(oriented)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"decompression bomb refused: {exc}") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as exc:
            raise ImageDecodeError(f"corrupt or truncated {fmt} image: {exc}") from None
    return DecodedImage(rgb, digest, rgb.width, rgb.height, _REPORTED_FORMAT.get(fmt, fmt))


def _check_declared_size(image: Image.Image, limits: ImageLimits) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image declares an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"image declares {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited over white, deep greys are rescaled."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_grey_to_8bit(image), mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("LAB", "HSV", "YCbCr", "CMYK", "1", "L", "RGBX"):
        return image.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_to_8bit(image: Image.Image) -> np.ndarray:
    array = np.asarray(image)
    if image.mode == "F":
        values = array.astype(np.float64)
        top = 1.0 if values.size and float(np.nanmax(values)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values / top * 255.0)
    elif image.mode == "I":
        values = array.astype(np.float64)
        peak = float(values.max()) if values.size else 0.0
        # 32-bit ints: treat as 16-bit data when it fits (how most tools store it), else full range
        top = 65535.0 if peak <= 65535 else float(np.iinfo(np.int32).max)
        scaled = values / top * 255.0
    else:
        scaled = array.astype(np.float64) / 65535.0 * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def encode_image(image: Image.Image, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode for the wire (model servers). PNG is lossless; JPEG is smaller."""
    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"encode_image supports PNG and JPEG, not {fmt}")
    buffer = io.BytesIO()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if fmt == "JPEG":
        rgb.save(buffer, format="JPEG", quality=quality)
    else:
        rgb.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()

"""decode_image turns hostile bytes into upright RGB or a BadInputError: no crash, hang or wrong colour."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageFile

from zoomguard.errors import ImageDecodeError, ImageTooLargeError
from zoomguard.media.images import (
    SUPPORTED_FORMATS,
    DecodedImage,
    ImageLimits,
    decode_image,
    encode_image,
    to_rgb,
)

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
PALETTE = [0, 0, 0, 10, 200, 30, 250, 120, 0]  # index 1 and 2 are the colours the tests look for
Pixel = tuple[int, ...]
Point = tuple[int, int]


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random pixels: every byte of the encoding matters, so truncation cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gradient(width: int, height: int) -> Image.Image:
    """Red ramps left to right, green top to bottom: every pixel differs, yet JPEG-friendly."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None].repeat(width, axis=1)
    rgb = np.stack([x, y, np.full_like(x, 90.0)], axis=-1)
    return Image.fromarray(np.rint(rgb).astype(np.uint8))


def pixels_of(image: Image.Image) -> list[Pixel]:
    return [tuple(image.getpixel((x, 0))) for x in range(image.width)]  # type: ignore[arg-type]


def assert_pixels_close(actual: Sequence[Pixel], expected: Sequence[Pixel], tolerance: int) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert all(abs(g - w) <= tolerance for g, w in zip(got, want, strict=True)), (actual, expected)


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 6),
        ("PNG", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 8),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
    ],
)
def test_each_supported_format_decodes_to_rgb(fmt: str, params: dict[str, object], tolerance: int) -> None:
    colour = (200, 40, 90)
    data = encode(Image.new("RGB", (40, 30), colour), fmt, **params)
    decoded = decode_image(data)
    assert fmt in SUPPORTED_FORMATS
    assert (decoded.format, decoded.image.mode) == (fmt, "RGB")
    assert (decoded.width, decoded.height) == (40, 30) == decoded.image.size
    assert_pixels_close([decoded.image.getpixel((20, 15))], [colour], tolerance)  # type: ignore[list-item]


def test_supported_formats_are_exactly_the_six() -> None:
    assert frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}) == SUPPORTED_FORMATS


def test_mpo_is_reported_as_jpeg_and_gives_its_first_picture() -> None:
    data = encode(Image.new("RGB", (16, 8), RED), "MPO", save_all=True, append_images=[Image.new("RGB", (16, 8), BLUE)])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data)
    assert decoded.format == "JPEG"
    assert_pixels_close([decoded.image.getpixel((8, 4))], [RED], 8)  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {"duration": 50, "loop": 0}), ("TIFF", {}), ("WEBP", {"lossless": True, "duration": 50})],
)
def test_multi_frame_images_give_frame_zero(fmt: str, params: dict[str, object]) -> None:
    first, *rest = (Image.new("RGB", (12, 10), colour) for colour in (RED, GREEN, BLUE))
    data = encode(first, fmt, save_all=True, append_images=rest, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3  # really multi-frame
    decoded = decode_image(data)
    assert decoded.image.getpixel((6, 5)) == RED
    assert decoded.image.size == (12, 10)


# ---------------------------------------------------------------- pixel modes


@dataclass(frozen=True)
class ModeCase:
    """One row of pixels in one Pillow mode and the RGB a viewer would show for it."""

    mode: str
    pixels: Sequence[object]
    expected: Sequence[Pixel]
    tolerance: int = 0
    transparency: int | None = None  # palette index that is fully transparent

    def build(self) -> Image.Image:
        image = Image.new(self.mode, (len(self.pixels), 1))
        if self.mode in ("P", "PA"):
            image.putpalette(PALETTE)
        if self.transparency is not None:
            image.info["transparency"] = self.transparency
        for x, value in enumerate(self.pixels):
            image.putpixel((x, 0), value)  # type: ignore[arg-type]
        return image


MODE_CASES: dict[str, ModeCase] = {
    "1": ModeCase("1", [0, 1], [BLACK, WHITE]),
    "L": ModeCase("L", [0, 77, 255], [BLACK, (77, 77, 77), WHITE]),
    "P": ModeCase("P", [1, 2], [(10, 200, 30), (250, 120, 0)]),
    "P-transparent": ModeCase("P", [1, 2], [WHITE, (250, 120, 0)], transparency=1),
    "PA": ModeCase("PA", [(1, 0), (2, 255)], [WHITE, (250, 120, 0)]),
    "LA": ModeCase("LA", [(50, 0), (50, 255)], [WHITE, (50, 50, 50)]),
    "RGBA": ModeCase("RGBA", [(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)], [WHITE, RED, (127, 127, 127)], 1),
    "RGBa": ModeCase("RGBa", [(0, 0, 0, 0), (0, 0, 255, 255)], [WHITE, BLUE]),
    "CMYK": ModeCase("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)], [WHITE, (0, 255, 255), BLACK]),
    "YCbCr": ModeCase("YCbCr", [(255, 128, 128), (0, 128, 128)], [WHITE, BLACK], 1),
    "I;16": ModeCase("I;16", [0, 32768, 65535], [BLACK, (128, 128, 128), WHITE]),
    "I;16B": ModeCase("I;16B", [0, 32768, 65535], [BLACK, (128, 128, 128), WHITE]),
    "I;16L": ModeCase("I;16L", [0, 32768, 65535], [BLACK, (128, 128, 128), WHITE]),
    "I-16bit": ModeCase("I", [0, 32768, 65535], [BLACK, (128, 128, 128), WHITE]),
    "I-32bit": ModeCase("I", [-5, 2**30, 2**31 - 1], [BLACK, (128, 128, 128), WHITE]),
    "F-unit": ModeCase("F", [0.0, 0.5, 1.0], [BLACK, (128, 128, 128), WHITE]),
    "F-255": ModeCase("F", [-1.0, 100.0, 300.0, math.nan], [BLACK, (100, 100, 100), WHITE, BLACK]),
    "LAB": ModeCase("LAB", [(255, 128, 128), (0, 128, 128)], [WHITE, BLACK], 2),
    "HSV": ModeCase("HSV", [(0, 255, 255), (85, 255, 255), (0, 0, 255)], [RED, GREEN, WHITE], 1),
    "RGB": ModeCase("RGB", [(1, 2, 3)], [(1, 2, 3)]),
}


@pytest.mark.parametrize("case_id", list(MODE_CASES))
def test_to_rgb_converts_every_mode(case_id: str) -> None:
    case = MODE_CASES[case_id]
    source = case.build()
    assert source.mode == case.mode
    rgb = to_rgb(source)
    assert rgb.mode == "RGB" and rgb.size == source.size
    assert_pixels_close(pixels_of(rgb), case.expected, case.tolerance)


@pytest.mark.parametrize(
    ("case_id", "fmt", "stored_mode"),
    [
        ("1", "PNG", "1"),
        ("1", "BMP", "1"),
        ("L", "PNG", "L"),
        ("P", "PNG", "P"),
        ("P", "BMP", "P"),
        ("P-transparent", "PNG", "P"),
        ("P-transparent", "GIF", "P"),
        ("PA", "TIFF", "PA"),
        ("LA", "PNG", "LA"),
        ("LA", "TIFF", "LA"),
        ("RGBA", "PNG", "RGBA"),
        ("RGBA", "TIFF", "RGBA"),
        ("CMYK", "TIFF", "CMYK"),
        ("YCbCr", "TIFF", "YCbCr"),
        ("I;16", "PNG", "I;16"),
        ("I;16", "TIFF", "I;16"),
        ("I;16B", "TIFF", "I;16B"),
        ("I-16bit", "TIFF", "I"),
        ("I-32bit", "TIFF", "I"),
        ("F-unit", "TIFF", "F"),
        ("F-255", "TIFF", "F"),
        ("LAB", "TIFF", "LAB"),
    ],
)
def test_decoded_files_convert_every_stored_mode(case_id: str, fmt: str, stored_mode: str) -> None:
    case = MODE_CASES[case_id]
    data = encode(case.build(), fmt)
    assert Image.open(io.BytesIO(data)).mode == stored_mode  # the file really holds this mode
    decoded = decode_image(data)
    assert decoded.image.mode == "RGB"
    assert_pixels_close(pixels_of(decoded.image), case.expected, case.tolerance)


def test_cmyk_jpeg_white_stays_white() -> None:
    decoded = decode_image(encode(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), "JPEG", quality=95))
    assert_pixels_close([decoded.image.getpixel((8, 8))], [WHITE], 3)  # type: ignore[list-item]


# ---------------------------------------------------------------- orientation


def marked_jpeg(orientation: int) -> bytes:
    """40x20 blue JPEG with a red 10x10 patch in the stored top-left corner."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    [
        (1, (40, 20), (4, 4)),  # as stored
        (3, (40, 20), (35, 15)),  # rotated 180°: patch at bottom-right
        (6, (20, 40), (15, 4)),  # rotated 90° clockwise: patch at top-right
        (8, (20, 40), (4, 35)),  # rotated 90° counter-clockwise: patch at bottom-left
    ],
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int], red_at: Point) -> None:
    decoded = decode_image(marked_jpeg(orientation))
    assert (decoded.width, decoded.height) == size == decoded.image.size
    corners = [(4, 4), (size[0] - 5, 4), (4, size[1] - 5), (size[0] - 5, size[1] - 5)]
    assert red_at in corners
    for corner in corners:
        expected = RED if corner == red_at else BLUE
        assert_pixels_close([decoded.image.getpixel(corner)], [expected], 40)  # type: ignore[list-item]


# ---------------------------------------------------------------- broken and unsupported input


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_truncated_image_is_a_decode_error(fmt: str) -> None:
    data = encode(noise(64, 64), fmt)
    decode_image(data)  # the intact file is fine
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not an image",
        bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        PNG_SIGNATURE + b"\x00" * 64,  # PNG signature, broken header
        b"\xff\xd8\xff" + b"\x00" * 64,  # JPEG signature, no frame
    ],
    ids=["empty", "text", "random", "png-signature-only", "jpeg-signature-only"],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_empty_input_is_named_as_such() -> None:
    with pytest.raises(ImageDecodeError, match=r"empty image data \(0 bytes\)"):
        decode_image(b"")


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "PCX", "TGA"])
def test_unsupported_format_is_refused_by_name(fmt: str) -> None:
    data = encode(Image.new("RGB", (16, 16), RED), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would happily open it
    with pytest.raises(ImageDecodeError, match="unsupported image format") as caught:
        decode_image(data)
    assert all(name in str(caught.value) for name in ("JPEG", "PNG", "WebP", "GIF", "BMP", "TIFF"))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def one_bit_png(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG built row by row, so a huge one costs kilobytes, not gigabytes, to make."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 20) // len(row))
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    idat = b"".join(parts)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_crafted_png_is_a_real_image() -> None:
    """Guards the bomb tests: they must fail on size, not because the crafted file is malformed."""
    decoded = decode_image(one_bit_png(70, 30))
    assert decoded.image.size == (70, 30)
    assert decoded.image.getpixel((69, 29)) == BLACK


@pytest.mark.parametrize(
    ("side", "max_pixels"),
    [
        (4_000, 10_000_000),  # under Pillow's own limit: only ours refuses it
        (12_000, 10_000_000),  # over Pillow's warning threshold
        (20_000, 10_000_000),  # over Pillow's error threshold
        (20_000, ImageLimits().max_pixels),  # default limits
    ],
)
def test_decompression_bomb_is_refused_before_decoding(
    side: int, max_pixels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = one_bit_png(side, side)
    assert len(data) < 100_000  # a real bomb: tiny file, huge image

    def refuse_to_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixel data of a {self.size} bomb was decoded")  # also spares the test run

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        decode_image(data, ImageLimits(max_pixels=max_pixels))
    assert time.perf_counter() - started < 1.0


def test_pixel_limit_is_checked_per_call_and_pillows_guard_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone disabled Pillow's own guard
    with pytest.raises(ImageTooLargeError, match="144,000,000 pixels; the limit is 10,000,000"):
        decode_image(one_bit_png(12_000, 12_000), ImageLimits(max_pixels=10_000_000))
    assert Image.MAX_IMAGE_PIXELS == 5_000_000  # Pillow refuses above twice this: exactly our limit


def test_decode_never_lowers_pillows_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 80_000_000)
    decode_image(encode(noise(8, 8), "PNG"), ImageLimits(max_pixels=100))
    assert Image.MAX_IMAGE_PIXELS == 80_000_000  # another caller may allow more; each call checks its own


@pytest.mark.parametrize(("max_pixels", "fits"), [(10_000, True), (9_999, False)])
def test_pixel_limit_boundary(max_pixels: int, fits: bool) -> None:
    data = encode(noise(100, 100), "PNG")
    if fits:
        assert decode_image(data, ImageLimits(max_pixels=max_pixels)).image.size == (100, 100)
    else:
        with pytest.raises(ImageTooLargeError, match="10,000 pixels; the limit is 9,999"):
            decode_image(data, ImageLimits(max_pixels=max_pixels))


@pytest.mark.parametrize("slack", [0, -1])
def test_byte_limit(slack: int) -> None:
    data = encode(noise(32, 32), "PNG")
    limits = ImageLimits(max_bytes=len(data) + slack)
    if slack >= 0:
        assert decode_image(data, limits).width == 32
    else:
        with pytest.raises(ImageTooLargeError) as caught:
            decode_image(data, limits)
        assert f"{len(data):,} bytes" in str(caught.value)
        assert f"limit is {len(data) - 1:,}" in str(caught.value)


def test_zero_size_header_is_a_decode_error() -> None:
    header = struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)
    data = PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")
    with pytest.raises(ImageDecodeError):
        decode_image(data)


@pytest.mark.parametrize(("max_bytes", "max_pixels"), [(0, 1), (1, 0), (-1, 10)])
def test_limits_must_be_positive(max_bytes: int, max_pixels: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ImageLimits(max_bytes=max_bytes, max_pixels=max_pixels)


# ---------------------------------------------------------------- identity and encoding


def test_sha256_is_of_the_bytes_as_received() -> None:
    image = noise(20, 20)
    png, bmp = encode(image, "PNG"), encode(image, "BMP")
    assert decode_image(png).sha256 == hashlib.sha256(png).hexdigest()
    assert decode_image(bmp).sha256 == hashlib.sha256(bmp).hexdigest() != decode_image(png).sha256


def test_decoded_image_is_frozen() -> None:
    decoded = decode_image(encode(noise(4, 4), "PNG"))
    assert isinstance(decoded, DecodedImage)
    with pytest.raises(AttributeError):
        decoded.width = 5  # type: ignore[misc]


@pytest.mark.parametrize(("fmt", "max_mean_error"), [("PNG", 0.0), ("png", 0.0), ("JPEG", 2.0), ("jpg", 2.0)])
def test_encode_round_trips_through_decode(fmt: str, max_mean_error: float) -> None:
    image = gradient(96, 64)  # smooth, as photos are: JPEG keeps it close, so the bound means something
    decoded = decode_image(encode_image(image, fmt))
    assert decoded.format == ("PNG" if fmt.upper() == "PNG" else "JPEG")
    assert decoded.image.size == (96, 64)
    error = np.abs(np.asarray(decoded.image, dtype=np.int16) - np.asarray(image, dtype=np.int16)).mean()
    assert error <= max_mean_error


def test_encode_composites_alpha_over_white() -> None:
    data = encode_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "RGB"
    assert decode_image(data).image.getpixel((1, 1)) == WHITE


@pytest.mark.parametrize(("fmt", "quality"), [("WEBP", 95), ("GIF", 95), ("JPEG", 0), ("JPEG", 101)])
def test_encode_rejects_other_formats_and_bad_quality(fmt: str, quality: int) -> None:
    with pytest.raises(ValueError):
        encode_image(Image.new("RGB", (4, 4)), fmt, quality)

"""What fuzzers and hostile uploads found: every one is a clear BadInputError of that image, quickly, or decodes
right; and the pixel budget bounds decoded memory whatever the window holds."""

from __future__ import annotations

import asyncio
import io
import struct
import time

import numpy as np
import pytest
from PIL import Image

from tests.unit.test_images import encode, noise, one_bit_png
from zoomguard.errors import BadInputError, ImageDecodeError, ImageTooLargeError
from zoomguard.media.images import decode_image, decode_thumbnail, probe_image
from zoomguard.media.jpeg_scans import count_jpeg_scans
from zoomguard.media.pixel_budget import PixelBudget
from zoomguard.media.settings import ImageLimits

# ---------------------------------------------------------------- fuzzed files (built here, as the fuzzer did)


def retyped_tiff_strip_offsets() -> bytes:
    """A TIFF whose StripOffsets (tag 273) is retyped LONG -> RATIONAL: Pillow raises TypeError on load."""
    data = bytearray(encode(noise(8, 8), "TIFF"))
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for index in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * index
        if struct.unpack_from("<H", data, entry)[0] == 273:
            struct.pack_into("<H", data, entry + 2, 5)
            return bytes(data)
    raise AssertionError("no StripOffsets tag")


def retyped_exif_rational(container: str) -> bytes:
    """EXIF XResolution (a RATIONAL) retyped as UNDEFINED, in a JPEG or WebP."""
    exif = Image.Exif()
    exif[282], exif[283], exif[296] = 72.0, 72.0, 2
    data = bytearray(encode(noise(16, 16), container, exif=exif.tobytes()))
    start = max(data.find(b"II*\x00"), data.find(b"MM\x00*"))
    assert start > 0
    order = "<" if data[start] == ord("I") else ">"
    ifd = start + struct.unpack_from(order + "I", data, start + 4)[0]
    for index in range(struct.unpack_from(order + "H", data, ifd)[0]):
        entry = ifd + 2 + 12 * index
        if struct.unpack_from(order + "H", data, entry)[0] == 282:
            struct.pack_into(order + "H", data, entry + 2, 7)
            return bytes(data)
    raise AssertionError("no XResolution tag")


def scan_bomb(scans: int, side: int = 64) -> bytes:
    """A progressive JPEG whose shortest scan (header and data) is repeated `scans` times, as the attack does."""
    data = encode(Image.new("RGB", (side, side), (90, 120, 200)), "JPEG", progressive=True, quality=80)
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    ends = [*starts[1:], data.rfind(b"\xff\xd9")]
    start, end = min(zip(starts, ends, strict=True), key=lambda pair: pair[1] - pair[0])
    return data[:end] + data[start:end] * scans + data[end:]


def test_a_pillow_type_error_on_a_fuzzed_tiff_is_a_decode_error() -> None:
    data = retyped_tiff_strip_offsets()
    with pytest.raises(TypeError):  # what Pillow itself raises, so the test stays honest
        Image.open(io.BytesIO(data)).load()
    with pytest.raises(ImageDecodeError, match="TypeError"):
        decode_image(data)


@pytest.mark.parametrize("container", ["JPEG", "WEBP"])
def test_retyped_exif_never_escapes_as_a_bug(container: str) -> None:
    data = retyped_exif_rational(container)
    try:
        decoded = decode_image(data)
    except BadInputError:
        return
    assert decoded.image.mode == "RGB" and decoded.image.size == (16, 16)


def test_scan_bomb_is_refused_within_a_second_before_any_decoding() -> None:
    data = scan_bomb(20_000)
    assert len(data) < 4_000_000
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="max_jpeg_scans"):
        decode_image(data)
    assert time.perf_counter() - started < 1.0


def test_scan_limit_boundary_and_ordinary_progressive_jpegs() -> None:
    ordinary = encode(noise(64, 64), "JPEG", progressive=True)
    assert 1 < count_jpeg_scans(ordinary, stop_after=1000) <= 12
    assert count_jpeg_scans(encode(noise(64, 64), "JPEG"), stop_after=1000) == 1
    decode_image(ordinary)
    bomb = scan_bomb(30)
    scans = count_jpeg_scans(bomb, stop_after=1000)
    assert scans >= 30
    decode_image(bomb, ImageLimits(max_jpeg_scans=scans))
    with pytest.raises(ImageTooLargeError):
        decode_image(bomb, ImageLimits(max_jpeg_scans=scans - 1))


def test_scans_inside_an_embedded_exif_thumbnail_do_not_count() -> None:
    """APP1 may carry a whole JPEG thumbnail, start-of-scan included: segments are skipped by their length."""
    thumbnail = scan_bomb(50, side=16)
    exif = Image.Exif()
    app1 = b"Exif\x00\x00" + exif.tobytes() + thumbnail
    main = encode(noise(32, 32), "JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    data = main[:2] + segment + main[2:]
    assert data.count(b"\xff\xda") > 50
    assert count_jpeg_scans(data, stop_after=1000) == 1


def test_fill_bytes_and_restart_markers_are_walked() -> None:
    data = encode(noise(64, 64), "JPEG", restart_marker_blocks=1)
    assert count_jpeg_scans(data, stop_after=10) == 1
    padded = data.replace(b"\xff\xda", b"\xff\xff\xff\xda", 1)
    assert count_jpeg_scans(padded, stop_after=10) == 1
    assert count_jpeg_scans(b"not a jpeg", stop_after=10) == 0


# ---------------------------------------------------------------- limits, truncation, colours


def test_a_configured_limit_above_pillows_own_threshold_is_honoured() -> None:
    """144 Mpx is over Pillow's fixed 89.5 Mpx threshold; a deployment that allows 200 Mpx gets it."""
    data = one_bit_png(12_000, 12_000)
    header = probe_image(data, ImageLimits(max_pixels=200_000_000, max_decoded_pixels=200_000_000))
    assert (header.width, header.height) == (12_000, 12_000)
    with pytest.raises(ImageTooLargeError) as refused:
        probe_image(data, ImageLimits(max_pixels=100_000_000))
    assert "the limit is 100,000,000 (detector.limits.max_pixels)" in str(refused.value)


# A mutation of Pillow's Tests/images/decompression_bomb.gif (44 bytes): its frame declares 65535 x 127017, and
# with Pillow's own guard off the GIF plugin fills that at open() (15 s, 4 GB) before any check of ours runs.
GIF_FRAME_BOMB = (
    b"GIF89a \x00 \x00\xf1\x03\x00\xc2\x00\x00\xff\x00\x00\xff\xff\x00\xff\xff\x0e!\xf9\x04\xc9\x00\x000\x00,"
    b"\x00\x00\x00\xff\xff\xff)\xf1\x00\x8f"
)


def test_a_gif_whose_frame_is_a_bomb_is_refused_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # even if someone turned Pillow's guard off
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"the limit is 50,000,000 \(detector.limits.max_pixels\)"):
        decode_image(GIF_FRAME_BOMB)
    assert time.perf_counter() - started < 1.0


def test_the_decoded_budget_must_hold_the_largest_image() -> None:
    with pytest.raises(ValueError, match="max_decoded_pixels"):
        ImageLimits(max_pixels=10, max_decoded_pixels=9)


def test_truncated_jpeg_with_an_end_marker_decodes_like_libjpeg_without_one_is_refused() -> None:
    """The documented decision: a file cut short is refused; data cut short before an end marker decodes as
    libjpeg (and browsers) do, the missing part grey."""
    data = encode(noise(64, 64), "JPEG", quality=90)
    cut = data[: len(data) // 2]
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(cut)
    decoded = decode_image(cut + b"\xff\xd9")
    bottom = np.asarray(decoded.image)[-8:]
    assert (np.abs(bottom.astype(int) - 128) <= 1).all(), "the missing rows are libjpeg's grey"


def test_16_bit_grey_with_a_transparent_value_shows_white_there() -> None:
    values = np.full((4, 6), 40_000, dtype=np.uint16)
    values[1, 2] = 7
    data = encode(Image.fromarray(values), "PNG", transparency=7)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    pixels = np.asarray(decode_image(data).image)
    assert tuple(pixels[1, 2]) == (255, 255, 255)
    assert tuple(pixels[0, 0]) == (156, 156, 156)  # 40000 / 65535 * 255, not clipped


def test_thumbnails_honour_the_limits_and_decode_jpegs_reduced(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageTooLargeError):
        decode_thumbnail(one_bit_png(5_000, 5_000), 256, ImageLimits(max_pixels=1_000_000))
    data = encode(noise(2048, 1024), "JPEG")
    loaded: list[tuple[int, int]] = []
    original_load = Image.Image.load

    def spy(self: Image.Image) -> object:
        result = original_load(self)
        loaded.append(self.size)
        return result

    monkeypatch.setattr(Image.Image, "load", spy)
    thumbnail = decode_thumbnail(data, 256)
    assert max(thumbnail.size) == 256 and thumbnail.mode == "RGB"
    assert loaded and max(loaded[0]) <= 512, f"decoded at {loaded[0]}, not at a reduced DCT scale"


# ---------------------------------------------------------------- the pixel budget


def test_the_budget_bounds_pixels_held_and_serves_in_order() -> None:
    async def scenario() -> list[str]:
        budget = PixelBudget(100)
        order: list[str] = []
        first = await budget.acquire(60)
        big_waiting = asyncio.create_task(budget.acquire(80))
        await asyncio.sleep(0)
        small_waiting = asyncio.create_task(budget.acquire(10))  # fits now, but must not overtake the big one
        await asyncio.sleep(0.01)
        assert not big_waiting.done() and not small_waiting.done()
        assert budget.in_use == 60
        first.release()
        first.release()  # idempotent
        big = await big_waiting
        order.append("big")
        small = await small_waiting
        order.append("small")
        assert budget.in_use == 90 <= budget.capacity
        big.release()
        small.release()
        assert budget.in_use == 0
        huge = await budget.acquire(10_000)  # larger than the budget: waits for all of it, never forever
        assert huge.pixels == 100
        huge.release()
        return order

    assert asyncio.run(scenario()) == ["big", "small"]


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def scenario() -> int:
        budget = PixelBudget(10)
        held = await budget.acquire(10)
        waiting = asyncio.create_task(budget.acquire(5))
        behind = asyncio.create_task(budget.acquire(5))
        await asyncio.sleep(0)
        waiting.cancel()
        held.release()
        lease = await behind
        assert budget.in_use == 5
        lease.release()
        return budget.in_use

    assert asyncio.run(scenario()) == 0


def test_a_probed_jpeg_is_walked_for_scans_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """detect and review thumbnails probe first (to reserve pixels), then decode: one walk over the bytes."""
    from zoomguard.media import images

    calls: list[int] = []
    real = images.count_jpeg_scans
    monkeypatch.setattr(images, "count_jpeg_scans", lambda data, stop_after: calls.append(1) or real(data, stop_after))
    data = encode(noise(64, 64), "JPEG", progressive=True)
    header = probe_image(data)
    decode_image(data, probed=header)
    decode_thumbnail(data, 32, probed=header)
    assert len(calls) == 1
    decode_image(data)  # unprobed bytes are always walked
    assert len(calls) == 2

"""The Stable Diffusion invisible-watermark reader: held bit for bit to the reference package (`imwatermark`, installed
test-only by scripts/setup-venv.sh) on marked and unmarked images; the marks the pipelines write are found; the
look-alikes (unmarked images, marks a re-encode, resize or crop destroyed, flat and tiny images) are not."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import pywt
from PIL import Image
from pydantic import ValidationError

from zoomguard.evidence.demo_watermark import embed_watermark
from zoomguard.evidence.settings import EvidenceSettings, WatermarkSettings
from zoomguard.evidence.watermark import (
    SCHEMES,
    SDV1,
    SDXL,
    Scheme,
    SchemeName,
    approximation,
    block_scores,
    decode_bits,
    matching_bits,
    read_watermarks,
)
from zoomguard.samples import make_image
from zoomguard.schemas.evidence import EvidenceItem

SETTINGS = WatermarkSettings()
# odd sizes, none a multiple of 8, plus one that is; all at least the 256x256 pixels the package needs
SIZES = [(257, 256), (333, 777), (641, 479), (512, 512)]


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return pytest.importorskip("imwatermark")


def photo_like(seed: int, size: tuple[int, int] = (641, 479)) -> Image.Image:
    """Smooth colour regions with sensor-like noise: takes the mark the way photos and SD outputs do (flat scenes
    cannot, see demo_watermark)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, 10, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(coarse) + noise, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int, subsampling: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, subsampling=subsampling)
    return Image.open(out).convert("RGB")


def png(image: Image.Image) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "PNG")
    return Image.open(out).convert("RGB")


def found(image: Image.Image, settings: WatermarkSettings = SETTINGS) -> list[str]:
    return [item.source for item in read_watermarks(image, settings)]


def our_bits(image: Image.Image, scheme: Scheme) -> list[bool]:
    return decode_bits(block_scores(image), len(scheme.bits)).tolist()


# ---------------------------------------------------------------- the reference package, as the pipelines call it


def reference_encoder(imwatermark: ModuleType, scheme: SchemeName) -> Any:
    encoder = imwatermark.WatermarkEncoder()
    if scheme == "sdv1":
        encoder.set_watermark("bytes", b"StableDiffusionV1")  # CompVis' scripts/txt2img.py
    else:
        encoder.set_watermark("bits", list(SDXL.bits))  # generative-models and diffusers
    return encoder


def reference_marked(imwatermark: ModuleType, image: Image.Image, scheme: SchemeName, path: str) -> Image.Image:
    """The package's mark written as each pipeline writes it: SD v1's scripts on the 8-bit image (BGR); Stability's
    generative-models on float BGR in 0..255, then clamped and truncated to 8 bits when saved; diffusers' SDXL
    pipeline the same, rounded."""
    encoder = reference_encoder(imwatermark, scheme)
    rgb = np.asarray(image)
    if path == "8-bit":
        return Image.fromarray(encoder.encode(np.ascontiguousarray(rgb[:, :, ::-1]), "dwtDct")[:, :, ::-1])
    marked = encoder.encode(np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32), "dwtDct")[:, :, ::-1]
    marked = np.clip(marked, 0, 255)
    return Image.fromarray((np.round(marked) if path == "float, rounded" else marked).astype(np.uint8))


def reference_bits(imwatermark: ModuleType, image: Image.Image, scheme: Scheme) -> list[bool]:
    decoder = imwatermark.WatermarkDecoder("bits", len(scheme.bits))
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    return [bool(bit) for bit in decoder.decode(bgr, "dwtDct")]


@pytest.mark.parametrize(
    ("scheme", "path"),
    [("sdv1", "8-bit"), ("sdxl", "8-bit"), ("sdxl", "float, truncated"), ("sdxl", "float, rounded")],
)
def test_marks_the_reference_writes_are_found(reference: ModuleType, scheme: SchemeName, path: str) -> None:
    marked = png(reference_marked(reference, photo_like(1), scheme, path))
    assert found(marked) == [SCHEMES[scheme].source]


@pytest.mark.parametrize(("scheme", "threshold"), [("sdxl", SETTINGS.sdxl_min_bits), ("sdv1", SETTINGS.sdv1_min_bits)])
def test_the_reference_reads_our_marks(reference: ModuleType, scheme: SchemeName, threshold: int) -> None:
    expected = SCHEMES[scheme]
    for seed in (1, 2):
        decoded = reference_bits(reference, png(embed_watermark(photo_like(seed), scheme)), expected)
        assert sum(bit == want for bit, want in zip(decoded, expected.bits, strict=True)) >= threshold


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scheme", ["sdxl", "sdv1"])
def test_our_encoder_writes_the_reference_pixels(
    reference: ModuleType, scheme: SchemeName, size: tuple[int, int]
) -> None:
    image = photo_like(3, size)
    ours = np.asarray(embed_watermark(image, scheme))
    assert np.array_equal(ours, np.asarray(reference_marked(reference, image, scheme, "8-bit")))


def _unmarked_images() -> list[tuple[str, Callable[[tuple[int, int]], Image.Image]]]:
    return [
        ("flat scene", lambda size: make_image(4, size)),
        ("photo-like", lambda size: photo_like(5, size)),
        ("photo-like, JPEG q90", lambda size: jpeg(photo_like(6, size), 90, 2)),
        ("marked SDXL", lambda size: embed_watermark(photo_like(7, size), "sdxl")),
        ("marked SD v1", lambda size: embed_watermark(photo_like(8, size), "sdv1")),
        ("marked, JPEG 4:4:4 q95", lambda size: jpeg(embed_watermark(photo_like(9, size), "sdxl"), 95, 0)),
    ]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("label", "make"), _unmarked_images())
def test_our_bits_are_the_reference_decoders(
    reference: ModuleType, label: str, make: Callable[[tuple[int, int]], Image.Image], size: tuple[int, int]
) -> None:
    """Every bit of both lengths, whatever the image: the block votes land exactly on the 18/36 boundary often."""
    image = make(size)
    for scheme in (SDXL, SDV1):
        assert our_bits(image, scheme) == reference_bits(reference, image, scheme), (label, scheme.name)


@pytest.mark.parametrize("shape", [(2, 2), (8, 8), (16, 24), (130, 66), (512, 384)])
def test_the_haar_step_is_pywavelets_bit_for_bit(shape: tuple[int, int]) -> None:
    u = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(approximation(u), pywt.dwt2(u, "haar")[0])


# ---------------------------------------------------------------- what the reader reports


@pytest.mark.parametrize(("scheme", "detail"), [("sdxl", "48 of 48 bits match (threshold 41)"), ("sdv1", None)])
def test_a_mark_is_one_ai_generated_item(scheme: SchemeName, detail: str | None) -> None:
    items = read_watermarks(png(embed_watermark(photo_like(1), scheme)), SETTINGS)
    assert items == [
        EvidenceItem(
            kind="watermark",
            claim="ai_generated",
            valid=True,
            trusted=False,
            source=SCHEMES[scheme].source,
            detail=detail or items[0].detail,
        )
    ]
    matches, _ = items[0].detail.split(" of ")
    threshold = SETTINGS.sdxl_min_bits if scheme == "sdxl" else SETTINGS.sdv1_min_bits
    assert items[0].detail.endswith(f" of {len(SCHEMES[scheme].bits)} bits match (threshold {threshold})")
    assert int(matches) >= threshold


@pytest.mark.parametrize("scheme", ["sdxl", "sdv1"])
@pytest.mark.parametrize(
    ("copy", "change"),
    [("PNG", png), ("JPEG 4:4:4 q95", lambda image: jpeg(image, 95, 0))],
)
def test_marks_survive_lossless_saves_and_jpeg_without_subsampling(
    scheme: SchemeName, copy: str, change: Callable[[Image.Image], Image.Image]
) -> None:
    for seed in (1, 2, 3):
        assert found(change(embed_watermark(photo_like(seed), scheme))) == [SCHEMES[scheme].source], (copy, seed)


LOOK_ALIKES: list[tuple[str, Callable[[], Image.Image]]] = [
    ("generated scene", lambda: make_image(11, (640, 480))),
    ("generated scene, 1 MP", lambda: make_image(12, (1155, 866))),
    ("photo-like", lambda: photo_like(13)),
    ("photo-like, JPEG q90", lambda: jpeg(photo_like(14, (1024, 768)), 90, 2)),
    ("marked SDXL, JPEG q90 4:2:0", lambda: jpeg(embed_watermark(photo_like(15), "sdxl"), 90, 2)),
    ("marked SD v1, JPEG q90 4:2:0", lambda: jpeg(embed_watermark(photo_like(15), "sdv1"), 90, 2)),
    ("marked SDXL, resized x0.5", lambda: embed_watermark(photo_like(16, (1024, 768)), "sdxl").resize((512, 384))),
    ("marked SD v1, resized x0.5", lambda: embed_watermark(photo_like(16, (1024, 768)), "sdv1").resize((512, 384))),
    ("marked SDXL, 8-pixel crop", lambda: embed_watermark(photo_like(17), "sdxl").crop((8, 8, 641, 479))),
    ("marked SD v1, 8-pixel crop", lambda: embed_watermark(photo_like(17), "sdv1").crop((8, 8, 641, 479))),
    ("black", lambda: Image.new("RGB", (512, 512))),
    ("white", lambda: Image.new("RGB", (512, 512), (255, 255, 255))),
    ("grey", lambda: Image.new("RGB", (640, 480), (128, 128, 128))),
    ("saturated blue", lambda: Image.new("RGB", (640, 480), (0, 0, 255))),
    ("saturated yellow", lambda: Image.new("RGB", (640, 480), (255, 255, 0))),
    ("flat, marked", lambda: embed_watermark(Image.new("RGB", (512, 512), (90, 140, 200)), "sdxl")),
]


@pytest.mark.parametrize(("label", "make"), LOOK_ALIKES)
def test_look_alikes_do_not_count(label: str, make: Callable[[], Image.Image]) -> None:
    assert found(make()) == []


def test_photos_do_not_count() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    for array in datasets.load_sample_images().images:
        photo = Image.fromarray(array)
        assert found(photo) == []
        assert found(jpeg(photo.resize((photo.width * 2, photo.height * 2)), 85, 2)) == []


@pytest.mark.parametrize(
    "size", [(1, 1), (7, 7), (8, 8), (255, 256), (65536, 1), (1, 70000), (7, 20000), (20000, 7), (9, 8000)]
)
def test_tiny_and_thin_images_read_as_nothing(size: tuple[int, int]) -> None:
    """Under the package's 256x256 pixels, or fewer 8x8 blocks than bits: nothing, never an error."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    assert read_watermarks(image, SETTINGS) == []


def test_a_thin_image_is_read_with_the_blocks_it_has() -> None:
    """16 pixels high, 2 block rows: SDXL has enough blocks, and the mark is found."""
    image = embed_watermark(photo_like(18, (4100, 16)), "sdxl")
    assert matching_bits(block_scores(image), SDXL) == 48
    assert matching_bits(block_scores(Image.new("RGB", (4100, 7))), SDXL) is None


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_other_modes_are_converted_not_refused(mode: str) -> None:
    marked = embed_watermark(photo_like(19), "sdxl")
    image = marked.convert(mode) if mode != "I;16" else Image.new("I;16", marked.size, 300)
    expected = [SDXL.source] if mode in ("RGBA", "CMYK") else []
    assert found(image) == expected


def test_over_max_pixels_is_skipped_not_downscaled() -> None:
    marked = png(embed_watermark(photo_like(20), "sdxl"))
    assert found(marked) == [SDXL.source]
    assert found(marked, WatermarkSettings(max_pixels=641 * 479 - 1)) == []
    assert found(marked, WatermarkSettings(enabled=False)) == []


def test_a_scheme_counts_at_its_threshold_not_below() -> None:
    """JPEG q95 4:2:0 damages a few bits (43 of 48 here): the item appears at 43 and not at 44."""
    damaged = jpeg(embed_watermark(photo_like(21), "sdxl"), 95, 2)
    assert matching_bits(block_scores(damaged), SDXL) == 43
    assert found(damaged, WatermarkSettings(sdxl_min_bits=43)) == [SDXL.source]
    assert found(damaged, WatermarkSettings(sdxl_min_bits=44)) == []


def test_the_encoder_refuses_images_the_package_refuses() -> None:
    with pytest.raises(ValueError, match="too small"):
        embed_watermark(Image.new("RGB", (255, 256)), "sdxl")


def test_the_messages() -> None:
    assert len(SDXL.bits) == 48
    assert int("".join(map(str, SDXL.bits)), 2) == 0xB3EC907BB19E
    assert bytes(np.packbits(np.array(SDV1.bits, dtype=np.uint8))) == b"StableDiffusionV1"


# ---------------------------------------------------------------- settings and imports


def test_settings() -> None:
    assert EvidenceSettings().watermark == WatermarkSettings()
    assert WatermarkSettings.model_fields["sdxl_min_bits"].description
    with pytest.raises(ValidationError):
        WatermarkSettings(sdxl_min_bits=27)  # what every flat image matches (27 ones of 48)
    with pytest.raises(ValidationError):
        WatermarkSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SETTINGS.enabled = False  # type: ignore[misc]


def test_the_runtime_does_not_import_the_reference() -> None:
    code = (
        "import sys, zoomguard.evidence.watermark, zoomguard.evidence.demo_watermark, zoomguard.app.config\n"
        "print('imwatermark' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"

"""The evidence stage in the benchmark: its cost per upload, and a stream where a share of uploads carry marks.

Cost: every read goes through the worker's own readers (`build_reader` on the bytes, `build_pixel_reader` on
the decoded pixels, default settings). Each round reads every file `reads` times, in an order that rotates
between rounds, so drift on a shared machine falls on all files alike; a row gives the median and p99 over
every read of its file, and the spread of the per-round medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from zoomguard.evidence.demo_credentials import make_chain, sign
from zoomguard.evidence.demo_watermark import embed_watermark
from zoomguard.evidence.reader import build_pixel_reader, build_reader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.images import decode_image
from zoomguard.media.settings import ImageLimits
from zoomguard.samples import encode, make_image, with_a1111_parameters, with_xmp_source_type


def with_sdxl_watermark(image: Image.Image) -> bytes:
    """A lossless PNG carrying the SDXL reference pipeline's invisible watermark (JPEG 4:2:0 would destroy it)."""
    return encode(embed_watermark(image, "sdxl"), "PNG")


_LARGE = ImageLimits(max_bytes=200 * 1024 * 1024, max_pixels=200_000_000, max_decoded_pixels=200_000_000)


def textured(image: Image.Image) -> Image.Image:
    """Colour noise over the scene, so JPEG sizes are those of photos (a flat scene compresses to almost nothing)
    and the chroma has texture, as a generator's output does (the watermark lives in U: flat chroma cannot take it)."""
    noise = Image.merge("RGB", [Image.effect_noise(image.size, 40) for _ in range(3)])
    return Image.blend(image, noise, 0.3)


def size_of(megapixels: float) -> tuple[int, int]:
    """A 4:3 frame of about `megapixels`."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    return width, int(width * 3 / 4)


def cost_files(megapixels: tuple[float, ...]) -> dict[str, bytes]:
    signer = make_chain("bench generator")
    out: dict[str, bytes] = {}
    for mp in megapixels:
        label = f"{mp:g} MP"
        image = textured(make_image(7, size_of(mp)))
        jpeg = encode(image, "JPEG")
        out[f"{label} JPEG, unmarked"] = jpeg
        out[f"{label} PNG, unmarked"] = encode(image, "PNG")
        out[f"{label} JPEG, C2PA signed"] = sign(signer, jpeg, "image/jpeg")
        out[f"{label} JPEG, XMP source type"] = with_xmp_source_type(image)
        out[f"{label} PNG, A1111 parameters"] = with_a1111_parameters(image)
        out[f"{label} PNG, SDXL watermark"] = with_sdxl_watermark(image)
    return out


def measure_evidence_cost(reads: int, rounds: int, megapixels: tuple[float, ...] = (1.0, 12.0)) -> list[dict[str, Any]]:
    """One row per file: what was found, and the bytes stage and the pixel stage timed apart (ms)."""
    settings = EvidenceSettings()
    read_bytes, read_pixels = build_reader(settings), build_pixel_reader(settings)
    assert read_bytes is not None and read_pixels is not None
    data = cost_files(megapixels)
    pixels = {name: decode_image(blob, _LARGE).image for name, blob in data.items()}
    stages: dict[str, Callable[[str], object]] = {
        "bytes_stage": lambda name: read_bytes(data[name]),
        "pixel_stage": lambda name: read_pixels(pixels[name]),
    }
    names = list(data)
    samples: dict[tuple[str, str], list[float]] = {(name, stage): [] for name in names for stage in stages}
    medians: dict[tuple[str, str], list[float]] = {key: [] for key in samples}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for stage, run in stages.items():
                times = []
                for _ in range(reads):
                    started = time.perf_counter()
                    run(name)
                    times.append((time.perf_counter() - started) * 1000.0)
                samples[name, stage] += times
                medians[name, stage].append(statistics.median(times))
    rows = []
    for name in names:
        found = [item.kind for item in read_bytes(data[name])] + [item.kind for item in read_pixels(pixels[name])]
        row: dict[str, Any] = {"file": name, "size": len(data[name]), "found": found}
        for stage in stages:
            ordered = sorted(samples[name, stage])
            row[stage] = {
                "p50_ms": round(statistics.median(ordered), 3),
                "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3),
                "round_medians_ms": [round(min(medians[name, stage]), 3), round(max(medians[name, stage]), 3)],
            }
        rows.append(row)
    return rows


def cost_markdown(rows: list[dict[str, Any]]) -> str:
    """The cost table: both stages, median / p99 over every read, and the spread of the round medians."""
    lines = [
        "| file | bytes | evidence found | bytes stage p50 / p99 ms (rounds) | pixel stage p50 / p99 ms (rounds) |",
        "|---|---|---|---|---|",
    ]

    def cell(stage: dict[str, Any]) -> str:
        low, high = stage["round_medians_ms"]
        return f"{stage['p50_ms']} / {stage['p99_ms']} ({low}-{high})"

    for row in rows:
        found = ", ".join(row["found"]) or "none"
        lines.append(
            f"| {row['file']} | {row['size']:,} | {found} | {cell(row['bytes_stage'])} | {cell(row['pixel_stage'])} |"
        )
    return "\n".join(lines)


def with_marks(images: list[bytes], share: float, size: tuple[int, int], seed: int = 7000) -> tuple[list[bytes], int]:
    """`images` with an evenly spread `share` of them replaced by marked uploads (A1111 PNG, XMP JPEG, SDXL
    watermark, in turn): the stream of the marked run. Returns the stream and how many of the marks the worker's
    readers find (a synthetic scene does not always take the watermark: its chroma can be too flat)."""
    count = int(len(images) * share)
    if count == 0:
        return list(images), 0
    settings = EvidenceSettings()
    read_bytes, read_pixels = build_reader(settings), build_pixel_reader(settings)
    assert read_bytes is not None and read_pixels is not None
    step = len(images) / count
    stream = list(images)
    makers = (with_a1111_parameters, with_xmp_source_type, with_sdxl_watermark)
    markable = (max(size[0], 256), max(size[1], 256))  # the watermark needs 256x256 pixels or more
    readable = 0
    for index in range(count):
        maker = makers[index % len(makers)]
        image = textured(make_image(seed + index, markable if maker is with_sdxl_watermark else size))
        stream[int(index * step)] = data = maker(image)
        readable += bool(read_bytes(data) or read_pixels(decode_image(data, _LARGE).image))
    return stream, readable

"""CPU cost per image outside the model: decode, resize for the model, crop and zoom, encode for a server.

Measured on this process's one core, for JPEG and PNG at several sizes; `draft_decode_ms` shows what
JPEG draft decoding (DCT scaling) saves when only the model-sized image is needed.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from zoomguard.detector.crops import cut_crops, plan_crops
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box
from zoomguard.detector.settings import CropSettings
from zoomguard.media.images import decode_image, encode_image, resize_to
from zoomguard.media.settings import ImageLimits
from zoomguard.samples import make_image


@dataclass(frozen=True)
class PrepostResult:
    format: str
    megapixels: float
    bytes: int
    decode_ms: float
    draft_decode_ms: float | None
    resize_ms: float
    crop_ms: float
    encode_ms: float
    total_ms: float
    images_per_s_per_core: float


def measure_prepost(
    megapixels: tuple[float, ...], repeats: int, max_pixels: int = 28 * 28 * 1280
) -> list[dict[str, Any]]:
    family = FAMILIES["qwen2_5_vl"]
    results = []
    for mp in megapixels:
        width = int((mp * 1e6 * 4 / 3) ** 0.5)
        height = int(width * 3 / 4)
        image = make_image(int(mp * 10), (width, height))
        for fmt in ("JPEG", "PNG"):
            buffer = io.BytesIO()
            image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 6}))
            data = buffer.getvalue()
            results.append(asdict(_measure_one(data, fmt, mp, repeats, family, max_pixels)))
    return results


def _measure_one(data: bytes, fmt: str, mp: float, repeats: int, family: Any, max_pixels: int) -> PrepostResult:
    limits = ImageLimits(max_bytes=200 * 1024 * 1024, max_pixels=200_000_000)
    decode, draft, resize, crop, encode = [], [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        decoded = decode_image(data, limits)
        decode.append(time.perf_counter() - start)
        size = family.model_size(decoded.width, decoded.height, 56 * 56, max_pixels)
        start = time.perf_counter()
        model_image = resize_to(decoded.image, size)
        resize.append(time.perf_counter() - start)
        boxes = [Box(decoded.width * f, decoded.height * f, decoded.width * (f + 0.1), decoded.height * (f + 0.1))
                 for f in (0.1, 0.4, 0.7)]  # fmt: skip
        start = time.perf_counter()
        cut_crops(decoded.image, plan_crops(boxes, decoded.width, decoded.height, CropSettings(max_crops=3)))
        crop.append(time.perf_counter() - start)
        start = time.perf_counter()
        encode_image(model_image, "PNG")
        encode.append(time.perf_counter() - start)
        if fmt == "JPEG":
            start = time.perf_counter()
            with Image.open(io.BytesIO(data)) as lazy:
                lazy.draft("RGB", size)  # decode at 1/2, 1/4 or 1/8 scale straight from the DCT
                lazy.load()
            draft.append(time.perf_counter() - start)
    med = {name: statistics.median(values) * 1000 for name, values in
           (("decode", decode), ("resize", resize), ("crop", crop), ("encode", encode))}  # fmt: skip
    total = sum(med.values())
    return PrepostResult(
        format=fmt,
        megapixels=mp,
        bytes=len(data),
        decode_ms=round(med["decode"], 2),
        draft_decode_ms=round(statistics.median(draft) * 1000, 2) if draft else None,
        resize_ms=round(med["resize"], 2),
        crop_ms=round(med["crop"], 2),
        encode_ms=round(med["encode"], 2),
        total_ms=round(total, 2),
        images_per_s_per_core=round(1000 / total, 2),
    )

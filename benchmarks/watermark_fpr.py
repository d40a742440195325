"""False positives, recall and cost of the Stable Diffusion invisible-watermark reader (zoomguard.evidence.watermark):

    .venv/bin/python benchmarks/watermark_fpr.py [--corpus FOLDER] [--reads N] [--marked N] [--cost-only]

Unmarked images: generated scenes (zoomguard.samples.make_image, many seeds and sizes; plain, with noise, and
through JPEG q90), photos derived from scikit-learn's two sample photos (crops, scales, flips, JPEG qualities),
and, with --corpus, every file of FOLDER that the worker's decoder accepts (Pillow's Tests/images was the corpus
used). For each scheme: the matching bits' max, mean and p99, and how many images reach the threshold.

Marked copies, made by the project's encoder (it writes the reference encoder's pixels): recall after a PNG save
and after JPEG 4:4:4 q95, and for contrast after JPEG q90 4:2:0, a half-size resize and an 8-pixel crop. Flat
scenes often do not take the mark (see demo_watermark), and grey ones cannot carry it: recall is measured on the
first --marked colour images of each set.

Cost: read_watermarks on a photo-like image at 1 and 12 MP, p50 and p99 per megapixel over N reads.
"""

from __future__ import annotations

import argparse
import io
import random
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from zoomguard.errors import BadInputError
from zoomguard.evidence.demo_watermark import embed_watermark
from zoomguard.evidence.settings import WatermarkSettings
from zoomguard.evidence.watermark import MIN_PIXELS, SCHEMES, Scheme, block_scores, matching_bits, read_watermarks
from zoomguard.media.images import decode_image
from zoomguard.samples import make_image
from zoomguard.telemetry.logs import configure_logging

SETTINGS = WatermarkSettings()
THRESHOLDS = {"sdxl": SETTINGS.sdxl_min_bits, "sdv1": SETTINGS.sdv1_min_bits}
SIZES = ((512, 512), (640, 480), (768, 768), (1024, 768), (832, 1216), (1155, 866), (333, 777), (1023, 1025))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a folder of images to add to the unmarked set")
    parser.add_argument("--reads", type=int, default=50, help="timed reads per size")
    parser.add_argument("--marked", type=int, default=60, help="colour images of each set marked for recall")
    parser.add_argument("--cost-only", action="store_true", help="only the cost table (to rerun on a quiet machine)")
    args = parser.parse_args()
    configure_logging("ERROR", json=True)  # the decoder's warnings on the corpus are log lines, not results
    warnings.simplefilter("ignore")  # and Pillow's on malformed TIFF tags
    if args.cost_only:
        cost(args.reads)
        return
    sets: dict[str, list[Image.Image]] = {"generated": list(generated()), "photos": list(photos())}
    if args.corpus:
        sets["corpus"] = list(corpus(args.corpus))
    print("## Unmarked images\n")
    print("| set | images | readable | scheme | max | mean | p99 | at or above threshold |")
    print("|---|---|---|---|---|---|---|---|")
    everything = [image for images in sets.values() for image in images]
    for name, images in [*sets.items(), ("all", everything)]:
        matches = bit_matches(images)
        for scheme in SCHEMES.values():
            row = np.array(matches[scheme.name])
            over = int((row >= THRESHOLDS[scheme.name]).sum())
            print(
                f"| {name} | {len(images)} | {len(row)} | {scheme.name} ({len(scheme.bits)} bits, threshold "
                f"{THRESHOLDS[scheme.name]}) | {row.max()} | {row.mean():.1f} | {np.percentile(row, 99):.1f} | "
                f"{over} |"
            )
    print("\n## Marked copies\n")
    marked = {name: [image for image in images if _colour(image)][: args.marked] for name, images in sets.items()}
    print(", ".join(f"{name}: {len(images)}" for name, images in marked.items()), "colour images marked.\n")
    print("| copy | scheme | " + " | ".join(f"{name} recall (min, median)" for name in marked) + " |")
    print("|---|---|" + "---|" * len(marked))
    for label, change in COPIES.items():
        for scheme in SCHEMES.values():
            cells = []
            for images in marked.values():
                found = [_matches(change(embed_watermark(image, scheme.name)), scheme) for image in images]
                row = np.array([-1 if value is None else value for value in found])  # -1: too small to read
                recall = (row >= THRESHOLDS[scheme.name]).mean()
                cells.append(f"{recall:.1%} ({row.min()}, {np.median(row):.0f})")
            print(f"| {label} | {scheme.name} | " + " | ".join(cells) + " |")
    cost(args.reads)


def cost(reads: int) -> None:
    """Wall time per read (p50, p99) and CPU time (p50, all threads: OpenCV's conversion may use two), which a
    busy shared machine disturbs less."""
    print("\n## Cost of read_watermarks\n")
    print("| size | p50 ms/MP | p99 ms/MP | CPU p50 ms/MP | p50 ms |")
    print("|---|---|---|---|---|")
    for label, size in (("1 MP", (1155, 866)), ("12 MP", (4000, 3000))):
        image = _photo(size)
        read_watermarks(image, SETTINGS)
        wall, cpu = [], []
        for _ in range(reads):
            started, started_cpu = time.perf_counter(), time.process_time()
            read_watermarks(image, SETTINGS)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        megapixels = size[0] * size[1] / 1e6
        p50, p99, cpu50 = np.percentile(wall, 50), np.percentile(wall, 99), np.percentile(cpu, 50)
        print(
            f"| {label} ({size[0]}x{size[1]}) | {p50 / megapixels:.2f} | {p99 / megapixels:.2f} | "
            f"{cpu50 / megapixels:.2f} | {p50:.1f} |"
        )


def bit_matches(images: list[Image.Image]) -> dict[str, list[int]]:
    """Matching bits per scheme of every image the reader would read (at least 256x256 pixels)."""
    out: dict[str, list[int]] = {name: [] for name in SCHEMES}
    for image in images:
        if image.width * image.height < MIN_PIXELS:
            continue
        scores = block_scores(image)
        for scheme in SCHEMES.values():
            value = matching_bits(scores, scheme)
            if value is not None:
                out[scheme.name].append(value)
    return out


def _matches(image: Image.Image, scheme: Scheme) -> int | None:
    if image.width * image.height < MIN_PIXELS:
        return None
    return matching_bits(block_scores(image), scheme)


def generated() -> Iterator[Image.Image]:
    """make_image scenes: plain (flat gradients and shapes), with noise, and each of those through JPEG q90."""
    for seed in range(144):
        image = make_image(seed, SIZES[seed % len(SIZES)])
        if seed % 2:
            image = _noisy(image, seed)
        yield _jpeg(image, 90) if seed % 3 == 0 else image


def photos() -> Iterator[Image.Image]:
    """Distinct views of scikit-learn's two sample photos: crops at several scales, flips, JPEG qualities."""
    from sklearn.datasets import load_sample_images

    originals = [Image.fromarray(array) for array in load_sample_images().images]
    rng = random.Random(0)
    for index in range(160):
        photo = originals[index % 2]
        scale = rng.choice((0.75, 1.0, 1.0, 1.5, 2.0, 3.0))
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
        width, height = rng.randint(256, photo.width), rng.randint(256, photo.height)
        left, top = rng.randint(0, photo.width - width), rng.randint(0, photo.height - height)
        view = photo.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            view = ImageOps.mirror(view)
        yield _jpeg(view, rng.choice((75, 85, 95))) if rng.random() < 0.5 else view


def corpus(folder: Path) -> Iterator[Image.Image]:
    """Every file the worker's decoder accepts, as it hands it on (upright RGB)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            yield decode_image(path.read_bytes()).image
        except BadInputError:
            continue


def _noisy(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 12, (image.height, image.width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, quality: int, subsampling: int = -1) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **({"subsampling": subsampling} if subsampling >= 0 else {}))
    return Image.open(buffer).convert("RGB")


def _png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Image.open(buffer).convert("RGB")


def _colour(image: Image.Image) -> bool:
    """Whether the image could carry the mark at all: it lives in U, constant on a grey image, and images under
    256x256 pixels are refused. Flat colour scenes stay in, though they often do not take it (see demo_watermark)."""
    if image.width * image.height < MIN_PIXELS:
        return False
    return float(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2YUV)[:, :, 1].std()) >= 1.0


COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "PNG": _png,
    "JPEG 4:4:4 q95": lambda image: _jpeg(image, 95, subsampling=0),
    "JPEG 4:2:0 q90": lambda image: _jpeg(image, 90, subsampling=2),
    "resize x0.5": lambda image: image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS),
    "crop 8 px": lambda image: image.crop((8, 8, image.width, image.height)),
}


def _photo(size: tuple[int, int]) -> Image.Image:
    from sklearn.datasets import load_sample_images

    return Image.fromarray(load_sample_images().images[0]).resize(size, Image.Resampling.BICUBIC)


if __name__ == "__main__":
    main()

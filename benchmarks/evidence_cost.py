"""What the cascade's evidence stage costs per upload, unmarked and marked, at 1 and 12 megapixels:

    .venv/bin/python benchmarks/evidence_cost.py [READS] [ROUNDS]

Every read goes through the worker's own reader (`evidence.reader.build_reader` on default settings: the
sniffs, then C2PA, XMP and generator metadata). Each round reads every file READS times, in an order that
rotates between rounds, so drift on a shared machine falls on all files alike. The table gives the median
and p99 over every read of a file, and the spread of the per-round medians (min-max).
"""

from __future__ import annotations

import statistics
import sys
import time

from PIL import Image

from zoomguard.evidence.demo_credentials import make_chain, sign
from zoomguard.evidence.reader import build_reader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.samples import encode, make_image, with_a1111_parameters, with_xmp_source_type

SIZES = {"1 MP": (1155, 866), "12 MP": (4000, 3000)}


def files() -> dict[str, bytes]:
    signer = make_chain("bench generator")
    out: dict[str, bytes] = {}
    for label, size in SIZES.items():
        image = _textured(make_image(7, size))
        jpeg = encode(image, "JPEG")
        out[f"{label} JPEG, unmarked"] = jpeg
        out[f"{label} JPEG, C2PA signed"] = sign(signer, jpeg, "image/jpeg")
        out[f"{label} JPEG, XMP source type"] = with_xmp_source_type(image)
        out[f"{label} PNG, A1111 parameters"] = with_a1111_parameters(image)
    return out


def _textured(image: Image.Image) -> Image.Image:
    """Noise over the scene, so JPEG sizes are those of photos (a flat scene compresses to almost nothing)."""
    noise = Image.effect_noise(image.size, 40).convert("RGB")
    return Image.blend(image, noise, 0.3)


def main(reads: int, rounds: int) -> None:
    read = build_reader(EvidenceSettings())
    assert read is not None
    data = files()
    names = list(data)
    found = {name: [item.kind for item in read(data[name])] for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    medians: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            blob = data[name]
            times = []
            for _ in range(reads):
                started = time.perf_counter()
                read(blob)
                times.append((time.perf_counter() - started) * 1000.0)
            samples[name] += times
            medians[name].append(statistics.median(times))
    print("| file | bytes | evidence found | median ms | p99 ms | round medians ms (min-max) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        ordered = sorted(samples[name])
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        spread = f"{min(medians[name]):.3f}-{max(medians[name]):.3f}"
        kinds = ", ".join(found[name]) or "none"
        print(f"| {name} | {len(data[name]):,} | {kinds} | {statistics.median(ordered):.3f} | {p99:.3f} | {spread} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, int(sys.argv[2]) if len(sys.argv) > 2 else 5)

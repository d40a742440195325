"""Hostile files through every reader of raw upload bytes, run in a child process (`python -m tests.hostile_corpus`).

Why a child: the readers reach native code (Pillow's C decoders, libtiff, c2pa-rs). A crash there would take the
whole pytest session down with a bare signal and no file name, and a hang would only show the test's timeout.
The child writes what it is about to run (file, variant, check) to a progress file first, so the parent test can
name the file that crashed or hung, and writes the counts and every escape to a JSON result at the end.

Each file is run as it is, then as seeded, deterministic mutations (the seed string includes the file name, so a
failure reproduces from the name alone): bytes replaced in the first KiB (headers and tags, where fuzzers found
Pillow's TypeErrors), truncations, and for files with metadata (XMP, EXIF, PNG text, a C2PA store) bytes replaced
and lengths or offsets rewritten inside it, with a PNG chunk's CRC made right again so the walkers read the
mutated chunk instead of skipping it.

The checks and what each may do (anything else is an escape, and the test fails naming the file):
- evidence: the composed reader of `build_reader(EvidenceSettings())`, what the worker calls: a list of items;
- metadata: `read_metadata` with default settings: a list of items;
- c2pa_sniff: `sniff_c2pa`: None or one of its MIME types;
- probe, decode, thumbnail: `probe_image`, `decode_image` and `decode_thumbnail` (256 px, the reduced JPEG
  decode) with default limits: a header / an RGB image within the limits, or a BadInputError.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import struct
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zoomguard.errors import BadInputError
from zoomguard.evidence.c2pa_sniff import sniff_c2pa
from zoomguard.evidence.containers import PNG_SIGNATURE, find_spans
from zoomguard.evidence.metadata import read_metadata
from zoomguard.evidence.reader import build_reader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.images import decode_image, decode_thumbnail, probe_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.evidence import EvidenceItem
from zoomguard.telemetry.logs import configure_logging

CORPUS_ENV = "ZOOMGUARD_CORPUS"
CHECKS = ("evidence", "metadata", "c2pa_sniff", "probe", "decode", "thumbnail")
SNIFF_MIMES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/avif", "image/heic", "image/heif", "image/tiff"}
)
HOSTILE_WORDS = (
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\xff\xff",
    b"\x00\x01\x00\x00",
)
Region = tuple[int, int]  # payload [start, end) of one metadata blob or C2PA store


# ---------------------------------------------------------------- the variants of one file


def variants(name: str, data: bytes, seed: str, rounds: int = 1) -> Iterator[tuple[str, bytes]]:
    """The file itself, then `rounds` times: 3 header mutations, 2 truncations and, when it has metadata, 3
    mutations inside it. Deterministic for (seed, name)."""
    rng = random.Random(f"{seed}:{name}")
    yield "original", data
    if not data:
        return
    regions = metadata_regions(data)
    for round_ in range(rounds):
        for index in range(3):
            yield f"r{round_}-head{index}", _replace_bytes(data, rng, 0, min(len(data), 1024))
        yield f"r{round_}-cut", data[: rng.randrange(len(data))]
        yield f"r{round_}-cut-tail", data[: max(0, len(data) - rng.randint(1, 64))]
        if regions:
            start, end = rng.choice(regions)
            yield f"r{round_}-meta-bytes", _fix_png_crcs(data, _replace_bytes(data, rng, start, end))
            yield f"r{round_}-meta-word", _fix_png_crcs(data, _hostile_word(data, rng, start, end))
            yield f"r{round_}-meta-cut", data[: rng.randrange(start, end)] if end > start else data[:start]


def _replace_bytes(data: bytes, rng: random.Random, start: int, end: int) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if end > start:
            out[rng.randrange(start, end)] = rng.randrange(256)
    return bytes(out)


def _hostile_word(data: bytes, rng: random.Random, start: int, end: int) -> bytes:
    """A 4-byte length, count or offset inside the blob (EXIF IFD entries, JUMBF box sizes, XMP extension
    headers) made huge, zero or negative-looking."""
    out = bytearray(data)
    if end - start >= 4:
        at = rng.randrange(start, end - 3)
        out[at : at + 4] = rng.choice(HOSTILE_WORDS)
    return bytes(out)


def metadata_regions(data: bytes) -> list[Region]:
    """Where the readers' blobs lie: the spans of the metadata walker with the 48 bytes before each (segment and
    chunk headers, XMP and extension headers: lengths, GUIDs, offsets), and the payload of a C2PA store."""
    try:
        regions = [(max(0, span.start - 48), span.end) for span in find_spans(data, 4096)]
    except Exception:  # the walker is under test elsewhere; a file it cannot walk just has no regions here
        regions = []
    return regions + _c2pa_regions(data)


def _c2pa_regions(data: bytes) -> list[Region]:
    if data.startswith(PNG_SIGNATURE):
        return [(start, end) for kind, start, end in _png_chunks(data) if kind == b"caBX"]
    if data.startswith(b"\xff\xd8"):
        regions, at = [], 2
        while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] not in (0xDA, 0xD9):
            (length,) = struct.unpack_from(">H", data, at + 2)
            if data[at + 1] == 0xEB:
                regions.append((at + 4, min(len(data), at + 2 + length)))
            at += 2 + length
        return regions
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        regions, at = [], 12
        while at + 8 <= len(data):
            kind, size = struct.unpack_from("<4sI", data, at)
            if kind == b"C2PA":
                regions.append((at + 8, min(len(data), at + 8 + size)))
            at += 8 + size + (size & 1)
        return regions
    return []


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each whole chunk."""
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        if at + 12 + length > len(data):
            return
        yield kind, at + 8, at + 8 + length
        at += 12 + length


def _fix_png_crcs(original: bytes, mutated: bytes) -> bytes:
    """Recompute the CRC of each PNG chunk the mutation changed (chunks are found on the mutated bytes), so the
    walkers read what was mutated instead of skipping a chunk with a bad CRC."""
    if not mutated.startswith(PNG_SIGNATURE) or len(original) != len(mutated):
        return mutated
    out = bytearray(mutated)
    for _kind, start, end in _png_chunks(mutated):
        if original[start - 4 : end] != mutated[start - 4 : end]:
            struct.pack_into(">I", out, end, zlib.crc32(memoryview(out)[start - 4 : end]))
    return bytes(out)


# ---------------------------------------------------------------- the checks


def _checks() -> dict[str, Callable[[bytes], str]]:
    settings = EvidenceSettings()
    reader = build_reader(settings)
    assert reader is not None
    limits = ImageLimits()

    def items(found: object) -> str:
        if not isinstance(found, list) or not all(isinstance(item, EvidenceItem) for item in found):
            raise AssertionError(f"not a list of EvidenceItem: {found!r:.200}")
        return "items" if found else "none"

    def sniff(data: bytes) -> str:
        mime = sniff_c2pa(data)
        if mime is not None and mime not in SNIFF_MIMES:
            raise AssertionError(f"sniff_c2pa returned {mime!r}")
        return "none" if mime is None else "store"

    def probe(data: bytes) -> str:
        try:
            header = probe_image(data, limits)
        except BadInputError as exc:
            return exc.kind
        if not (0 < header.pixels <= limits.max_pixels):
            raise AssertionError(f"probe_image returned {header}")
        return "ok"

    def decode(data: bytes) -> str:
        try:
            decoded = decode_image(data, limits)
        except BadInputError as exc:
            return exc.kind
        image = decoded.image
        if image.mode != "RGB" or image.size != (decoded.width, decoded.height) or not image.width * image.height:
            raise AssertionError(
                f"decode_image returned {image.mode} {image.size} for {decoded.width}x{decoded.height}"
            )
        if image.width * image.height > limits.max_pixels:
            raise AssertionError(f"decode_image returned {image.size}, over max_pixels")
        return "ok"

    def thumbnail(data: bytes) -> str:
        try:
            image = decode_thumbnail(data, 256, limits)
        except BadInputError as exc:
            return exc.kind
        if image.mode != "RGB" or not 0 < max(image.size) <= 256 or min(image.size) < 1:
            raise AssertionError(f"decode_thumbnail returned {image.mode} {image.size}")
        return "ok"

    return {
        "evidence": lambda data: items(reader(data)),
        "metadata": lambda data: items(read_metadata(data, settings.metadata)),
        "c2pa_sniff": sniff,
        "probe": probe,
        "decode": decode,
        "thumbnail": thumbnail,
    }


def run(
    files: list[Path], seed: str, rounds: int, progress: Path, trap: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every variant of every file through every check; what escaped, the outcome counts, the slowest cases.
    `trap` (file name -> "crash" or "hang") tests the harness itself: it must name that file."""
    checks = _checks()
    if trap:
        checks = _trapped(checks, trap)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    escaped: list[dict[str, str]] = []
    slowest: list[tuple[float, str]] = []
    cases = 0
    started = time.perf_counter()
    with progress.open("w", buffering=1) as trail:
        for path in files:
            for variant, data in variants(path.name, path.read_bytes(), seed, rounds):
                cases += 1
                case_started = time.perf_counter()
                for name, check in checks.items():
                    trail.write(f"{path.name}\t{variant}\t{name}\n")
                    try:
                        outcomes[name][check(data, path.name) if trap else check(data)] += 1
                    except Exception as exc:  # the point of the run: report it, keep going
                        outcomes[name]["escaped"] += 1
                        error = f"{type(exc).__name__}: {exc}"[:300]
                        escaped.append({"file": path.name, "variant": variant, "check": name, "error": error})
                slowest.append((time.perf_counter() - case_started, f"{path.name} {variant}"))
                slowest = sorted(slowest, reverse=True)[:5]
    return {
        "files": len(files),
        "cases": cases,
        "outcomes": {name: dict(counts) for name, counts in outcomes.items()},
        "escaped": escaped,
        "slowest_s": [[round(seconds, 3), case] for seconds, case in slowest],
        "elapsed_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _trapped(checks: dict[str, Callable[[bytes], str]], trap: dict[str, str]) -> dict[str, Any]:
    def wrap(check: Callable[[bytes], str]) -> Callable[[bytes, str], str]:
        def trapped(data: bytes, name: str) -> str:
            if trap.get(name) == "crash":
                os.abort()
            if trap.get(name) == "hang":
                time.sleep(3600)
            return check(data)

        return trapped

    return {name: wrap(check) for name, check in checks.items()}


def corpus_files(folder: Path) -> list[Path]:
    """The corpus's files in a stable order (hidden files such as the fetch script's stamp excluded)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def corpus_folder() -> Path:
    """Where the tests look for the corpus: $ZOOMGUARD_CORPUS, else where `make corpus` puts Pillow's
    Tests/images for the Pillow version installed (the fixture `pillow_corpus` fails when it is absent)."""
    override = os.environ.get(CORPUS_ENV)
    if override:
        return Path(override)
    import PIL

    return Path(__file__).resolve().parents[1] / ".cache" / "pillow-corpus" / PIL.__version__


def missing_corpus(folder: Path) -> str:
    return (
        f"the hostile-image corpus is not at {folder}: run `make corpus` (it fetches Pillow's Tests/images from "
        f"the Pillow sdist on the package registry), or set {CORPUS_ENV} to a copy of Pillow's Tests/images"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", default="0")
    parser.add_argument("--rounds", type=int, default=1, help="mutation rounds per file")
    parser.add_argument("--shard", default="0/1", help="i/n: the i-th of n interleaved slices of the files")
    parser.add_argument("--progress", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--crash-on", default="", help="harness self-test: abort on this file")
    parser.add_argument("--hang-on", default="", help="harness self-test: hang on this file")
    args = parser.parse_args(argv)
    configure_logging("ERROR", json=True)  # the worker's logging, libtiff's C handlers included
    logging.getLogger().setLevel(logging.ERROR)  # warnings on hostile files are expected: not rendered
    index, count = (int(part) for part in args.shard.split("/"))
    files = corpus_files(args.folder)[index::count]
    trap = {name: kind for name, kind in ((args.crash_on, "crash"), (args.hang_on, "hang")) if name}
    result = run(files, args.seed, args.rounds, args.progress, trap)
    args.result.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

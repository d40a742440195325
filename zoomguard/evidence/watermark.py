"""Invisible watermarks of the Stable Diffusion reference pipelines, read from decoded pixels; never raises.

Those pipelines mark their outputs with the `invisible-watermark` package's `dwtDct` method on its defaults.
What that method does, read from the package (0.2.0): the BGR image goes to YUV with OpenCV's integer
coefficients; only U carries the mark (scales [0, 36, 36]: Y's 0 means unused, and the channel loop stops
before V); U, cut to a multiple of 4 pixels, gets one level of Haar DWT; the approximation band is cut in 4x4
blocks, read row by row, and block k carries bit k mod L. A block says 1 when its largest coefficient in
magnitude, the corner left out, lies in the upper half of a 36-wide step (|v| mod 36 > 18); a bit is 1 when its
blocks' mean, times 255, exceeds 127. No DCT is applied, whatever the name says.

Every block is read whatever the message length, so the SDXL (48 bits) and SD v1 (136 bits) readings share all
the work but the last tally. The package's decoder loops over blocks in Python (~150 ms per megapixel) and
imports torch; this one does the same arithmetic over all blocks at once, in strips, in under 10 ms per megapixel.

Bit for bit: an approximation coefficient is a sum of four integers times 1/2 up to rounding, so |v| mod 36 lands
on 18 or a hair above it often, and the rounding decides the block. The Haar step therefore does the operations
PyWavelets does, in its order (rows first, each output c*a + c*b with c = 0.7071067811865476), and U comes from
OpenCV itself; tests/unit/test_evidence_watermark.py holds the result to the package's decoder on many images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import structlog
from PIL import Image

from zoomguard.evidence.settings import WatermarkSettings
from zoomguard.schemas.evidence import EvidenceItem

log = structlog.get_logger("zoomguard.evidence")

SchemeName = Literal["sdxl", "sdv1"]

STEP = 36  # the package's default scale for U
BLOCK = 4  # blocks of BLOCK x BLOCK approximation coefficients: 8 x 8 pixels
HAAR = 0.7071067811865476  # PyWavelets' Haar filter taps, 1/sqrt(2) as a float
MIN_PIXELS = 256 * 256  # the package refuses to mark (or read) smaller images: nothing to find there
# Pixels per strip: a strip's float temporaries (about 1 MB) stay in cache and are reused by malloc, where 1 MP
# strips were mapped afresh on every read and the page faults doubled the cost; also bounds memory at 40 MP.
STRIP_PIXELS = 1 << 17


@dataclass(frozen=True)
class Scheme:
    name: SchemeName
    source: str
    bits: tuple[int, ...]

    @property
    def message(self) -> npt.NDArray[np.bool_]:
        return np.array(self.bits, dtype=bool)


# Stability's generative-models and diffusers' SDXL pipelines: a fixed 48-bit message, most significant first.
SDXL = Scheme(
    "sdxl",
    "Stable Diffusion XL invisible watermark",
    tuple(int(bit) for bit in f"{0b101100111110110010010000011110111011000110011110:048b}"),
)
# CompVis' SD v1 sampling scripts: the bytes "StableDiffusionV1", 136 bits. Stability's SD v2
# scripts write "SDV2" instead (32 bits), which is not read here.
SDV1 = Scheme(
    "sdv1",
    "Stable Diffusion v1 invisible watermark",
    tuple(int(bit) for byte in b"StableDiffusionV1" for bit in f"{byte:08b}"),
)
SCHEMES: dict[SchemeName, Scheme] = {SDXL.name: SDXL, SDV1.name: SDV1}


def read_watermarks(image: Image.Image, settings: WatermarkSettings) -> list[EvidenceItem]:
    """The schemes whose message the image carries, as `ai_generated` evidence; [] for anything else.

    `image` is the decoded upload (RGB; another mode is converted). Images under 256x256 pixels cannot carry the
    mark; those above `max_pixels` are skipped rather than downscaled, which would destroy it."""
    if not settings.enabled or not MIN_PIXELS <= image.width * image.height <= settings.max_pixels:
        return []
    try:
        scores = block_scores(image if image.mode == "RGB" else image.convert("RGB"))
        found = []
        for scheme, min_bits in ((SDXL, settings.sdxl_min_bits), (SDV1, settings.sdv1_min_bits)):
            matches = matching_bits(scores, scheme)
            if matches is not None and matches >= min_bits:
                found.append(
                    EvidenceItem(
                        kind="watermark",
                        claim="ai_generated",
                        valid=True,
                        trusted=False,
                        source=scheme.source,
                        detail=f"{matches} of {len(scheme.bits)} bits match (threshold {min_bits})",
                    )
                )
        return found
    except Exception as exc:  # numeric code over a decoded image: a failure here is no evidence, never a crash
        log.warning("watermark reader failed", error=repr(exc)[:200])
        return []


def matching_bits(scores: npt.NDArray[np.bool_], scheme: Scheme) -> int | None:
    """How many decoded bits equal the scheme's message; None when there are fewer blocks than bits."""
    if scores.size < len(scheme.bits):
        return None
    return int(np.count_nonzero(decode_bits(scores, len(scheme.bits)) == scheme.message))


def decode_bits(scores: npt.NDArray[np.bool_], length: int) -> npt.NDArray[np.bool_]:
    """The package's tally: bit i is 1 when the mean of blocks i, i + length, ... times 255 exceeds 127 (its
    float arithmetic, in its order). Needs at least `length` blocks."""
    slots = np.arange(scores.size) % length
    ones = np.bincount(slots, weights=scores, minlength=length)
    blocks = np.bincount(slots, minlength=length)
    result: npt.NDArray[np.bool_] = ones / blocks * 255 > 127
    return result


def block_scores(image: Image.Image) -> npt.NDArray[np.bool_]:
    """Every block's vote, in the package's order (block rows top to bottom, each left to right)."""
    width, height = image.size
    block_rows, block_cols = height // (2 * BLOCK), width // (2 * BLOCK)
    if not block_rows or not block_cols:
        return np.zeros(0, dtype=bool)
    # The package transforms U cut to a multiple of 4; the blocks only ever cover a multiple of 8, and a
    # Haar coefficient depends on its own 2x2 pixels alone, so the rest of the image is never read.
    strip_rows = max(1, STRIP_PIXELS // (width * 2 * BLOCK)) * 2 * BLOCK
    used_height, used_width = block_rows * 2 * BLOCK, block_cols * 2 * BLOCK
    strips = []
    for top in range(0, used_height, strip_rows):
        bottom = min(top + strip_rows, used_height)
        rgb = np.asarray(image.crop((0, top, used_width, bottom)))
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
        strips.append(_strip_scores(np.asarray(yuv[:, :, 1], dtype=np.uint8)))  # a view: typed, not copied
    return np.concatenate(strips)


def approximation(u: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """One level of Haar approximation of `u` (even height and width), bit for bit PyWavelets' `dwt2(u)[0]`."""
    rows = np.multiply(u[0::2], HAAR)
    rows += np.multiply(u[1::2], HAAR)
    rows *= HAAR
    result: npt.NDArray[np.float64] = rows[:, 0::2] + rows[:, 1::2]
    return result


def blocks_of(coefficients: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The BLOCK x BLOCK blocks of a band whose sides are multiples of BLOCK, one row of 16 per block, in order."""
    rows, cols = coefficients.shape[0] // BLOCK, coefficients.shape[1] // BLOCK
    return coefficients.reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2).reshape(rows * cols, BLOCK * BLOCK)


def strongest(magnitudes: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Per block (a row of magnitudes), the position (1..15) of the largest one, the corner left out: the first
    on ties, as the package's argmax picks."""
    result: npt.NDArray[np.intp] = magnitudes[:, 1:].argmax(axis=1) + 1
    return result


def _strip_scores(u: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    magnitudes = blocks_of(np.abs(approximation(u)))
    top = np.take_along_axis(magnitudes, strongest(magnitudes)[:, None], axis=1)[:, 0]
    result: npt.NDArray[np.bool_] = np.remainder(top, STEP) > STEP / 2
    return result

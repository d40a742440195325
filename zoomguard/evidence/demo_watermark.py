"""The Stable Diffusion pipelines' invisible watermark, embedded here: for the demo's SDXL-marked sample and for the
tests where the reference package cannot be imported (it needs torch and a non-headless OpenCV).

Pixel for pixel what the package's `dwtDct` encoder writes on an 8-bit image (the SD v1 scripts' path), which
tests/unit/test_evidence_watermark.py checks against it: U of YUV, one level of Haar DWT (PyWavelets, as the
package uses it), and in each 4x4 block of the approximation band the largest coefficient in magnitude, the corner
left out, moved to the lower (bit 0) or upper (bit 1) quarter of its 36-wide step, keeping its sign. Two quirks of
the package are kept, since they are what marked images look like: the inverse transform gets the horizontal and
vertical detail bands swapped (each 2x2 cell of U comes back transposed), and U is written back to 8 bits by a
plain cast (truncation; the rare value out of range wraps).
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt
from PIL import Image

from zoomguard.evidence.watermark import BLOCK, MIN_PIXELS, SCHEMES, STEP, SchemeName, blocks_of, strongest


def embed_watermark(image: Image.Image, scheme: SchemeName) -> Image.Image:
    """`image` (converted to RGB) carrying the scheme's message; ValueError under 256x256 pixels, as the package."""
    bits = np.array(SCHEMES[scheme].bits, dtype=np.float64)
    rgb = np.array(image.convert("RGB"))
    height, width = rgb.shape[:2]
    if height * width < MIN_PIXELS:
        raise ValueError(f"{width}x{height} is too small to mark: the encoder needs 256x256 pixels or more")
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    cut_height, cut_width = height // 4 * 4, width // 4 * 4
    approximation, (horizontal, vertical, diagonal) = pywt.dwt2(yuv[:cut_height, :cut_width, 1], "haar")
    _quantise(approximation, bits)
    # the package's swap, kept (see the module's docstring); the assignment casts to uint8 as the package's does
    yuv[:cut_height, :cut_width, 1] = pywt.idwt2((approximation, (vertical, horizontal, diagonal)), "haar")
    return Image.fromarray(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB))


def _quantise(approximation: np.ndarray, bits: np.ndarray) -> None:
    """Moves each block's strongest coefficient onto its bit's quarter step, in place (block k carries bit k mod
    len(bits)); the arithmetic is the package's, in its order, so the floats come out the same."""
    rows, cols = approximation.shape[0] // BLOCK, approximation.shape[1] // BLOCK
    blocks = blocks_of(np.ascontiguousarray(approximation[: rows * BLOCK, : cols * BLOCK]))
    position = strongest(np.abs(blocks))
    value = blocks[np.arange(len(blocks)), position]
    bit = bits[np.arange(len(blocks)) % len(bits)]
    moved = (np.abs(value) // STEP + 0.25 + 0.5 * bit) * STEP
    index = np.arange(len(blocks))
    block_row, block_col = np.divmod(index, cols)
    coefficient_row, coefficient_col = np.divmod(position, BLOCK)
    approximation[block_row * BLOCK + coefficient_row, block_col * BLOCK + coefficient_col] = np.where(
        value >= 0, moved, -moved
    )

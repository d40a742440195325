"""PDQ perceptual hashes (Meta's, through the `pdqhash` package) of images reduced before hashing.

Why reduce: PDQ's own filters cost time in proportion to the pixels (about 1 s for 12 MP, 30 ms at 512 px), and
its hash only keeps a 64x64 luma summary, so a reduced copy hashes within a few bits of the full image.
ThreatExchange's reference tool also reduces to 512 px before hashing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pdqhash
from PIL import Image

from zoomguard.media.images import decode_thumbnail, resize_to, to_rgb
from zoomguard.media.settings import ImageLimits

PDQ_BITS = 256
PDQ_HEX_PATTERN = r"^[0-9a-f]{64}$"
_PDQ_HEX = re.compile(PDQ_HEX_PATTERN)
DEFAULT_REDUCE_TO = 512
# The order pdqhash returns the dihedral hashes in, by ThreatExchange's names (pdqDihedralHash256es). In Pillow's
# terms, measured: flip_y is a left-right mirror (FLIP_LEFT_RIGHT), flip_x upside down (FLIP_TOP_BOTTOM),
# rotate90 is ROTATE_90 (counter-clockwise), flip_plus1 TRANSPOSE, flip_minus1 TRANSVERSE.
DIHEDRAL_VARIANTS = ("original", "rotate90", "rotate180", "rotate270", "flip_x", "flip_y", "flip_plus1", "flip_minus1")


@dataclass(frozen=True)
class PdqHash:
    """One image's PDQ hash in ThreatExchange's text form, its quality, and (when asked) its 8 dihedral hashes."""

    hex: str  # 64 lowercase hex digits: the 256 bits, most significant word first
    quality: int  # 0..100; below ~50 the image is too flat for its hash to mean anything
    dihedral: tuple[str, ...] = ()  # the hashes of the 8 variants in DIHEDRAL_VARIANTS order (hex first), or ()

    @property
    def variants(self) -> tuple[str, ...]:
        """What a lookup should try: the 8 dihedral hashes when they were computed, else the hash itself."""
        return self.dihedral or (self.hex,)


def normalise_pdq(text: str) -> str:
    """Lowercase 64-digit hex, or ValueError: hashes arrive from lists and records written by others."""
    value = text.strip().lower()
    if not _PDQ_HEX.fullmatch(value):
        raise ValueError(f"a PDQ hash is 64 hex digits, got {len(value)} characters: {value[:80]!r}")
    return value


def hamming(a: str, b: str) -> int:
    """Bits that differ between two PDQ hashes in hex."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def pdq_of_image(image: Image.Image, reduce_to: int = DEFAULT_REDUCE_TO, *, dihedral: bool = False) -> PdqHash:
    """Hash a decoded image (any mode) through a copy no larger than reduce_to on its longest side.
    The caller's image is never modified."""
    if reduce_to < 1:
        raise ValueError(f"reduce_to must be positive, got {reduce_to}")
    return _hash_rgb(_reduced(to_rgb(image), reduce_to), dihedral)


def pdq_of_bytes(
    data: bytes, limits: ImageLimits = ImageLimits(), reduce_to: int = DEFAULT_REDUCE_TO, *, dihedral: bool = False
) -> PdqHash:
    """Hash untrusted bytes with the decoder's refusals (byte, pixel and scan limits: BadInputError); JPEGs
    decode at a reduced DCT scale, so a large photo never exists at full size."""
    if reduce_to < 1:
        raise ValueError(f"reduce_to must be positive, got {reduce_to}")
    return _hash_rgb(decode_thumbnail(data, reduce_to, limits), dihedral)


def _reduced(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    longest = max(width, height)
    if longest <= side:
        return image
    scale = side / longest
    return resize_to(image, (max(1, round(width * scale)), max(1, round(height * scale))))


def _hash_rgb(image: Image.Image, dihedral: bool) -> PdqHash:
    pixels = np.asarray(image, dtype=np.uint8)
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        variants = tuple(_hex_of(vector) for vector in vectors)
        return PdqHash(hex=variants[0], quality=int(quality), dihedral=variants)
    vector, quality = pdqhash.compute(pixels)
    return PdqHash(hex=_hex_of(vector), quality=int(quality))


def _hex_of(vector: np.ndarray) -> str:
    """pdqhash gives the 256 bits most significant first, the order of ThreatExchange's hex text."""
    return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()

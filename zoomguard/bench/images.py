"""Images for the bench's stages: every stage gets images no earlier stage sent to the engine.

Why: vLLM's prefix and encoder caches serve an image the engine has already seen, and decoding is greedy, so a
stage that repeats an earlier stage's images is partly served from the cache and measures too fast (a "pipeline"
above its own "ceiling"). Seeds are handed out in one increasing run, and each image's digest is checked against
everything handed out before, so a repeat is an error here rather than a silent cache hit. The repost stage is
the one that repeats images, on purpose, and does so within its own stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from zoomguard.samples import make_samples


class FreshImages:
    def __init__(self, size: tuple[int, int], first_seed: int = 1_000_000):
        self._size = size
        self._next_seed = first_seed
        self._seen: set[str] = set()

    def take(self, count: int) -> list[bytes]:
        """`count` generated uploads (JPEG, PNG and WebP in turn) that no earlier call returned."""
        images = [sample.data for sample in make_samples(count, seed=self._next_seed, size=self._size)]
        self._next_seed += count
        self.claim(images)
        return images

    def seed(self, count: int) -> int:
        """A run of `count` seeds for images made elsewhere (marked uploads, bank originals); never handed out again."""
        first = self._next_seed
        self._next_seed += count
        return first

    def claim(self, images: Iterable[bytes]) -> None:
        """Record images about to be sent; raises if any was sent before."""
        for data in images:
            digest = hashlib.sha256(data).hexdigest()
            if digest in self._seen:
                raise RuntimeError("a bench stage would repeat an image an earlier stage sent (cache-warm figures)")
            self._seen.add(digest)

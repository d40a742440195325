"""A process-wide budget of decoded pixels: the bound on image memory whatever the in-flight window holds.

Why: a 194 kB PNG can decode to 7071 x 7071 (about 150 MB as RGB, more while converting), and the worker keeps
up to max_in_flight events at once, so without a bound memory is in-flight x max_pixels. Each image reserves
its declared size before decoding and releases it once its original is no longer needed (after its crops are
cut). Waiters are served first come, first served, so a large image is never starved by a stream of small ones.
"""

from __future__ import annotations

import asyncio
from collections import deque


class PixelLease:
    """Pixels held for one image; `release` is idempotent, so early release and a final `finally` compose."""

    def __init__(self, budget: PixelBudget, pixels: int):
        self._budget = budget
        self.pixels = pixels
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._budget._give_back(self.pixels)


class PixelBudget:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"a pixel budget needs a positive capacity, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, pixels: int) -> PixelLease:
        """Wait until `pixels` fit (an image larger than the whole budget waits for all of it)."""
        pixels = max(1, min(pixels, self.capacity))
        if not self._waiters and self.in_use + pixels <= self.capacity:
            self.in_use += pixels
            return PixelLease(self, pixels)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pixels, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # granted just as we were cancelled: hand it on
                self._give_back(pixels)
            else:
                self._waiters = deque(entry for entry in self._waiters if entry[1] is not waiter)
                self._wake()
            raise
        return PixelLease(self, pixels)

    def _give_back(self, pixels: int) -> None:
        self.in_use -= pixels
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            pixels, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.in_use + pixels > self.capacity:
                return
            self._waiters.popleft()
            self.in_use += pixels
            waiter.set_result(None)

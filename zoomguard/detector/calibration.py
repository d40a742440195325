"""Apply a model version's Calibration to its raw P(ai).

Why: the verdict token's probability is not a calibrated probability (fine-tuning sharpens it); a
calibration fitted on review decisions ships with each model version, and the decision thresholds then
compare a number that means what it says. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from zoomguard.schemas.review import Calibration


def calibrate(p_ai: float | None, calibration: Calibration | None) -> float | None:
    """The calibrated P(ai); None stays None (no usable answer), the result is always within [0, 1]."""
    if p_ai is None or calibration is None or calibration.method == "identity":
        return p_ai
    p = _clamp(p_ai)
    if calibration.method == "temperature":
        return _temperature(p, calibration.temperature)
    return _isotonic(p, calibration.isotonic_x, calibration.isotonic_y)


def _temperature(p: float, temperature: float) -> float:
    """sigmoid(logit(p) / T): T > 1 softens, T < 1 sharpens; 0 and 1 are fixed points."""
    if p <= 0.0 or p >= 1.0:
        return p
    logit = math.log(p) - math.log1p(-p)
    scaled = logit / temperature
    if scaled >= 0:
        return 1.0 / (1.0 + math.exp(-scaled))
    exp = math.exp(scaled)
    return exp / (1.0 + exp)


def _isotonic(p: float, xs: list[float], ys: list[float]) -> float:
    """Linear interpolation between breakpoints; flat beyond the first and last (as isotonic fits clip)."""
    if p <= xs[0]:
        return _clamp(ys[0])
    if p >= xs[-1]:
        return _clamp(ys[-1])
    right = bisect_right(xs, p)
    x0, x1, y0, y1 = xs[right - 1], xs[right], ys[right - 1], ys[right]
    if x1 == x0:  # a vertical step: take its top, as p lies at (not before) the step
        return _clamp(y1)
    return _clamp(y0 + (y1 - y0) * (p - x0) / (x1 - x0))


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))

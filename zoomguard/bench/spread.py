"""Repeated runs into one figure: the median, the spread, and ratios of medians with the range of per-repeat ratios.

Why: on a shared machine one run per stage can be off by a factor (a neighbour's job takes the cores), and a ratio
of two single runs hides that. Every stage runs several times, interleaved with the others, so drift falls on all of
them alike; the report gives what a sceptical reader needs to judge a ratio.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and the relative spread (max - min) / median of one stage's repeats."""
    if not values:
        return {"runs": [], "median": 0.0, "min": 0.0, "max": 0.0, "spread": 0.0}
    median = statistics.median(values)
    return {
        "runs": [round(v, digits) for v in values],
        "median": round(median, digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "spread": round((max(values) - min(values)) / median, 3) if median else 0.0,
    }


def ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, Any]:
    """The ratio of the medians, and the lowest and highest ratio of runs made in the same repeat."""
    if not numerator or not denominator:
        return {"median_ratio": 0.0, "min": 0.0, "max": 0.0}
    low = statistics.median(denominator)
    paired = [n / d for n, d in zip(numerator, denominator, strict=False) if d > 0]
    return {
        "median_ratio": round(statistics.median(numerator) / low, 3) if low else 0.0,
        "min": round(min(paired), 3) if paired else 0.0,
        "max": round(max(paired), 3) if paired else 0.0,
    }


def above_bound(values: Sequence[float], bound: Sequence[float]) -> float | None:
    """How far the median of `values` exceeds the median of `bound` beyond both stages' spread (relative), or
    None when it does not: a pipeline above the ceiling by more than the noise is a measurement error."""
    if not values or not bound:
        return None
    top, limit = statistics.median(values), statistics.median(bound)
    if limit <= 0:
        return None
    noise = summary(values)["spread"] + summary(bound)["spread"]
    excess = top / limit - 1.0
    return round(excess, 3) if excess > noise else None

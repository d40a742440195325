"""Calibration applied to P(ai) as tables: identity, temperature scaling, isotonic interpolation and clamping."""

from __future__ import annotations

import itertools
import math

import pytest

from zoomguard.detector.calibration import calibrate
from zoomguard.schemas.review import Calibration


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@pytest.mark.parametrize(
    ("p", "calibration", "expected"),
    [
        (0.37, None, 0.37),
        (None, Calibration(method="temperature", temperature=2.0), None),
        (0.37, Calibration(), 0.37),
        (0.37, Calibration(method="identity", temperature=5.0), 0.37),  # identity ignores the other fields
        (0.5, Calibration(method="temperature", temperature=3.0), 0.5),  # 0.5 is a fixed point
        (0.9, Calibration(method="temperature", temperature=1.0), 0.9),
        (0.9, Calibration(method="temperature", temperature=2.0), _sigmoid(_logit(0.9) / 2.0)),  # softened
        (0.9, Calibration(method="temperature", temperature=0.5), _sigmoid(_logit(0.9) * 2.0)),  # sharpened
        (0.2, Calibration(method="temperature", temperature=2.0), _sigmoid(_logit(0.2) / 2.0)),
        (0.0, Calibration(method="temperature", temperature=2.0), 0.0),
        (1.0, Calibration(method="temperature", temperature=0.1), 1.0),
        (1e-300, Calibration(method="temperature", temperature=0.01), 0.0),  # underflows to 0, no error
        (1 - 1e-16, Calibration(method="temperature", temperature=0.01), 1.0),
    ],
)
def test_identity_and_temperature(p: float | None, calibration: Calibration | None, expected: float | None) -> None:
    result = calibrate(p, calibration)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-12)


ISO = Calibration(method="isotonic", isotonic_x=[0.1, 0.5, 0.9], isotonic_y=[0.0, 0.2, 1.0])


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0, 0.0),  # below the first breakpoint: flat at its value
        (0.1, 0.0),
        (0.3, 0.1),  # halfway between 0.1 -> 0.0 and 0.5 -> 0.2
        (0.5, 0.2),
        (0.7, 0.6),
        (0.8, 0.8),
        (0.9, 1.0),
        (0.99, 1.0),  # above the last: flat
        (1.0, 1.0),
    ],
)
def test_isotonic_interpolates_between_breakpoints(p: float, expected: float) -> None:
    assert calibrate(p, ISO) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("calibration", "p", "expected"),
    [
        # breakpoint values outside [0, 1] are clamped
        (Calibration(method="isotonic", isotonic_x=[0.0, 1.0], isotonic_y=[-0.5, 1.5]), 0.0, 0.0),
        (Calibration(method="isotonic", isotonic_x=[0.0, 1.0], isotonic_y=[-0.5, 1.5]), 1.0, 1.0),
        (Calibration(method="isotonic", isotonic_x=[0.0, 1.0], isotonic_y=[-0.5, 1.5]), 0.5, 0.5),
        (Calibration(method="isotonic", isotonic_x=[0.0, 1.0], isotonic_y=[-0.5, 1.5]), 0.1, 0.0),
        # a vertical step (repeated x): at the step, its top
        (Calibration(method="isotonic", isotonic_x=[0.0, 0.5, 0.5, 1.0], isotonic_y=[0.0, 0.1, 0.9, 1.0]), 0.5, 0.9),
        (Calibration(method="isotonic", isotonic_x=[0.0, 0.5, 0.5, 1.0], isotonic_y=[0.0, 0.1, 0.9, 1.0]), 0.25, 0.05),
        # raw values outside [0, 1] are clamped before mapping
        (ISO, -0.2, 0.0),
        (ISO, 1.7, 1.0),
    ],
)
def test_isotonic_clamps(calibration: Calibration, p: float, expected: float) -> None:
    assert calibrate(p, calibration) == pytest.approx(expected, abs=1e-12)


def test_calibrations_are_monotonic() -> None:
    grid = [i / 200 for i in range(201)]
    for calibration in (ISO, Calibration(method="temperature", temperature=1.7)):
        values = [calibrate(p, calibration) for p in grid]
        assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(values))

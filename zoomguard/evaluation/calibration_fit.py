"""Fit the P(ai) calibration shipped with a model version: temperature scaling or isotonic (PAV).

Why cross-fitting: a calibration scored on the data it was fitted on looks better than it is (isotonic
regression in particular memorises). Each method is fitted on k-1 folds and scored on the held-out fold;
the method with the lowest held-out log loss wins and is then refitted on everything. The held-out ECE
it reports is the honest one. Applying a calibration is zoomguard.detector.calibration.calibrate, the
same function the workers run, so the fit is scored exactly as it will be served. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from zoomguard.detector.calibration import calibrate
from zoomguard.evaluation.scores import expected_calibration_error
from zoomguard.schemas.review import Calibration

Method = Literal["identity", "temperature", "isotonic"]
METHODS: tuple[Method, ...] = ("identity", "temperature", "isotonic")  # simplest first: ties go to it
_EPS = 1e-4  # probabilities are clipped to [eps, 1 - eps] when scored: one confident miss is costly, not infinite
_LOG_T_RANGE = (math.log(0.02), math.log(50.0))


@dataclass(frozen=True)
class CalibrationFit:
    calibration: Calibration
    reason: str
    heldout: dict[str, dict[str, float | None]] = field(default_factory=dict)  # method -> nll, ece

    def to_json(self) -> dict[str, Any]:
        return {"calibration": self.calibration.model_dump(), "reason": self.reason, "heldout": self.heldout}


def fit_calibration(
    p_ai: Sequence[float],
    is_ai: Sequence[bool],
    *,
    method: Method | Literal["auto"] = "auto",
    min_samples: int = 50,
    folds: int = 5,
    ece_bins: int = 10,
) -> CalibrationFit:
    """The calibration for these (raw P(ai), label) pairs; identity when there is too little to learn from."""
    if len(p_ai) != len(is_ai):
        raise ValueError("p_ai and is_ai must have the same length")
    n = len(p_ai)
    if n < max(min_samples, folds, 2) or all(is_ai) or not any(is_ai):
        why = f"{n} labelled predictions ({sum(is_ai)} ai_generated): too few to calibrate (need {min_samples})"
        return CalibrationFit(Calibration(method="identity", fitted_on=n), why)
    assignment = _fold_assignment(p_ai, is_ai, folds)
    candidates: tuple[Method, ...] = METHODS if method == "auto" else (method,)
    heldout: dict[str, dict[str, float | None]] = {
        m: _cross_fitted_scores(m, p_ai, is_ai, assignment, folds, ece_bins) for m in candidates
    }
    chosen = min(candidates, key=lambda m: _or_inf(heldout[m]["nll"]))  # min keeps the first (simplest) of ties
    calibration = fit_method(chosen, p_ai, is_ai)
    nll = heldout[chosen]["nll"]
    why = f"{chosen}: lowest held-out log loss ({nll:.4f}) over {folds} folds" if method == "auto" else "as configured"
    return CalibrationFit(calibration, why, heldout)


def fit_method(method: Method, p_ai: Sequence[float], is_ai: Sequence[bool]) -> Calibration:
    n = len(p_ai)
    if method == "temperature":
        return Calibration(method="temperature", temperature=fit_temperature(p_ai, is_ai), fitted_on=n)
    if method == "isotonic":
        xs, ys = fit_isotonic(p_ai, is_ai)
        return Calibration(method="isotonic", isotonic_x=xs, isotonic_y=ys, fitted_on=n)
    return Calibration(method="identity", fitted_on=n)


def fit_temperature(p_ai: Sequence[float], is_ai: Sequence[bool]) -> float:
    """T minimising the log loss of sigmoid(logit(p) / T); golden-section search over log T."""
    logits = [_logit(p) for p in p_ai]

    def loss(log_t: float) -> float:
        t = math.exp(log_t)
        return sum(_bce(_sigmoid(z / t), y) for z, y in zip(logits, is_ai, strict=True))

    lo, hi = _LOG_T_RANGE
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):  # the bracket shrinks by 0.618 each step: far below float noise after 80
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return round(math.exp((lo + hi) / 2.0), 6)


def fit_isotonic(p_ai: Sequence[float], is_ai: Sequence[bool]) -> tuple[list[float], list[float]]:
    """Pool adjacent violators: a non-decreasing step fit, one breakpoint per pooled block (at its mean p).

    Equal raw values are pooled first, so they always map to the same calibrated value. A fit with a
    single block is a constant, written as two breakpoints at 0 and 1.
    """
    pairs = sorted(zip(p_ai, is_ai, strict=True))
    blocks: list[list[float]] = []  # [sum_x, sum_y, weight]
    for x, y in pairs:
        if blocks and blocks[-1][0] / blocks[-1][2] == x:
            blocks[-1] = [blocks[-1][0] + x, blocks[-1][1] + float(y), blocks[-1][2] + 1.0]
        else:
            blocks.append([x, float(y), 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] > blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    xs = [b[0] / b[2] for b in blocks]
    ys = [b[1] / b[2] for b in blocks]
    if len(xs) == 1:
        return [0.0, 1.0], [ys[0], ys[0]]
    return xs, ys


def log_loss(probabilities: Sequence[float], is_ai: Sequence[bool]) -> float | None:
    if not probabilities:
        return None
    return sum(_bce(p, y) for p, y in zip(probabilities, is_ai, strict=True)) / len(probabilities)


def _cross_fitted_scores(
    method: Method,
    p_ai: Sequence[float],
    is_ai: Sequence[bool],
    assignment: Sequence[int],
    folds: int,
    ece_bins: int,
) -> dict[str, float | None]:
    predicted = [0.0] * len(p_ai)
    for fold in range(folds):
        train = [i for i, f in enumerate(assignment) if f != fold]
        fitted = fit_method(method, [p_ai[i] for i in train], [is_ai[i] for i in train])
        for i, f in enumerate(assignment):
            if f == fold:
                predicted[i] = float(calibrate(p_ai[i], fitted) or 0.0)
    return {"nll": log_loss(predicted, is_ai), "ece": expected_calibration_error(predicted, is_ai, ece_bins)}


def _fold_assignment(p_ai: Sequence[float], is_ai: Sequence[bool], folds: int) -> list[int]:
    """Deterministic and stratified: within each label, records sorted by p are dealt round-robin."""
    assignment = [0] * len(p_ai)
    for label in (True, False):
        members = sorted((i for i, y in enumerate(is_ai) if y == label), key=lambda i: (p_ai[i], i))
        for rank, i in enumerate(members):
            assignment[i] = rank % folds
    return assignment


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p) - math.log1p(-p)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _bce(p: float, y: bool) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return -math.log(p) if y else -math.log1p(-p)

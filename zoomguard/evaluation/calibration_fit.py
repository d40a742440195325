"""Fit the P(ai) calibration shipped with a model version: temperature scaling or isotonic (PAV).

The fitting is scikit-learn's (isotonic regression, log loss) and scipy's (the 1-D search for T); what is
shipped is plain lists of floats (Calibration), which the workers apply in pure Python without either.

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

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.isotonic import isotonic_regression
from sklearn.metrics import log_loss as _sklearn_log_loss

from zoomguard.detector.calibration import calibrate
from zoomguard.evaluation.scores import expected_calibration_error
from zoomguard.schemas.review import Calibration

Method = Literal["identity", "temperature", "isotonic"]
METHODS: tuple[Method, ...] = ("identity", "temperature", "isotonic")  # simplest first: ties go to it
_EPS = 1e-4  # probabilities are clipped to [eps, 1 - eps] when scored: one confident miss is costly, not infinite
_LOG_T_RANGE = (math.log(0.02), math.log(50.0))
_LOG_T_TOLERANCE = 1e-10  # far below the 6 decimals T is rounded to (the default 1e-5 would show in them)


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
    """T minimising the log loss of sigmoid(logit(p) / T): scipy's bounded Brent search over log T in [0.02, 50].

    Brent converges to the minimum the golden-section search this replaced found; T is rounded to 6
    decimals, and the two agree to within one unit of that last digit. Where the loss is flat at its
    minimum (every p = 0.5, or every p clipped at 1e-4 once T is small enough) any T there is a minimiser,
    and the one returned is wherever the search stops.
    """
    if not p_ai:
        raise ValueError("no predictions to fit a temperature to")
    logits = _logit(p_ai)
    labels = np.asarray(is_ai, dtype=bool)

    def loss(log_t: float) -> float:
        return _mean_log_loss(expit(logits / math.exp(log_t)), labels)

    found = minimize_scalar(loss, bounds=_LOG_T_RANGE, method="bounded", options={"xatol": _LOG_T_TOLERANCE})
    # bounded Brent never evaluates the ends; data that wants T beyond them gets the end itself (ties: Brent's)
    best = min((float(found.x), *_LOG_T_RANGE), key=loss)
    return round(math.exp(best), 6)


def fit_isotonic(p_ai: Sequence[float], is_ai: Sequence[bool]) -> tuple[list[float], list[float]]:
    """sklearn's isotonic regression (PAV) of the label on p; one breakpoint per pool, at its mean p.

    Equal raw values are pooled first (exactly, by np.unique), so they always map to the same calibrated
    value. sklearn gives the fitted value of each distinct p; the shipped breakpoints are the finest pools
    of that fit: a run of one fitted value is cut wherever the labels before the cut already average that
    value (where pooling adjacent violators stops). This is the curve the workers have always interpolated;
    sklearn's own breakpoints (each run's first and last p) would serve another one. A fit with a single
    pool is a constant, written as two breakpoints at 0 and 1.
    """
    if len(p_ai) != len(is_ai):
        raise ValueError("p_ai and is_ai must have the same length")
    if not p_ai:
        return [], []
    distinct, which, counts = np.unique(np.asarray(p_ai, dtype=float), return_inverse=True, return_counts=True)
    ai = np.bincount(which, weights=np.asarray(is_ai, dtype=float), minlength=len(distinct))  # whole numbers
    fitted = isotonic_regression(ai / counts, sample_weight=counts.astype(float), increasing=True)
    # runs of one fitted value, and the counts inside the run up to each point (exact: whole numbers)
    run_start = np.r_[True, fitted[1:] != fitted[:-1]]
    run = np.cumsum(run_start) - 1
    cum_n, cum_ai = np.cumsum(counts), np.cumsum(ai)
    before_n, before_ai = (cum_n - counts)[run_start][run], (cum_ai - ai)[run_start][run]
    run_n, run_ai = np.bincount(run, weights=counts), np.bincount(run, weights=ai)
    cut_after = (cum_ai - before_ai) * run_n[run] == run_ai[run] * (cum_n - before_n)
    pool = np.r_[0, np.cumsum(cut_after[:-1])]
    pool_n = np.bincount(pool, weights=counts)
    xs = (np.bincount(pool, weights=distinct * counts) / pool_n).tolist()
    ys = (np.bincount(pool, weights=ai) / pool_n).tolist()
    if len(xs) == 1:
        return [0.0, 1.0], [ys[0], ys[0]]
    return xs, ys


def log_loss(probabilities: Sequence[float], is_ai: Sequence[bool]) -> float | None:
    """Mean binary log loss (sklearn's), with p clipped to [1e-4, 1 - 1e-4] first; None for no records."""
    if not probabilities:
        return None
    return _mean_log_loss(np.asarray(probabilities, dtype=float), np.asarray(is_ai, dtype=bool))


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


def _logit(p: Sequence[float]) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=float), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(clipped) - np.log1p(-clipped))


def _mean_log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """sklearn's log loss after our clip (sklearn clips only at float precision, so a sure miss would cost ~36)."""
    if len(p) != len(y):
        raise ValueError("probabilities and labels must have the same length")
    return float(_sklearn_log_loss(y, np.clip(p, _EPS, 1.0 - _EPS), labels=[False, True]))

"""Calibration fitting: temperature recovers a known temperature, isotonic is monotone, identity when too few."""

from __future__ import annotations

import itertools

import pytest

from tests.support import overconfident_scores
from zoomguard.detector.calibration import calibrate
from zoomguard.evaluation.calibration_fit import fit_calibration, fit_isotonic, fit_temperature, log_loss
from zoomguard.schemas.review import Calibration


@pytest.mark.parametrize("true_temperature", [0.5, 2.0, 3.0])
def test_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    raw, labels = overconfident_scores(4000, true_temperature, seed=11)
    fitted = fit_temperature(raw, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.12)


def test_isotonic_is_monotone_and_pools_violators() -> None:
    # (p, y): 0.1->1, 0.2->0 violate and pool to 1/2, then 0.3->0 violates that: all three pool to 1/3 at
    # mean p 0.2; 0.8->1 and 0.9->1 are in order and stay apart
    xs, ys = fit_isotonic([0.1, 0.2, 0.3, 0.8, 0.9], [True, False, False, True, True])
    assert ys == pytest.approx([1 / 3, 1.0, 1.0])
    assert xs == pytest.approx([0.2, 0.8, 0.9])
    raw, labels = overconfident_scores(500, 2.5, seed=3)
    xs, ys = fit_isotonic(raw, labels)
    assert all(b > a for a, b in itertools.pairwise(xs))
    assert all(b >= a for a, b in itertools.pairwise(ys))
    calibration = Calibration(method="isotonic", isotonic_x=xs, isotonic_y=ys)
    grid = [i / 100 for i in range(101)]
    mapped = [calibrate(p, calibration) or 0.0 for p in grid]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(mapped))


def test_isotonic_ties_map_to_one_value_and_single_block_is_constant() -> None:
    xs, ys = fit_isotonic([0.5, 0.5, 0.5, 0.5], [True, False, True, True])
    assert (xs, ys) == ([0.0, 1.0], [0.75, 0.75])


@pytest.mark.parametrize(
    ("p_ai", "labels", "why"),
    [
        ([0.9] * 10, [True, False] * 5, "too few"),  # under min_samples
        ([0.2 + i / 200 for i in range(100)], [True] * 100, "too few"),  # one class only: nothing to learn
    ],
)
def test_identity_when_it_cannot_learn(p_ai: list[float], labels: list[bool], why: str) -> None:
    fit = fit_calibration(p_ai, labels, min_samples=50)
    assert fit.calibration.method == "identity" and why in fit.reason
    assert fit.calibration.fitted_on == len(p_ai)


def test_auto_picks_a_method_by_cross_fitted_log_loss_and_it_helps() -> None:
    raw, labels = overconfident_scores(1500, 3.0, seed=5)  # badly overconfident
    fit = fit_calibration(raw, labels, min_samples=50, folds=5)
    assert fit.calibration.method in ("temperature", "isotonic")
    assert set(fit.heldout) == {"identity", "temperature", "isotonic"}
    chosen = fit.heldout[fit.calibration.method]
    assert chosen["nll"] == min(v["nll"] for v in fit.heldout.values() if v["nll"] is not None)
    assert chosen["nll"] < fit.heldout["identity"]["nll"]  # type: ignore[operator]
    assert chosen["ece"] < fit.heldout["identity"]["ece"]  # type: ignore[operator]
    # scored on fresh data, the calibrated probabilities are better than the raw ones
    fresh_raw, fresh_labels = overconfident_scores(1500, 3.0, seed=6)
    calibrated = [calibrate(p, fit.calibration) or 0.0 for p in fresh_raw]
    assert log_loss(calibrated, fresh_labels) < log_loss(fresh_raw, fresh_labels)  # type: ignore[operator]


def test_well_calibrated_scores_stay_near_identity() -> None:
    raw, labels = overconfident_scores(3000, 1.0, seed=8)
    fit = fit_calibration(raw, labels, method="temperature")
    assert fit.calibration.method == "temperature" and fit.reason == "as configured"
    assert fit.calibration.temperature == pytest.approx(1.0, abs=0.1)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        fit_calibration([0.5, 0.6], [True])

"""Calibration intercept and slope, reliability-diagram points, and the patient bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlops_platform.evaluation.bootstrap import BootstrapError, clustered_bootstrap_ci
from mlops_platform.evaluation.calibration import (
    CalibrationInputError,
    calibration_curve_points,
    calibration_intercept_slope,
)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from the predicted probabilities themselves: perfect calibration."""
    rng = np.random.default_rng(0)
    p = _expit(rng.normal(-2.0, 1.0, 40_000))
    y = (rng.random(p.size) < p).astype(int)
    return y, p


def test_perfectly_calibrated_predictions(calibrated) -> None:
    intercept, slope = calibration_intercept_slope(*calibrated)
    assert intercept == pytest.approx(0.0, abs=0.05)
    assert slope == pytest.approx(1.0, abs=0.05)


def test_overconfident_predictions_have_slope_below_one(calibrated) -> None:
    y, p = calibrated
    _, slope = calibration_intercept_slope(y, _expit(2.0 * _logit(p)))
    assert slope == pytest.approx(0.5, abs=0.03)


def test_overpredicted_risk_has_negative_intercept(calibrated) -> None:
    y, p = calibrated
    intercept, slope = calibration_intercept_slope(y, _expit(_logit(p) + 0.7))
    assert intercept == pytest.approx(-0.7, abs=0.05)
    assert slope == pytest.approx(1.0, abs=0.05)


def test_slope_matches_an_unpenalised_logistic_regression() -> None:
    rng = np.random.default_rng(1)
    p = _expit(rng.normal(-1.5, 0.8, 3000))
    y = (rng.random(p.size) < _expit(0.3 + 0.8 * _logit(p))).astype(int)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    reference.fit(_logit(p).reshape(-1, 1), y)
    _, slope = calibration_intercept_slope(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-4)


def test_perfect_separation_gives_nan_rather_than_a_number() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert all(np.isnan(calibration_intercept_slope(y, p)[1:]))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], "both outcomes"),
        ([0, 1], [0.1, 0.2, 0.3], "same length"),
        ([0, 2], [0.1, 0.2], "0 or 1"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "finite"),
    ],
)
def test_bad_inputs_are_rejected(y: list, p: list, message: str) -> None:
    with pytest.raises(CalibrationInputError, match=message):
        calibration_intercept_slope(np.array(y), np.array(p))


def test_curve_points_cover_every_row_and_follow_the_diagonal(calibrated) -> None:
    y, p = calibrated
    curve = calibration_curve_points(y, p, n_bins=10)
    assert curve.counts.sum() == y.size
    assert len(curve.counts) == 10
    assert np.all(np.diff(curve.mean_predicted) > 0)
    assert np.max(np.abs(curve.observed_rate - curve.mean_predicted)) < 0.03


def test_curve_points_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.8])
    curve = calibration_curve_points(y, p, n_bins=2)
    np.testing.assert_allclose(curve.mean_predicted, [0.15, 0.7])
    np.testing.assert_allclose(curve.observed_rate, [0.0, 1.0])
    np.testing.assert_array_equal(curve.counts, [2, 2])


def test_curve_points_with_tied_probabilities_merge_bins() -> None:
    curve = calibration_curve_points(np.array([0, 1, 0, 1]), np.full(4, 0.3), n_bins=10)
    assert curve.counts.tolist() == [4]


# --- patient-clustered bootstrap ---------------------------------------------------------------


def _patients(n_patients: int, visits: int, seed: int = 0):
    """Scored encounters where every patient repeats the same encounter ``visits`` times."""
    rng = np.random.default_rng(seed)
    p = _expit(rng.normal(-1.5, 1.0, n_patients))
    y = (rng.random(n_patients) < p).astype(int)
    ids = np.arange(n_patients)
    return np.repeat(y, visits), np.repeat(p, visits), np.repeat(ids, visits)


def test_point_estimate_and_interval_bracket_it() -> None:
    y, p, ids = _patients(2000, 3)
    point, lower, upper = clustered_bootstrap_ci(y, p, ids, n_boot=100)
    assert point == pytest.approx(roc_auc_score(y, p))
    assert lower < point < upper


def test_resampling_patients_widens_the_interval_for_repeated_encounters() -> None:
    y, p, ids = _patients(1500, 9)
    _, lo_patients, hi_patients = clustered_bootstrap_ci(y, p, ids, n_boot=150, seed=1)
    rows = np.arange(y.size)
    _, lo_rows, hi_rows = clustered_bootstrap_ci(y, p, rows, n_boot=150, seed=1)
    # Nine identical encounters per patient: the honest interval is about three times wider.
    assert (hi_patients - lo_patients) > 2.0 * (hi_rows - lo_rows)


def test_same_seed_same_interval_and_any_metric() -> None:
    y, p, ids = _patients(800, 2)
    first = clustered_bootstrap_ci(y, p, ids, metric=brier_score_loss, n_boot=50, seed=4)
    second = clustered_bootstrap_ci(y, p, ids, metric=brier_score_loss, n_boot=50, seed=4)
    assert first == second
    assert first[0] == pytest.approx(brier_score_loss(y, p))


def test_clusters_may_be_text_and_rows_in_any_order() -> None:
    y, p, ids = _patients(600, 2)
    order = np.random.default_rng(2).permutation(y.size)
    labels = np.array([f"patient-{i:05d}" for i in ids])[order]
    result = clustered_bootstrap_ci(y[order], p[order], labels, n_boot=40, seed=3)
    assert result == pytest.approx(clustered_bootstrap_ci(y, p, ids, n_boot=40, seed=3))


def test_too_few_events_raise() -> None:
    y = np.zeros(200, dtype=int)
    y[0] = 1
    p = np.linspace(0.01, 0.5, 200)
    with pytest.raises(BootstrapError, match="undefined"):
        clustered_bootstrap_ci(y, p, np.arange(200), n_boot=50)

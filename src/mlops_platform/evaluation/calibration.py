"""Calibration measures for predicted readmission probabilities.

Definitions (Van Calster et al., "Calibration: the Achilles heel of predictive analytics",
BMC Medicine 2019; Steyerberg, "Clinical Prediction Models", 2nd ed., ch. 15):

- calibration slope: the coefficient b of the logistic model ``logit P(y=1) = a + b * logit(p)``.
  1 is ideal; below 1 the predictions are too extreme (overfitting), above 1 too modest.
- calibration intercept (calibration-in-the-large): the intercept a of
  ``logit P(y=1) = a + offset(logit(p))``, i.e. with the slope fixed at 1. 0 is ideal; a
  negative value means the model over-predicts risk on average, a positive value under-predicts.

The reliability diagram uses equal-count (quantile) bins because readmission probabilities
crowd below 0.3, which would leave most equal-width bins empty. The gated ECE itself is
``mlops_platform.evaluation.metrics.expected_calibration_error``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_EPS = 1e-12
_MAX_NEWTON_STEPS = 100
_TOLERANCE = 1e-10
_BLOCK_ROWS = 65_536


class CalibrationInputError(ValueError):
    """Labels or probabilities given for a calibration measure are unusable."""


@dataclass(frozen=True)
class CalibrationCurve:
    """Points of a reliability diagram: mean predicted vs observed rate per bin, with bin sizes."""

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    counts: np.ndarray


def calibration_intercept_slope(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Return (calibration intercept, calibration slope) as defined in the module docstring.

    Both are unpenalised maximum-likelihood fits (Newton-Raphson). When the outcome is
    perfectly separated by the predictions the estimates are infinite and NaN is returned.
    """
    y, p = _validate(y_true, y_prob)
    logit = _logit(p)
    intercept = _fit_logistic(y, (), offset=logit)
    slope_fit = _fit_logistic(y, (logit,), offset=None)
    return float(intercept[0]), float(slope_fit[1])


def calibration_curve_points(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[float] | np.ndarray, n_bins: int = 10
) -> CalibrationCurve:
    """Reliability-diagram points over equal-count bins of predicted probability.

    Ties can merge bins, so fewer than ``n_bins`` points may be returned; empty bins are dropped.
    """
    if n_bins < 1:
        raise CalibrationInputError(f"n_bins must be at least 1, got {n_bins}.")
    y, p = _validate(y_true, y_prob)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    counts = np.bincount(bins, minlength=max(len(edges) - 1, 1))
    predicted_sum = np.bincount(bins, weights=p, minlength=len(counts))
    observed_sum = np.bincount(bins, weights=y, minlength=len(counts))
    keep = counts > 0
    return CalibrationCurve(
        mean_predicted=predicted_sum[keep] / counts[keep],
        observed_rate=observed_sum[keep] / counts[keep],
        counts=counts[keep],
    )


def _validate(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise CalibrationInputError(
            f"Labels {y.shape} and probabilities {p.shape} must be non-empty, one-dimensional "
            "and of the same length."
        )
    if not np.isin(y, (0, 1)).all():
        raise CalibrationInputError("Labels must be 0 or 1.")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise CalibrationInputError("Probabilities must be finite numbers in [0, 1].")
    if y.min() == y.max():
        raise CalibrationInputError(
            "Calibration needs both outcomes among the labels; got only one class."
        )
    # 0/1 integers stay as they are (an int8 column is not widened); anything else is float.
    return (y if y.dtype.kind in "iu" else y.astype(float)), p


def _logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of p clipped away from 0 and 1, in one output array and one temporary."""
    logit = np.clip(p, _EPS, 1.0 - _EPS)
    complement = 1.0 - logit
    np.divide(logit, complement, out=logit)
    del complement
    return np.log(logit, out=logit)


def _fit_logistic(
    y: np.ndarray, features: tuple[np.ndarray, ...], offset: np.ndarray | None
) -> np.ndarray:
    """Unpenalised logistic regression of ``y`` on an intercept and ``features`` (plus a fixed
    ``offset``) by Newton-Raphson; NaN coefficients if it diverges. Gradient and Hessian are
    summed over blocks of ``_BLOCK_ROWS`` rows, so memory does not grow with the rows."""
    n_rows, n_columns = len(y), 1 + len(features)
    beta = np.zeros(n_columns)
    for _ in range(_MAX_NEWTON_STEPS):
        gradient = np.zeros(n_columns)
        hessian = np.zeros((n_columns, n_columns))
        for start in range(0, n_rows, _BLOCK_ROWS):
            rows = slice(start, start + _BLOCK_ROWS)
            design = np.column_stack([np.ones(len(y[rows])), *(f[rows] for f in features)])
            eta = design @ beta
            if offset is not None:
                eta += offset[rows]
            mu = 1.0 / (1.0 + np.exp(-eta))
            weights = mu * (1.0 - mu)
            gradient += design.T @ (y[rows] - mu)
            hessian += design.T @ (design * weights[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        beta = beta + step
        if not np.isfinite(beta).all():
            break
        if np.max(np.abs(step)) < _TOLERANCE:
            return beta
    return np.full(n_columns, math.nan)

"""Confidence intervals that respect repeated encounters of the same patient.

A patient's encounters are correlated, so resampling rows would understate the uncertainty.
The bootstrap here resamples patients (clusters) with replacement and keeps every encounter of
each drawn patient.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score

Metric = Callable[[np.ndarray, np.ndarray], float]
# Resamples may lack one class (a metric such as ROC-AUC is then undefined); more than this
# share of failed resamples means the data cannot support an interval.
_MAX_FAILED_SHARE = 0.1


class BootstrapError(ValueError):
    """The data cannot support a bootstrap interval."""


def clustered_bootstrap_ci(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    clusters: Sequence[object] | np.ndarray,
    metric: Metric = roc_auc_score,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Return (point estimate, lower, upper) of ``metric`` with a percentile interval.

    Each of ``n_boot`` resamples draws as many patients as there are, with replacement, and
    evaluates ``metric`` on all their rows. Resamples where the metric is undefined (it raises
    ``ValueError`` or returns NaN, e.g. one class only) are skipped; if more than 10% are,
    ``BootstrapError``.
    """
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    ids = np.asarray(clusters)
    if y.ndim != 1 or y.shape != p.shape or y.shape != ids.shape or len(y) == 0:
        raise BootstrapError(
            f"Labels {y.shape}, probabilities {p.shape} and clusters {ids.shape} must be "
            "non-empty, one-dimensional and of the same length."
        )
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise BootstrapError(f"Need n_boot >= 1 and 0 < alpha < 1; got {n_boot} and {alpha}.")
    point = float(metric(y, p))

    # Sort rows by cluster so each cluster is one contiguous run [start, start + size).
    codes = np.unique(ids, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    y_sorted, p_sorted = y[order], p[order]

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), size=(n_boot, len(sizes)))
    values = []
    with warnings.catch_warnings():
        # A one-class resample is counted below; sklearn's warning about it would only be noise.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for drawn in draws:
            rows = _expand_runs(starts[drawn], sizes[drawn])
            try:
                value = float(metric(y_sorted[rows], p_sorted[rows]))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    failed = n_boot - len(values)
    if failed > _MAX_FAILED_SHARE * n_boot:
        raise BootstrapError(
            f"The metric was undefined in {failed} of {n_boot} resamples (limit "
            f"{_MAX_FAILED_SHARE:.0%}); the evaluation set is too small or has too few events."
        )
    lower, upper = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lower), float(upper)


def _expand_runs(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate the index ranges [start, start + size) without a Python loop."""
    total = int(sizes.sum())
    run_offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - run_offsets)

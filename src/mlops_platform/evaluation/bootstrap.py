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


def clustered_intervals(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    clusters: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float] | None]:
    """Percentile intervals of ROC-AUC and Brier, resampling clusters (patients).

    Draws are those of ``clustered_bootstrap_ci(..., n_boot, seed)``, as weights (how often
    each patient was drawn) instead of copied rows, so a resample costs a few weighted sums:
    ROC-AUC is the weighted Mann-Whitney statistic, Brier the drawn squared errors over the
    drawn encounters. Both equal ``clustered_bootstrap_ci`` on the same draws (tested). A
    resample lacking one outcome has no ROC-AUC and is skipped; more than 10% skipped gives
    ``None`` for ROC-AUC.
    """
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    codes = np.unique(np.asarray(clusters), return_inverse=True)[1].ravel().astype(np.int32)
    n_clusters = int(codes.max()) + 1
    squared = np.subtract(p, y, dtype=float)
    np.square(squared, out=squared)
    squared_by_cluster = np.bincount(codes, weights=squared, minlength=n_clusters)
    del squared
    rows_by_cluster = np.bincount(codes, minlength=n_clusters)
    # Negatives in score order; for each positive, the negatives scored below it ([0, low)) and
    # level with it ([low, high)). A resample's ROC-AUC is then the positives' weights times the
    # cumulative negative weight at those bounds, ties counted half. Weights are whole numbers
    # (times drawn), so the sums are exact integers: int32 cumulative sums while they fit (a
    # resample holds at most n_clusters x the largest cluster's rows), int64 products. No BLAS
    # call in the loop: on a shared machine its threads cost more than the arithmetic. Arrays
    # per row are int32 codes and one sorted copy of the negatives' scores, freed before the loop.
    is_positive = y == 1
    negative_scores = p[~is_positive]
    negative_order = np.argsort(negative_scores, kind="stable")
    negative_scores = negative_scores[negative_order]
    count_type = np.int32 if n_clusters * int(rows_by_cluster.max()) < 2**31 else np.int64
    negative_codes = codes[~is_positive][negative_order]
    del negative_order
    positive_codes = codes[is_positive]
    positive_scores = p[is_positive]
    del codes, is_positive
    low = np.searchsorted(negative_scores, positive_scores, side="left")
    high = np.searchsorted(negative_scores, positive_scores, side="right")
    del negative_scores, positive_scores
    negative_weights = np.empty(len(negative_codes), dtype=count_type)
    cumulative = np.zeros(len(negative_codes) + 1, dtype=count_type)
    squared_drawn = np.empty(n_clusters)
    rng = np.random.default_rng(seed)
    aucs: list[float] = []
    briers: list[float] = []
    for _ in range(n_boot):
        drawn = rng.integers(0, n_clusters, size=n_clusters)
        times = np.bincount(drawn, minlength=n_clusters)
        np.multiply(times, squared_by_cluster, out=squared_drawn)
        briers.append(float(squared_drawn.sum() / int(times @ rows_by_cluster)))
        np.take(times.astype(count_type), negative_codes, out=negative_weights)
        np.cumsum(negative_weights, out=cumulative[1:])
        positive_weights = times[positive_codes]
        total_positive, total_negative = int(positive_weights.sum()), int(cumulative[-1])
        if total_positive == 0 or total_negative == 0:
            continue
        # Twice the weighted count of (positive, negative) pairs ranked right, ties counting one.
        pairs_twice = int(positive_weights @ (cumulative[low].astype(np.int64) + cumulative[high]))
        aucs.append(pairs_twice / (2 * total_positive * total_negative))
    quantiles = [alpha / 2.0, 1.0 - alpha / 2.0]
    failed = n_boot - len(aucs)
    auc_interval = (
        None
        if failed > _MAX_FAILED_SHARE * n_boot
        else tuple(float(v) for v in np.quantile(aucs, quantiles))
    )
    return {
        "roc_auc": auc_interval,  # type: ignore[dict-item]
        "brier": tuple(float(v) for v in np.quantile(briers, quantiles)),  # type: ignore[dict-item]
    }


def _expand_runs(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate the index ranges [start, start + size) without a Python loop."""
    total = int(sizes.sum())
    run_offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - run_offsets)

"""Evaluation metrics for a risk model: ranking, calibration and the operating point."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

ECE_BINS: int = 10


class MetricsError(ValueError):
    """Labels or probabilities cannot be scored."""


def expected_calibration_error(
    y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """Weighted mean |mean predicted − observed rate| over equal-frequency bins of risk.

    Bin edges are the quantiles of the predicted risk at 1/n_bins, 2/n_bins, ... (deciles by
    default), so each bin holds about the same number of encounters; encounters with equal
    predictions always share a bin (the result never depends on row order), so heavy ties give
    fewer or unequal bins. Each bin weighs by its share of encounters. Equal-frequency bins stay
    populated when most predictions sit near the base rate, unlike equal-width bins.
    """
    labels, probabilities = _validated(y_true, y_prob)
    edges = np.quantile(probabilities, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, probabilities, side="right")
    total = 0.0
    for bin_id in np.unique(bins):
        members = bins == bin_id
        gap = abs(probabilities[members].mean() - labels[members].mean())
        total += gap * members.sum() / labels.size
    return float(total)


def classification_metrics(
    y_true: ArrayLike, y_prob: ArrayLike, threshold: float
) -> dict[str, float]:
    """Score predicted probabilities against 0/1 labels.

    Keys: roc_auc, pr_auc (average precision), brier, ece (see `expected_calibration_error`),
    recall and precision of the flag `y_prob >= threshold` (precision is 0.0 when nothing is
    flagged), mean_predicted, observed_rate and n.
    """
    if not 0.0 < threshold < 1.0:
        raise MetricsError(
            f"threshold must lie strictly between 0 and 1; got {threshold}. "
            "Set evaluation.operating_threshold to a probability."
        )
    labels, probabilities = _validated(y_true, y_prob)
    if np.unique(labels).size < 2:
        raise MetricsError(
            f"Ranking metrics need both outcomes; all {labels.size} labels are {int(labels[0])}. "
            "Evaluate on a larger or less filtered set."
        )
    flagged = (probabilities >= threshold).astype("int64")
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "ece": expected_calibration_error(labels, probabilities),
        "recall": float(recall_score(labels, flagged, zero_division=0.0)),
        "precision": float(precision_score(labels, flagged, zero_division=0.0)),
        "mean_predicted": float(probabilities.mean()),
        "observed_rate": float(labels.mean()),
        "n": float(labels.size),
    }


def _validated(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true, dtype="float64").ravel()
    probabilities = np.asarray(y_prob, dtype="float64").ravel()
    if labels.size == 0 or labels.size != probabilities.size:
        raise MetricsError(
            f"Need as many probabilities as labels, and at least one; got {labels.size} labels "
            f"and {probabilities.size} probabilities."
        )
    if not np.isin(labels, (0.0, 1.0)).all():
        raise MetricsError(
            f"Labels must be 0 or 1; got values {np.unique(labels)[:5].tolist()}. "
            "Pass 0/1 outcome labels."
        )
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
        raise MetricsError(
            f"Probabilities must be finite and within [0, 1]; got range "
            f"[{np.nanmin(probabilities)}, {np.nanmax(probabilities)}]. Pass predicted probabilities."
        )
    return labels.astype("int64"), probabilities


def sorted_roc_auc(y_sorted: np.ndarray, p_sorted: np.ndarray) -> float:
    """ROC-AUC of outcomes whose scores are already in ascending order (Mann-Whitney: for each
    readmitted encounter, the non-readmitted ones scored below it, ties counted half), in exact
    integer counts; needs both outcomes."""
    positive = np.asarray(y_sorted) == 1
    new_score = np.ones(len(p_sorted), dtype=bool)
    np.not_equal(p_sorted[1:], p_sorted[:-1], out=new_score[1:])
    starts = np.flatnonzero(new_score)
    del new_score
    positives_in = np.add.reduceat(positive, starts, dtype=np.int64)
    negatives_in = np.diff(starts, append=len(positive)) - positives_in
    del starts, positive
    negatives_below = np.cumsum(negatives_in) - negatives_in
    n_positive, n_negative = int(positives_in.sum()), int(negatives_in.sum())
    pairs_twice = 2 * int(positives_in @ negatives_below) + int(positives_in @ negatives_in)
    return pairs_twice / (2 * n_positive * n_negative)


def rank_roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """``sorted_roc_auc`` of rows in any order (one sort by score). Equals scikit-learn's
    ``roc_auc_score`` within 1e-12 (tested) in less than half its memory (a few integers per
    row instead of its float curves). Needs both outcomes."""
    p = np.asarray(y_prob, dtype="float64")
    order = np.argsort(p, kind="stable")
    y_sorted = np.asarray(y_true)[order]
    p_sorted = p[order]
    del order
    return sorted_roc_auc(y_sorted, p_sorted)

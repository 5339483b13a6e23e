"""Evaluation metrics against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_platform.evaluation.metrics import (
    ECE_BINS,
    MetricsError,
    classification_metrics,
    expected_calibration_error,
)

KEYS = {
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "recall",
    "precision",
    "mean_predicted",
    "observed_rate",
    "n",
}


def test_perfect_ranking() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], threshold=0.5)

    assert set(metrics) == KEYS
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["recall"] == 1.0
    assert metrics["precision"] == 1.0
    assert metrics["n"] == 4.0
    assert all(isinstance(value, float) for value in metrics.values())


def test_reversed_ranking_scores_zero() -> None:
    metrics = classification_metrics([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], threshold=0.5)

    assert metrics["roc_auc"] == 0.0
    assert metrics["recall"] == 0.0
    assert metrics["precision"] == 0.0


def test_brier_and_calibration_of_a_constant_prediction() -> None:
    labels = np.array([1] * 3 + [0] * 7)

    metrics = classification_metrics(labels, np.full(10, 0.2), threshold=0.5)

    assert metrics["brier"] == pytest.approx(0.3 * 0.8**2 + 0.7 * 0.2**2)
    assert metrics["ece"] == pytest.approx(0.1)
    assert metrics["mean_predicted"] == pytest.approx(0.2)
    assert metrics["observed_rate"] == pytest.approx(0.3)
    assert metrics["roc_auc"] == 0.5
    assert metrics["recall"] == 0.0


def test_recall_and_precision_at_the_threshold() -> None:
    labels = [1, 1, 1, 0, 0, 0, 0, 0]
    probabilities = [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.1, 0.05]

    metrics = classification_metrics(labels, probabilities, threshold=0.6)

    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["precision"] == pytest.approx(2 / 3)


def test_ece_is_zero_when_every_bin_is_calibrated() -> None:
    rates = np.arange(ECE_BINS) / ECE_BINS
    probabilities = np.repeat(rates, 10)
    labels = np.concatenate([[1] * k + [0] * (10 - k) for k in range(ECE_BINS)])

    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0, abs=1e-12)


def test_ece_weighs_equal_frequency_bins() -> None:
    probabilities = np.repeat([0.1, 0.5], 10)
    labels = np.array([0] * 10 + [1] * 10)

    assert expected_calibration_error(labels, probabilities, n_bins=2) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.5
    )


@pytest.mark.parametrize(
    ("labels", "probabilities", "threshold", "message"),
    [
        ([0, 1], [0.2, 0.8], 1.0, "threshold"),
        ([1, 1], [0.2, 0.8], 0.5, "both outcomes"),
        ([0, 1, 1], [0.2, 0.8], 0.5, "as many"),
        ([0, 2], [0.2, 0.8], 0.5, "0 or 1"),
        ([0, 1], [-0.1, 0.8], 0.5, r"\[0, 1\]"),
        ([0, 1], [np.nan, 0.8], 0.5, "finite"),
    ],
)
def test_unscorable_input_is_refused(
    labels: list[int], probabilities: list[float], threshold: float, message: str
) -> None:
    with pytest.raises(MetricsError, match=message):
        classification_metrics(labels, probabilities, threshold)


def test_ece_keeps_equal_predictions_in_one_bin() -> None:
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    probabilities = np.full(10, 0.2)

    shuffled = expected_calibration_error(labels[::-1], probabilities)

    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.1)
    assert shuffled == pytest.approx(0.1)

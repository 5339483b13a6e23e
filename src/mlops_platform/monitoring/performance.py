"""Realised performance of served predictions against true outcomes (pure).

Point estimates are scikit-learn's (``roc_auc_score``, ``brier_score_loss``) and the project's
calibration measures (``evaluation.calibration``, ``evaluation.metrics``). Intervals are the
patient-clustered percentile bootstrap of ``evaluation.bootstrap.clustered_bootstrap_ci``, computed
with the same random draws but as weights (how often each patient was drawn) instead of copied
rows, so one resample of a million encounters costs a few weighted sums rather than a sort:

- ROC-AUC of a resample = weighted Mann-Whitney statistic (for each readmitted encounter, the
  weight of the non-readmitted ones scored below it, ties counted half);
- Brier of a resample = sum over patients of (times drawn x squared errors) / encounters drawn.

Both equal what ``clustered_bootstrap_ci`` returns on the same data and seed (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlops_platform.evaluation.bootstrap import _MAX_FAILED_SHARE, BootstrapError
from mlops_platform.evaluation.calibration import (
    calibration_curve_points,
    calibration_intercept_slope,
)
from mlops_platform.evaluation.fairness import (
    TABLE_COLUMNS,
    UNKNOWN_GROUP,
    sensitive_groups,
)
from mlops_platform.evaluation.metrics import expected_calibration_error
from mlops_platform.monitoring.join import PATIENT, SCORE, WINDOW
from mlops_platform.monitoring.labels import OUTCOME

ALPHA: Final = 0.05
GROUP_SOURCE_COLUMNS: Final = ("race", "gender", "age")


def clustered_intervals(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    clusters: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, tuple[float, float] | None]:
    """Percentile intervals of ROC-AUC and Brier, resampling clusters (patients).

    Draws are those of ``clustered_bootstrap_ci(..., n_boot, seed)``. A resample lacking one
    outcome has no ROC-AUC and is skipped; more than 10% skipped gives ``None`` for ROC-AUC.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    codes = np.unique(np.asarray(clusters), return_inverse=True)[1].ravel()
    n_clusters = int(codes.max()) + 1
    squared_by_cluster = np.bincount(codes, weights=(p - y) ** 2, minlength=n_clusters)
    rows_by_cluster = np.bincount(codes, minlength=n_clusters)
    # Negatives in score order; for each positive, the negatives scored below it ([0, low)) and
    # level with it ([low, high)). A resample's ROC-AUC is then the positives' weights times the
    # cumulative negative weight at those bounds, ties counted half. Weights are whole numbers
    # (times drawn), so the sums are exact integers: int32 cumulative sums while they fit (a
    # resample holds at most n_clusters x the largest cluster's rows), int64 products. No BLAS
    # call in the loop: on a shared machine its threads cost more than the arithmetic.
    is_positive = y == 1
    negative_order = np.argsort(p[~is_positive], kind="stable")
    negative_scores = p[~is_positive][negative_order]
    count_type = np.int32 if n_clusters * int(rows_by_cluster.max()) < 2**31 else np.int64
    negative_codes = codes[~is_positive][negative_order].astype(np.intp)
    positive_codes = codes[is_positive].astype(np.intp)
    low = np.searchsorted(negative_scores, p[is_positive], side="left")
    high = np.searchsorted(negative_scores, p[is_positive], side="right")
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


def realised_metrics(rows: pd.DataFrame, n_boot: int, seed: int = 0) -> dict[str, Any]:
    """Metrics of labelled rows (columns ``score``, ``outcome``, ``patient``).

    Always: ``n_labelled``, ``n_events``, ``observed_rate``, ``mean_predicted``. With both
    outcomes present also ``roc_auc``, ``roc_auc_ci``, ``brier``, ``brier_ci``,
    ``calibration_intercept``, ``calibration_slope`` and ``ece`` (None where undefined).
    """
    y = rows[OUTCOME].to_numpy(dtype="int64")
    p = rows[SCORE].to_numpy(dtype=float)
    n = len(y)
    events = int(y.sum())
    result: dict[str, Any] = {
        "n_labelled": n,
        "n_events": events,
        "observed_rate": float(y.mean()) if n else None,
        "mean_predicted": float(p.mean()) if n else None,
        "roc_auc": None,
        "roc_auc_ci": None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if n else None,
        "brier_ci": None,
        "calibration_intercept": None,
        "calibration_slope": None,
        "ece": expected_calibration_error(y, p) if n else None,
    }
    if n == 0 or events in (0, n):
        return result
    result["roc_auc"] = float(roc_auc_score(y, p))
    intercept, slope = calibration_intercept_slope(y, p)
    result["calibration_intercept"] = _finite(intercept)
    result["calibration_slope"] = _finite(slope)
    try:
        intervals = clustered_intervals(y, p, rows[PATIENT].to_numpy(), n_boot, seed)
    except BootstrapError:
        return result
    result["roc_auc_ci"] = list(intervals["roc_auc"]) if intervals["roc_auc"] else None
    result["brier_ci"] = list(intervals["brier"]) if intervals["brier"] else None
    return result


def realised_subgroups(
    rows: pd.DataFrame,
    threshold: float,
    min_group_size: int,
    min_group_events: int,
    validation: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]] | None:
    """The model report's subgroup table (race, gender, age band) on the labelled rows, each row
    with ``validation_roc_auc`` beside it; None when the rows lack the group columns."""
    if any(c not in rows.columns for c in GROUP_SOURCE_COLUMNS) or rows.empty:
        return None
    complete = rows[list(GROUP_SOURCE_COLUMNS)].notna().all(axis=1).to_numpy()
    if not complete.all():
        return None
    table = fast_subgroup_table(
        rows[OUTCOME].to_numpy(dtype="int64"),
        rows[SCORE].to_numpy(dtype=float),
        encounter_groups(rows[list(GROUP_SOURCE_COLUMNS)]),
        threshold,
        min_group_size,
        min_group_events,
    )
    validated = {(str(r.get("feature")), str(r.get("group"))): r.get("roc_auc") for r in validation}
    records = []
    for record in table.to_dict(orient="records"):
        clean = {k: _plain(v) for k, v in record.items()}
        clean["validation_roc_auc"] = _plain(
            validated.get((str(record["feature"]), str(record["group"])))
        )
        records.append(clean)
    return records


def encounter_groups(raw: pd.DataFrame) -> pd.DataFrame:
    """``evaluation.fairness.sensitive_groups`` of the raw race, gender and age columns, as
    categorical columns: the rule is applied once per distinct (race, gender, age) combination
    (a few dozen) rather than once per encounter, and each encounter takes its combination's
    groups (tested equal)."""
    combination = raw.groupby(list(raw.columns), observed=True, sort=False, dropna=False).ngroup()
    codes = combination.to_numpy()
    first = np.unique(codes, return_index=True)[1]
    named = sensitive_groups(raw.iloc[first].reset_index(drop=True))
    columns = {}
    for feature in named.columns:
        labels, uniques = pd.factorize(named[feature].astype("string").fillna(UNKNOWN_GROUP))
        columns[feature] = pd.Categorical.from_codes(labels[codes], categories=uniques.astype(str))
    return pd.DataFrame(columns, index=raw.index)


def fast_subgroup_table(
    y: np.ndarray,
    p: np.ndarray,
    groups: pd.DataFrame,
    threshold: float,
    min_group_size: int,
    min_group_events: int,
) -> pd.DataFrame:
    """``evaluation.fairness.subgroup_table`` computed on group codes, with each group's ROC-AUC
    from ranks on one shared sort by score instead of fairlearn's element-wise loops (a second at
    a million rows instead of minutes; the two are tested equal). Groups in sorted order per
    feature, as fairlearn gives them."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    y_sorted, p_sorted = y[order], p[order]
    flagged_all = p >= threshold
    records = []
    for feature in groups.columns:
        codes, uniques = pd.factorize(groups[feature])
        names = np.array([str(u) for u in uniques] + [UNKNOWN_GROUP], dtype=object)
        codes = np.where(codes < 0, len(uniques), codes)  # a missing group is "Unknown"
        for group in sorted(set(names[np.unique(codes)].tolist())):
            member = np.isin(codes, np.flatnonzero(names == group))
            in_sorted = member[order]
            y_g = y[member]
            positives = y_g == 1
            flagged = flagged_all[member]
            records.append(
                {
                    "feature": str(feature),
                    "group": str(group),
                    "n": int(member.sum()),
                    "positives": int(positives.sum()),
                    "roc_auc": (
                        sorted_roc_auc(y_sorted[in_sorted], p_sorted[in_sorted])
                        if 0 < positives.sum() < len(y_g)
                        else math.nan
                    ),
                    "recall": float(flagged[positives].mean()) if positives.any() else math.nan,
                    "false_positive_rate": (
                        float(flagged[~positives].mean()) if (~positives).any() else math.nan
                    ),
                    "selection_rate": float(flagged.mean()),
                }
            )
    table = pd.DataFrame.from_records(records)
    table["feature"] = table["feature"].astype("string")
    table["group"] = table["group"].astype("string")
    events = max(min_group_events, 1)
    table["eligible"] = (
        (table["n"] >= min_group_size)
        & (table["positives"] >= events)
        & (table["n"] - table["positives"] >= events)
    )
    return table.loc[:, list(TABLE_COLUMNS)]


def sorted_roc_auc(y_sorted: np.ndarray, p_sorted: np.ndarray) -> float:
    """ROC-AUC of outcomes whose scores are already in ascending order (Mann-Whitney: for each
    readmitted encounter, the non-readmitted ones scored below it, ties counted half), in exact
    integer counts; needs both outcomes."""
    positive = np.asarray(y_sorted) == 1
    new_score = np.ones(len(p_sorted), dtype=bool)
    new_score[1:] = p_sorted[1:] != p_sorted[:-1]
    tie_block = np.cumsum(new_score) - 1
    negatives_in = np.bincount(tie_block, weights=~positive).astype(np.int64)
    positives_in = np.bincount(tie_block, weights=positive).astype(np.int64)
    negatives_below = np.cumsum(negatives_in) - negatives_in
    pairs_twice = int(positives_in @ (2 * negatives_below + negatives_in))
    n_positive, n_negative = int(positives_in.sum()), int(negatives_in.sum())
    return pairs_twice / (2 * n_positive * n_negative)


def calibration_points(rows: pd.DataFrame, n_bins: int = 10) -> dict[str, list[float]] | None:
    """Reliability-diagram points of labelled rows, for the report; None without both outcomes."""
    y = rows[OUTCOME].to_numpy(dtype="int64")
    if len(y) == 0 or y.min() == y.max():
        return None
    curve = calibration_curve_points(y, rows[SCORE].to_numpy(dtype=float), n_bins)
    return {
        "mean_predicted": curve.mean_predicted.tolist(),
        "observed_rate": curve.observed_rate.tolist(),
        "counts": curve.counts.astype(int).tolist(),
    }


def windows(rows: pd.DataFrame, n_boot: int) -> list[dict[str, Any]]:
    """``realised_metrics`` per scoring window, oldest first."""
    return [
        {"window": str(name), **realised_metrics(group, n_boot)}
        for name, group in rows.groupby(WINDOW, sort=True, observed=True)
    ]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return str(value) if not isinstance(value, (int, str)) else value

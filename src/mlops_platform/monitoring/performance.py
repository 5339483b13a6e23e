"""Realised performance of served predictions against true outcomes (pure).

Point estimates are ROC-AUC from exact pair counts (``evaluation.metrics.rank_roc_auc``) and the
Brier score (``brier``), both equal to scikit-learn's within 1e-12 in less memory, and the
project's
calibration measures (``evaluation.calibration``, ``evaluation.metrics``). Intervals are the
patient-clustered percentile bootstrap computed as weights
(``evaluation.bootstrap.clustered_intervals``), and the subgroup table is the model report's
(``evaluation.fairness.subgroup_table``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from mlops_platform.evaluation.bootstrap import BootstrapError, clustered_intervals
from mlops_platform.evaluation.calibration import (
    calibration_curve_points,
    calibration_intercept_slope,
)
from mlops_platform.evaluation.fairness import (
    UNKNOWN_GROUP,
    sensitive_groups,
    subgroup_table,
)
from mlops_platform.evaluation.metrics import expected_calibration_error, rank_roc_auc
from mlops_platform.monitoring.join import PATIENT, SCORE, WINDOW
from mlops_platform.monitoring.labels import OUTCOME

GROUP_SOURCE_COLUMNS: Final = ("race", "gender", "age")


def realised_metrics(rows: pd.DataFrame, n_boot: int, seed: int = 0) -> dict[str, Any]:
    """Metrics of labelled rows (columns ``score``, ``outcome``, ``patient``).

    Always: ``n_labelled``, ``n_events``, ``observed_rate``, ``mean_predicted``. With both
    outcomes present also ``roc_auc``, ``roc_auc_ci``, ``brier``, ``brier_ci``,
    ``calibration_intercept``, ``calibration_slope`` and ``ece`` (None where undefined).
    """
    y = rows[OUTCOME].to_numpy(dtype="int8")
    p = rows[SCORE].to_numpy(dtype=float)
    n = len(y)
    events = int(y.sum(dtype=np.int64))
    result: dict[str, Any] = {
        "n_labelled": n,
        "n_events": events,
        "observed_rate": float(y.mean()) if n else None,
        "mean_predicted": float(p.mean()) if n else None,
        "roc_auc": None,
        "roc_auc_ci": None,
        "brier": brier(y, p) if n else None,
        "brier_ci": None,
        "calibration_intercept": None,
        "calibration_slope": None,
        "ece": expected_calibration_error(y, p) if n else None,
    }
    if n == 0 or events in (0, n):
        return result
    result["roc_auc"] = rank_roc_auc(y, p)
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


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference of outcome and risk: scikit-learn's ``brier_score_loss`` (equal
    within 1e-12, tested) in two temporary arrays instead of its one-hot copies."""
    squared = np.subtract(p, y, dtype=np.float64)
    np.square(squared, out=squared)
    return float(squared.mean())


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
    table = subgroup_table(
        rows[OUTCOME].to_numpy(dtype="int64"),
        rows[SCORE].to_numpy(dtype=float),
        encounter_groups(rows[list(GROUP_SOURCE_COLUMNS)]),
        threshold,
        min_group_size,
        min_group_events=min_group_events,
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
    codes = _combination_codes(raw)
    present, first = np.unique(codes, return_index=True)
    dense = np.zeros(int(present[-1]) + 1 if len(present) else 0, dtype=np.int32)
    dense[present] = np.arange(len(present), dtype=np.int32)
    codes = dense[codes]  # 0 .. number of combinations - 1
    named = sensitive_groups(raw.iloc[first].reset_index(drop=True))
    columns = {}
    for feature in named.columns:
        labels, uniques = pd.factorize(named[feature].astype("string").fillna(UNKNOWN_GROUP))
        columns[feature] = pd.Categorical.from_codes(
            labels.astype(np.int16)[codes], categories=uniques.astype(str)
        )
    return pd.DataFrame(columns, index=raw.index)


def _combination_codes(raw: pd.DataFrame) -> np.ndarray:
    """One code per row naming its combination of the columns' values. Categorical columns
    (as the labels reader gives them) combine their small codes arithmetically, an int32 per
    row; other columns go through a group-by."""
    columns = [raw[c] for c in raw.columns]
    sizes = [
        len(c.cat.categories) + 1 if isinstance(c.dtype, pd.CategoricalDtype) else 0
        for c in columns
    ]
    if 0 in sizes or int(np.prod(sizes)) >= 2**31:
        combination = raw.groupby(list(raw.columns), observed=True, sort=False, dropna=False)
        return combination.ngroup().to_numpy()
    codes = np.zeros(len(raw), dtype=np.int32)
    for column, size in zip(columns, sizes, strict=True):
        codes *= size
        codes += column.cat.codes.to_numpy() + 1  # -1 (missing) becomes 0
    return codes


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

"""Subgroup performance and fairness gaps for the model gate.

Groups smaller than the policy's minimum size, or with fewer than its minimum number of each
outcome, are reported but excluded from the comparisons: their ROC-AUC and true/false positive
rates are too noisy (or undefined) to block a model on. On the UCI data a group of 200-350
encounters holds only 25-45 readmissions, and gaps measured on such groups swung between 0.07
and 0.26 for the same model across patient splits. A sensitive feature left with fewer than
two eligible groups cannot be assessed at all; the summary then reports NaN measures so that
the gate fails closed.

Age is grouped into three bands ("<50", "50-69", "70+") rather than the raw 10-year bands:
the raw bands below 40 hold a few hundred encounters between them, too few to compare on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_platform.evaluation.groups import AGE_BAND_COLUMN, BUILDABLE_SENSITIVE_FEATURES
from mlops_platform.evaluation.metrics import sorted_roc_auc

UNKNOWN_GROUP = "Unknown"
# How the UCI file and pandas spell a missing value of a sensitive attribute.
_MISSING_VALUES = frozenset({"?", ""})
AGE_BANDS = ("<50", "50-69", "70+")
_RAW_AGE = re.compile(r"^\[(\d+)-(\d+)\)$")

TABLE_COLUMNS = (
    "feature",
    "group",
    "n",
    "positives",
    "roc_auc",
    "recall",
    "false_positive_rate",
    "selection_rate",
    "eligible",
)


class FairnessInputError(ValueError):
    """The arrays or group columns given for a fairness analysis are unusable."""


@dataclass(frozen=True)
class FairnessSummary:
    """Fairness of one model on one evaluation set, as the gate reads it.

    Over the eligible groups of every sensitive feature: ``min_subgroup_roc_auc`` is the lowest
    group ROC-AUC (``worst_group`` names it, as "feature=group"), ``max_roc_auc_gap`` the largest
    best-minus-worst ROC-AUC within a feature (``worst_feature`` names it), and
    ``equalized_odds_difference`` the largest fairlearn equalized-odds difference (the bigger
    of the TPR and FPR gaps). All three are NaN when some feature has fewer than two eligible
    groups; ``unassessed_features`` names those features.
    """

    max_roc_auc_gap: float
    worst_feature: str
    equalized_odds_difference: float
    min_subgroup_roc_auc: float
    worst_group: str
    table: pd.DataFrame
    threshold: float
    min_group_size: int
    min_group_events: int
    unassessed_features: tuple[str, ...] = ()


def age_band(raw_age: str) -> str:
    """Map a raw UCI age band such as ``"[70-80)"`` to ``"<50"``, ``"50-69"`` or ``"70+"``."""
    match = _RAW_AGE.match(str(raw_age).strip())
    if match is None:
        raise FairnessInputError(
            f"Age value {raw_age!r} is not a UCI age band like '[70-80)'; "
            "validate the data before the fairness analysis."
        )
    lower = int(match.group(1))
    if lower < 50:
        return AGE_BANDS[0]
    if lower < 70:
        return AGE_BANDS[1]
    return AGE_BANDS[2]


def sensitive_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Build the ``race``, ``gender`` and ``age_band`` group columns from raw UCI columns.

    A missing race (``?`` in the file) becomes its own group, "Unknown", because patients whose
    race was not recorded are a group the model must also serve.
    """
    missing = [c for c in ("race", "gender", "age") if c not in frame.columns]
    if missing:
        raise FairnessInputError(
            f"Sensitive columns {missing} are missing from the frame (columns: "
            f"{list(frame.columns)}); pass the raw rows that were scored."
        )
    groups = pd.DataFrame(
        {
            "race": _fill_unknown(frame["race"]),
            "gender": _fill_unknown(frame["gender"]),
            AGE_BAND_COLUMN: frame["age"].map(age_band).astype("string"),
        },
        index=frame.index,
    )
    return groups[list(BUILDABLE_SENSITIVE_FEATURES)]


def subgroup_table(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    groups: pd.DataFrame,
    threshold: float,
    min_group_size: int,
    *,
    min_group_events: int = 1,
) -> pd.DataFrame:
    """Per (feature, group): size, positives, ROC-AUC, recall, FPR and selection rate.

    Every column of ``groups`` is one sensitive feature; missing values become "Unknown".
    ``eligible`` is True when the group has at least ``min_group_size`` rows and at least
    ``min_group_events`` of each outcome (so both classes are always required). Computed on
    group codes with each group's ROC-AUC from ranks on one shared sort by score (equal to
    fairlearn's ``MetricFrame`` with scikit-learn's metrics, tested; a second at a million rows
    instead of minutes). Groups in sorted order per feature.
    """
    y, p = _validate_arrays(y_true, y_prob, groups)
    order = np.argsort(p, kind="stable")
    y_sorted, p_sorted = y[order], p[order]
    flagged_all = p >= threshold
    records = []
    for feature in groups.columns:
        codes, uniques = _group_codes(groups[feature])
        # Missing values and the file's "?" become "Unknown", decided once per distinct value.
        filled = _fill_unknown(pd.Series(uniques, dtype=object)).tolist()
        names = np.array([*filled, UNKNOWN_GROUP], dtype=object)
        codes = np.where(codes < 0, len(uniques), codes)
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


def equalized_odds_gap(rows: pd.DataFrame) -> float:
    """Fairlearn's `equalized_odds_difference` (between groups, worst case) of the groups in
    ``rows`` of the subgroup table: the larger of the recall (true positive rate) gap and the
    false positive rate gap between the best and the worst group.

    Read from the table's per-group rates instead of asking fairlearn again: the same numbers
    (tested against fairlearn), 0.2-0.3 s less per feature at each gate on this machine.
    """
    recall = rows["recall"].astype("float64")
    false_positive_rate = rows["false_positive_rate"].astype("float64")
    return float(
        max(
            recall.max() - recall.min(),
            false_positive_rate.max() - false_positive_rate.min(),
        )
    )


def summarize_fairness(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    groups: pd.DataFrame,
    threshold: float,
    min_group_size: int,
    *,
    min_group_events: int,
) -> FairnessSummary:
    """Compute the subgroup table and the measures the gate checks (see ``FairnessSummary``)."""
    y, p = _validate_arrays(y_true, y_prob, groups)
    table = subgroup_table(
        y, p, groups, threshold, min_group_size, min_group_events=min_group_events
    )
    auc_gaps: dict[str, float] = {}
    eod: dict[str, float] = {}
    unassessed = []
    for feature in groups.columns:
        rows = table[(table["feature"] == feature) & table["eligible"]]
        if len(rows) < 2:
            unassessed.append(str(feature))
            continue
        auc_gaps[str(feature)] = float(rows["roc_auc"].max() - rows["roc_auc"].min())
        eod[str(feature)] = equalized_odds_gap(rows)
    settings = {
        "table": table,
        "threshold": threshold,
        "min_group_size": min_group_size,
        "min_group_events": min_group_events,
    }
    if unassessed:
        return FairnessSummary(
            max_roc_auc_gap=math.nan,
            worst_feature=unassessed[0],
            equalized_odds_difference=math.nan,
            min_subgroup_roc_auc=math.nan,
            worst_group="",
            unassessed_features=tuple(unassessed),
            **settings,
        )
    eligible = table[table["eligible"]]
    lowest = eligible.loc[eligible["roc_auc"].idxmin()]
    worst_feature = max(auc_gaps, key=auc_gaps.__getitem__)
    return FairnessSummary(
        max_roc_auc_gap=auc_gaps[worst_feature],
        worst_feature=worst_feature,
        equalized_odds_difference=max(eod.values()),
        min_subgroup_roc_auc=float(lowest["roc_auc"]),
        worst_group=f"{lowest['feature']}={lowest['group']}",
        **settings,
    )


def _validate_arrays(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[float] | np.ndarray, groups: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 1 or y.shape != p.shape or len(groups) != len(y):
        raise FairnessInputError(
            f"Labels ({y.shape}), probabilities ({p.shape}) and groups ({len(groups)} rows) "
            "must be one-dimensional and of the same length."
        )
    if groups.shape[1] == 0:
        raise FairnessInputError("No sensitive feature columns were given; pass at least one.")
    if not np.isin(y, (0, 1)).all():
        raise FairnessInputError("Labels must be 0 or 1.")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise FairnessInputError("Probabilities must be finite numbers in [0, 1].")
    return y.astype(np.int8), p


def _group_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """A code per row (-1: missing) and the values coded; a categorical column's own small
    codes are used as they are (no per-row int64 copy)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int32), values.cat.categories
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int32), pd.Index(uniques)


def _fill_unknown(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text.isna() | text.isin(_MISSING_VALUES), UNKNOWN_GROUP)

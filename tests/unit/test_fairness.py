"""Subgroup tables and fairness summaries; an unfair model must fail every environment's gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_platform.config import ENVIRONMENTS
from mlops_platform.evaluation.fairness import (
    AGE_BAND_COLUMN,
    AGE_BANDS,
    TABLE_COLUMNS,
    UNKNOWN_GROUP,
    FairnessInputError,
    age_band,
    sensitive_groups,
    subgroup_table,
    summarize_fairness,
)
from mlops_platform.governance.policy.evaluate import decide, evaluate_fairness
from mlops_platform.governance.policy.models import GatePolicy, load_policy

THRESHOLD = 0.2


def _cohort(n: int = 8000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Synthetic scored encounters: one risk process for every group, so the model is fair."""
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame(
        {
            "race": rng.choice(
                ["Caucasian", "AfricanAmerican", "Hispanic", "?"], n, p=[0.6, 0.25, 0.08, 0.07]
            ),
            "gender": rng.choice(["Female", "Male"], n),
            "age": rng.choice(["[30-40)", "[50-60)", "[60-70)", "[70-80)", "[80-90)"], n),
        }
    )
    risk = rng.normal(-1.9, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    y_prob = 1 / (1 + np.exp(-(risk + rng.normal(0, 0.6, n))))
    return y, y_prob, sensitive_groups(raw)


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    return _cohort()


def _gate(policy: GatePolicy, y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, env: str):
    f = policy.fairness
    summary = summarize_fairness(
        y,
        p,
        groups[list(f.sensitive_features)],
        THRESHOLD,
        f.min_group_size,
        min_group_events=f.min_group_events,
    )
    return summary, decide(evaluate_fairness(summary, policy), env)


def test_age_bands() -> None:
    assert [age_band(a) for a in ("[0-10)", "[40-50)", "[50-60)", "[60-70)", "[90-100)")] == [
        AGE_BANDS[0],
        AGE_BANDS[0],
        AGE_BANDS[1],
        AGE_BANDS[1],
        AGE_BANDS[2],
    ]
    with pytest.raises(FairnessInputError, match="'70-80'"):
        age_band("70-80")


def test_sensitive_groups_make_missing_race_its_own_group() -> None:
    raw = pd.DataFrame(
        {"race": ["?", "Asian", ""], "gender": ["Male", "?", "Female"], "age": ["[70-80)"] * 3}
    )
    groups = sensitive_groups(raw)
    assert list(groups.columns) == ["race", "gender", AGE_BAND_COLUMN]
    assert groups["race"].tolist() == [UNKNOWN_GROUP, "Asian", UNKNOWN_GROUP]
    assert groups["gender"].tolist() == ["Male", UNKNOWN_GROUP, "Female"]
    assert groups[AGE_BAND_COLUMN].tolist() == [AGE_BANDS[2]] * 3
    with pytest.raises(FairnessInputError, match="gender"):
        sensitive_groups(raw.drop(columns="gender"))


def test_subgroup_table_matches_hand_counts() -> None:
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.6, 0.3, 0.8, 0.2, 0.7, 0.1, 0.9, 0.4])
    groups = pd.DataFrame({"race": ["A"] * 6 + ["?"] * 4})
    table = subgroup_table(y, p, groups, threshold=0.5, min_group_size=5)
    assert tuple(table.columns) == TABLE_COLUMNS
    a = table.set_index("group").loc["A"]
    # Group A: y = 1 0 0 1 1 0, flagged = 1 0 1 0 1 0.
    assert (a["n"], a["positives"]) == (6, 3)
    assert a["recall"] == pytest.approx(2 / 3)
    assert a["false_positive_rate"] == pytest.approx(1 / 3)
    assert a["selection_rate"] == pytest.approx(3 / 6)
    # Pairs (pos, neg): 0.9 beats all 3; 0.3 beats 0.1, 0.2; 0.8 beats 0.1, 0.6, 0.2 -> 8/9.
    assert a["roc_auc"] == pytest.approx(8 / 9)
    assert bool(a["eligible"])
    unknown = table.set_index("group").loc[UNKNOWN_GROUP]
    assert unknown["n"] == 4 and not unknown["eligible"]


def test_groups_need_size_and_events_of_both_outcomes() -> None:
    y = np.array([0] * 300 + [1] * 20 + [0] * 280)
    p = np.linspace(0.01, 0.99, 600)
    groups = pd.DataFrame({"race": ["single"] * 300 + ["few"] * 300})
    table = subgroup_table(y, p, groups, 0.5, 200, min_group_events=30).set_index("group")
    assert math.isnan(table.loc["single", "roc_auc"]) and not table.loc["single", "eligible"]
    assert not table.loc["few", "eligible"]
    assert (
        subgroup_table(y, p, groups, 0.5, 200, min_group_events=20)
        .set_index("group")
        .loc["few", "eligible"]
    )


def test_feature_with_one_eligible_group_cannot_be_assessed(cohort) -> None:
    y, p, groups = cohort
    one_group = groups.assign(gender="Female")
    summary = summarize_fairness(y, p, one_group, THRESHOLD, 200, min_group_events=50)
    assert summary.unassessed_features == ("gender",)
    assert math.isnan(summary.max_roc_auc_gap)
    assert math.isnan(summary.equalized_odds_difference)
    assert math.isnan(summary.min_subgroup_roc_auc)


def test_small_groups_do_not_move_the_gaps(cohort) -> None:
    y, p, groups = cohort
    tiny = groups.copy()
    tiny.loc[tiny.index[:40], "race"] = "Tiny"
    p_tiny = p.copy()
    p_tiny[:40] = 1 - p_tiny[:40]
    summary = summarize_fairness(y, p_tiny, tiny, THRESHOLD, 200, min_group_events=50)
    row = summary.table.set_index(["feature", "group"]).loc[("race", "Tiny")]
    assert not row["eligible"]
    assert summary.worst_group != "race=Tiny"


def test_mismatched_inputs_are_rejected(cohort) -> None:
    y, p, groups = cohort
    with pytest.raises(FairnessInputError, match="same length"):
        subgroup_table(y[:-1], p, groups, THRESHOLD, 200)
    with pytest.raises(FairnessInputError, match="Probabilities"):
        subgroup_table(y, p * 2, groups, THRESHOLD, 200)


def test_fair_model_passes_every_environment(cohort) -> None:
    y, p, groups = cohort
    for env in ENVIRONMENTS:
        summary, decision = _gate(load_policy(env), y, p, groups, env)
        assert decision.passed, decision.message()
        assert summary.unassessed_features == ()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_model_random_for_one_race_fails(cohort, env: str) -> None:
    y, p, groups = cohort
    unfair = p.copy()
    target = (groups["race"] == "AfricanAmerican").to_numpy()
    unfair[target] = np.random.default_rng(11).permutation(p[target])
    summary, decision = _gate(load_policy(env), y, unfair, groups, env)
    assert not decision.passed
    failed = {c.name for c in decision.failures()}
    assert {"subgroup_roc_auc_min", "subgroup_roc_auc_gap"} <= failed, decision.message()
    assert summary.worst_group == "race=AfricanAmerican"
    assert summary.worst_feature == "race"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_model_that_underrates_one_race_fails_equalized_odds(cohort, env: str) -> None:
    y, p, groups = cohort
    unfair = p.copy()
    target = (groups["race"] == "AfricanAmerican").to_numpy()
    unfair[target] *= 0.4
    _, decision = _gate(load_policy(env), y, unfair, groups, env)
    assert "equalized_odds_difference" in {c.name for c in decision.failures()}


@pytest.mark.parametrize("seed", [3, 11, 29])
@pytest.mark.parametrize("min_group_size", [1, 400])
@pytest.mark.parametrize("unfair", ["recall", "false_positive_rate"])
def test_equalized_odds_equals_fairlearns_on_the_eligible_groups(
    seed: int, min_group_size: int, unfair: str
) -> None:
    """The gate's equalized-odds figure is fairlearn's, on the groups the gate compares, whether
    the recall gap or the false positive rate gap is the larger."""
    from fairlearn.metrics import equalized_odds_difference

    y, p, groups = _cohort(n=3000, seed=seed)
    hispanic = groups["race"].to_numpy() == "Hispanic"
    if unfair == "recall":  # the group's readmissions are missed
        p = np.where(hispanic, p * 0.5, p)
    else:  # the group's patients without a readmission are flagged
        p = np.where(hispanic & (y == 0), np.minimum(p * 3.0, 1.0), p)
    summary = summarize_fairness(y, p, groups, THRESHOLD, min_group_size, min_group_events=5)
    expected = []
    for feature in groups.columns:
        rows = summary.table[(summary.table["feature"] == feature) & summary.table["eligible"]]
        labels = groups[feature].astype(object).fillna(UNKNOWN_GROUP).to_numpy()
        keep = np.isin(labels, rows["group"].to_numpy())
        expected.append(
            equalized_odds_difference(
                y[keep], (p[keep] >= THRESHOLD).astype(int), sensitive_features=labels[keep]
            )
        )
    assert max(expected) > 0.05
    assert summary.equalized_odds_difference == pytest.approx(max(expected), abs=1e-12)

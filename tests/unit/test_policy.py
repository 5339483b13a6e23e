"""The gate policy cannot be switched off, and the evaluator fails closed on every bad input."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel

from mlops_platform.config import ENVIRONMENTS, ConfigError, config_dir, load_layered
from mlops_platform.evaluation.fairness import FairnessSummary
from mlops_platform.governance.policy.evaluate import (
    BRIER,
    ECE,
    IS_CHAMPION,
    NO_CHAMPION,
    RECALL,
    ROC_AUC,
    CheckResult,
    GateFailedError,
    decide,
    evaluate,
    evaluate_champion,
    evaluate_fairness,
    evaluate_quality,
)
from mlops_platform.governance.policy.models import (
    MANDATORY_SENSITIVE_FEATURES,
    POLICY_CONFIG,
    REQUIRED_THRESHOLDS,
    GatePolicy,
    PolicyError,
    load_policy,
    missing_thresholds,
)


@pytest.fixture(scope="module")
def policies() -> dict[str, GatePolicy]:
    return {env: load_policy(env) for env in ENVIRONMENTS}


@pytest.fixture
def policy(policies: dict[str, GatePolicy]) -> GatePolicy:
    return policies["staging"]


def _good_metrics(policy: GatePolicy) -> dict[str, float]:
    q = policy.quality
    return {
        ROC_AUC: q.min_roc_auc + 0.02,
        BRIER: q.max_brier - 0.002,
        ECE: q.max_ece / 2,
        RECALL: q.min_recall + 0.05,
    }


# A logistic baseline the candidate beats comfortably.
WEAK_BASELINE = {ROC_AUC: 0.55, BRIER: 0.2}


def _summary(policy: GatePolicy, **overrides: object) -> FairnessSummary:
    f = policy.fairness
    table = pd.DataFrame({"feature": list(f.sensitive_features), "group": "g", "eligible": True})
    values: dict[str, object] = {
        "max_roc_auc_gap": f.max_roc_auc_gap / 2,
        "worst_feature": f.sensitive_features[0],
        "equalized_odds_difference": f.max_equalized_odds_difference / 2,
        "min_subgroup_roc_auc": f.min_subgroup_roc_auc + 0.05,
        "worst_group": "race=Caucasian",
        "table": table,
        "threshold": 0.15,
        "min_group_size": f.min_group_size,
        "min_group_events": f.min_group_events,
    }
    values.update(overrides)
    return FairnessSummary(**values)  # type: ignore[arg-type]


# --- the configs ---------------------------------------------------------------------------


def test_every_environment_loads_and_enforces(policies: dict[str, GatePolicy]) -> None:
    for env, policy in policies.items():
        assert policy.mode == "enforce", env
        assert set(MANDATORY_SENSITIVE_FEATURES) <= set(policy.fairness.sensitive_features)


def test_every_environment_defines_every_required_threshold() -> None:
    for env in ENVIRONMENTS:
        assert missing_thresholds(load_layered(POLICY_CONFIG, env)) == [], env


def test_required_thresholds_name_every_numeric_field() -> None:
    numeric = []
    for section, info in GatePolicy.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            numeric += [
                f"{section}.{name}"
                for name, field in model.model_fields.items()
                if field.annotation in (int, float)
            ]
    assert sorted(numeric) == sorted(REQUIRED_THRESHOLDS)


def test_production_is_at_least_as_strict_as_staging_and_staging_as_local(
    policies: dict[str, GatePolicy],
) -> None:
    minimums = ("quality.min_roc_auc", "quality.min_recall", "fairness.min_subgroup_roc_auc")
    for looser, stricter in (("local", "staging"), ("staging", "production")):
        low, high = policies[looser], policies[stricter]
        for dotted in REQUIRED_THRESHOLDS:
            section, name = dotted.split(".")
            a, b = getattr(getattr(low, section), name), getattr(getattr(high, section), name)
            if dotted in minimums:
                assert b >= a, (dotted, looser, stricter)
            elif not name.startswith("min_group"):
                assert b <= a, (dotted, looser, stricter)


def test_missing_thresholds_reports_absent_and_null_keys() -> None:
    raw = load_layered(POLICY_CONFIG, "production")
    del raw["quality"]["min_roc_auc"]
    raw["champion"]["max_brier_increase"] = None
    assert missing_thresholds(raw) == ["quality.min_roc_auc", "champion.max_brier_increase"]
    assert missing_thresholds({}) == list(REQUIRED_THRESHOLDS)


# --- a gate cannot be switched off -----------------------------------------------------------


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    shutil.copytree(config_dir(), tmp_path / "configs")
    return tmp_path / "configs"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mode: warn\n", "mode"),
        ("mode: disabled\n", "mode"),
        ("quality:\n  enabled: false\n", "quality.enabled"),
        ("fairness:\n  enforce: false\n", "fairness.enforce"),
        ("skip_gates: true\n", "skip_gates"),
        ("quality:\n  min_roc_auc: null\n", "quality.min_roc_auc"),
        ("champion: null\n", "champion"),
        ("quality:\n  min_roc_auc: 0.5\n", "quality.min_roc_auc"),
        ("quality:\n  max_brier: 1.0\n", "quality.max_brier"),
        ("quality:\n  min_recall: 0\n", "quality.min_recall"),
        ("quality:\n  max_ece: .nan\n", "quality.max_ece"),
        ("quality:\n  min_roc_auc: '0.65'\n", "quality.min_roc_auc"),
        ("quality:\n  min_roc_auc: true\n", "quality.min_roc_auc"),
        ("fairness:\n  max_roc_auc_gap: 1.0\n", "fairness.max_roc_auc_gap"),
        ("fairness:\n  sensitive_features: [gender, age_band]\n", "race"),
        ("fairness:\n  sensitive_features: [race, race, gender, age_band]\n", "twice"),
        ("champion:\n  max_roc_auc_drop: 0.5\n", "champion.max_roc_auc_drop"),
    ],
)
def test_policy_rejects_disabled_weakened_or_missing_gates(
    config_copy: Path, override: str, message: str
) -> None:
    (config_copy / "staging" / "policy.yaml").write_text(override, encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as raised:
        load_policy("staging", config_copy)
    assert "configs/staging/policy.yaml" in str(raised.value)


def test_policy_rejects_a_base_without_a_section(config_copy: Path) -> None:
    base = config_copy / "base" / "policy.yaml"
    raw = base.read_text(encoding="utf-8")
    base.write_text(raw.split("\nchampion:")[0], encoding="utf-8")
    with pytest.raises(PolicyError, match="champion"):
        load_policy("production", config_copy)


def test_policy_errors_are_config_errors_and_unknown_env_fails() -> None:
    assert issubclass(PolicyError, ConfigError)
    with pytest.raises(ConfigError, match="valid environments"):
        load_policy("dev")


# --- quality ---------------------------------------------------------------------------------


def test_good_metrics_pass_every_environment(policies: dict[str, GatePolicy]) -> None:
    for env, policy in policies.items():
        checks = evaluate_quality(_good_metrics(policy), policy)
        assert [c.name for c in checks] == [ROC_AUC, BRIER, ECE, RECALL]
        assert decide(checks, env).passed, env


@pytest.mark.parametrize(
    ("metric", "shift"),
    [(ROC_AUC, -0.05), (BRIER, +0.01), (ECE, +0.05), (RECALL, -0.15)],
)
def test_each_quality_limit_blocks(policy: GatePolicy, metric: str, shift: float) -> None:
    metrics = _good_metrics(policy)
    metrics[metric] += shift
    checks = {c.name: c for c in evaluate_quality(metrics, policy)}
    assert not checks[metric].passed
    assert checks[metric].value == pytest.approx(metrics[metric])
    assert sum(not c.passed for c in checks.values()) == 1


def test_values_on_the_limit_pass_and_numpy_numbers_count(policy: GatePolicy) -> None:
    q = policy.quality
    metrics = {ROC_AUC: q.min_roc_auc, BRIER: q.max_brier, ECE: q.max_ece, RECALL: q.min_recall}
    assert all(c.passed for c in evaluate_quality(metrics, policy))
    as_numpy = {k: np.float64(v) for k, v in _good_metrics(policy).items()}
    assert all(c.passed for c in evaluate_quality(as_numpy, policy))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.9", None, True])
def test_non_finite_or_non_numeric_metrics_fail_closed(policy: GatePolicy, bad: object) -> None:
    for metric in (ROC_AUC, BRIER, ECE, RECALL):
        metrics: dict[str, object] = {**_good_metrics(policy), metric: bad}
        checks = {c.name: c for c in evaluate_quality(metrics, policy)}  # type: ignore[arg-type]
        assert not checks[metric].passed, (metric, bad)


def test_missing_metric_fails_with_metric_missing(policy: GatePolicy) -> None:
    metrics = _good_metrics(policy)
    del metrics[ECE]
    checks = {c.name: c for c in evaluate_quality(metrics, policy)}
    assert not checks[ECE].passed
    assert checks[ECE].value is None
    assert checks[ECE].detail.startswith("metric missing")
    assert not evaluate_quality({}, policy)[0].passed


# --- fairness --------------------------------------------------------------------------------


def test_fair_summary_passes(policy: GatePolicy) -> None:
    checks = evaluate_fairness(_summary(policy), policy)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("max_roc_auc_gap", "subgroup_roc_auc_gap"),
        ("equalized_odds_difference", "equalized_odds_difference"),
        ("min_subgroup_roc_auc", "subgroup_roc_auc_min"),
    ],
)
def test_each_fairness_limit_blocks(policy: GatePolicy, field: str, name: str) -> None:
    f = policy.fairness
    bad = {
        "max_roc_auc_gap": f.max_roc_auc_gap + 0.01,
        "equalized_odds_difference": f.max_equalized_odds_difference + 0.01,
        "min_subgroup_roc_auc": f.min_subgroup_roc_auc - 0.01,
    }[field]
    checks = {c.name: c for c in evaluate_fairness(_summary(policy, **{field: bad}), policy)}
    assert not checks[name].passed
    assert [n for n, c in checks.items() if not c.passed] == [name]


def test_nan_fairness_measures_fail(policy: GatePolicy) -> None:
    summary = _summary(
        policy,
        max_roc_auc_gap=math.nan,
        equalized_odds_difference=math.nan,
        min_subgroup_roc_auc=math.nan,
        unassessed_features=("race",),
    )
    checks = evaluate_fairness(summary, policy)
    assert not any(c.passed for c in checks)
    assert "race" in checks[0].detail


def test_missing_fairness_summary_fails(policy: GatePolicy) -> None:
    checks = evaluate_fairness(None, policy)
    assert len(checks) == 1 and not checks[0].passed
    assert "fairness summary missing" in checks[0].detail


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_group_size": 10},
        {"min_group_events": 1},
        {"table": pd.DataFrame({"feature": ["race", "gender"], "eligible": True})},
    ],
)
def test_summary_weaker_than_the_policy_fails(policy: GatePolicy, overrides: dict) -> None:
    checks = {c.name: c for c in evaluate_fairness(_summary(policy, **overrides), policy)}
    assert not checks["fairness_assessed"].passed


# --- champion --------------------------------------------------------------------------------


def test_no_champion_is_one_passing_check(policy: GatePolicy) -> None:
    checks = evaluate_champion(_good_metrics(policy), None, policy)
    assert len(checks) == 1 and checks[0].passed
    assert checks[0].detail == NO_CHAMPION
    (itself,) = evaluate_champion(_good_metrics(policy), None, policy, IS_CHAMPION)
    assert itself.passed and "holds the stage" in itself.detail


def test_challenger_as_good_as_champion_passes(policy: GatePolicy) -> None:
    metrics = _good_metrics(policy)
    assert all(c.passed for c in evaluate_champion(metrics, dict(metrics), policy))


@pytest.mark.parametrize(
    ("metric", "name", "sign"),
    [
        (ROC_AUC, "roc_auc_drop_vs_champion", -1),
        (BRIER, "brier_increase_vs_champion", +1),
        (ECE, "ece_increase_vs_champion", +1),
    ],
)
def test_worse_challenger_fails(policy: GatePolicy, metric: str, name: str, sign: int) -> None:
    margins = policy.champion
    margin = {
        ROC_AUC: margins.max_roc_auc_drop,
        BRIER: margins.max_brier_increase,
        ECE: margins.max_ece_increase,
    }[metric]
    champion = _good_metrics(policy)
    challenger = {**champion, metric: champion[metric] + sign * (margin + 0.001)}
    checks = {c.name: c for c in evaluate_champion(challenger, champion, policy)}
    assert not checks[name].passed
    assert checks[name].value == pytest.approx(margin + 0.001)
    within = {**champion, metric: champion[metric] + sign * margin / 2}
    assert all(c.passed for c in evaluate_champion(within, champion, policy))


@pytest.mark.parametrize("champion", [{}, {ROC_AUC: math.nan, BRIER: 0.09, ECE: 0.01}])
def test_champion_without_usable_metrics_fails(policy: GatePolicy, champion: dict) -> None:
    checks = evaluate_champion(_good_metrics(policy), champion, policy)
    assert not checks[0].passed


# --- decision --------------------------------------------------------------------------------


def test_decision_message_lists_every_failure_with_value_limit_and_hint(
    policy: GatePolicy,
) -> None:
    metrics = {**_good_metrics(policy), ROC_AUC: 0.612, RECALL: 0.1}
    del metrics[ECE]
    decision = evaluate(metrics, _summary(policy), None, policy, "staging", baseline=WEAK_BASELINE)
    assert not decision.passed
    assert {c.name for c in decision.failures()} == {ROC_AUC, ECE, RECALL}
    message = decision.message()
    total = len(decision.checks)
    assert message.startswith(f"Model gate failed for environment 'staging' (3 of {total} checks):")
    assert f"roc_auc = 0.612 < minimum {policy.quality.min_roc_auc:.4g}" in message
    assert f"recall = 0.1 < minimum {policy.quality.min_recall:.4g}" in message
    assert "ece: metric missing" in message
    assert "improve" in message and "operating threshold" in message
    assert len(message.splitlines()) == 4


def test_passing_decision(policy: GatePolicy) -> None:
    decision = evaluate(
        _good_metrics(policy), _summary(policy), None, policy, "staging", baseline=WEAK_BASELINE
    )
    assert decision.passed and decision.failures() == ()
    assert "passed" in decision.message()
    decision.enforce()


def test_enforce_raises_gate_failed_error_carrying_the_decision(policy: GatePolicy) -> None:
    decision = evaluate({}, None, None, policy, "production")
    with pytest.raises(GateFailedError, match="production") as raised:
        decision.enforce()
    assert raised.value.decision is decision
    assert str(raised.value) == decision.message()


def test_no_checks_means_failed() -> None:
    decision = decide([], "local")
    assert not decision.passed
    assert "no checks" in decision.message()


def test_one_failed_check_fails_the_decision() -> None:
    ok = CheckResult("a", True, 1.0, 0.5, ">=", "within limit")
    bad = CheckResult("b", False, 0.1, 0.5, ">=", "too low")
    assert decide([ok], "local").passed
    assert not decide([ok, bad], "local").passed


def test_decide_rejects_an_unknown_environment() -> None:
    with pytest.raises(ConfigError, match="valid environments"):
        decide([CheckResult("a", True, 1.0, 0.5, ">=", "")], "prod")


# --- operating threshold and baseline -------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.001, 0.0, 0.95, float("nan"), None, "0.2"])
def test_operating_threshold_outside_the_policy_range_fails(
    policy: GatePolicy, threshold: object
) -> None:
    decision = evaluate(
        _good_metrics(policy),
        _summary(policy),
        None,
        policy,
        "staging",
        operating_threshold=threshold,
        baseline=WEAK_BASELINE,
    )
    assert not decision.passed
    assert {c.name for c in decision.failures()} <= {
        "operating_threshold_min",
        "operating_threshold_max",
    }
    assert "operating_threshold" in decision.message()


def test_operating_threshold_inside_the_range_passes(policy: GatePolicy) -> None:
    bounds = policy.operating_threshold
    for threshold in (bounds.min, (bounds.min + bounds.max) / 2, bounds.max):
        decision = evaluate(
            _good_metrics(policy),
            _summary(policy),
            None,
            policy,
            "production",
            operating_threshold=threshold,
            baseline=WEAK_BASELINE,
        )
        assert decision.passed, decision.message()


@pytest.mark.parametrize("env", ["staging", "production"])
def test_candidate_worse_than_the_baseline_fails_in_staging_and_production(
    policies: dict[str, GatePolicy], env: str
) -> None:
    policy = policies[env]
    metrics = _good_metrics(policy)
    margins = policy.baseline
    better_baseline = {
        ROC_AUC: metrics[ROC_AUC] + margins.max_roc_auc_drop + 0.001,
        BRIER: metrics[BRIER] - margins.max_brier_increase - 0.0005,
    }
    decision = evaluate(metrics, _summary(policy), None, policy, env, baseline=better_baseline)
    assert {c.name for c in decision.failures()} == {
        "roc_auc_drop_vs_baseline",
        "brier_increase_vs_baseline",
    }
    missing = evaluate(metrics, _summary(policy), None, policy, env, baseline=None)
    assert [c.name for c in missing.failures()] == ["baseline"]


def test_baseline_is_not_gated_locally(policies: dict[str, GatePolicy]) -> None:
    policy = policies["local"]
    metrics = _good_metrics(policy)
    decision = evaluate(metrics, _summary(policy), None, policy, "local", baseline=None)
    assert decision.passed
    assert not any("baseline" in c.name for c in decision.checks)


@pytest.mark.parametrize(
    "override",
    [
        {"holdout": {"fraction": 0.01}},
        {"holdout": {"fraction": 0.9}},
        {"operating_threshold": {"min": 0.001, "max": 0.5}},
        {"operating_threshold": {"min": 0.3, "max": 0.2}},
        {"baseline": {"max_roc_auc_drop": 0.5, "max_brier_increase": 0.001}},
        {"evaluation_data": {"approved_file_sha256": ["AB" * 32]}},  # not as sha256sum spells it
        {"evaluation_data": {"approved_file_sha256": ["ab" * 16]}},
        {"evaluation_data": {"approved_file_sha256": "ab" * 32}},  # one string, not a list
    ],
)
def test_policy_bounds_the_new_knobs(config_copy: Path, override: dict) -> None:
    (config_copy / "staging" / "policy.yaml").write_text(yaml.safe_dump(override), "utf-8")
    with pytest.raises(PolicyError):
        load_policy("staging", config_copy)

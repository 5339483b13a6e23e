"""`mlops policy show` and the policy rules of `mlops check`, on private copies of configs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlops_cli.errors import ExitCode
from mlops_platform.config import CONFIG_DIR_VARIABLE, config_dir
from mlops_platform.governance.check import check_configs
from mlops_platform.governance.policy.layers import (
    OrderingProblem,
    compare_layers,
    direction,
    sourced,
)
from tests.integration.helpers import copy_configs, invoke

BASE_MIN_ROC_AUC = yaml.safe_load((config_dir() / "base" / "policy.yaml").read_text())["quality"][
    "min_roc_auc"
]


def _policy_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: dict) -> Path:
    configs = copy_configs(tmp_path / "configs", {f"{k}/policy.yaml": v for k, v in files.items()})
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))
    return configs


def test_policy_show_names_where_each_value_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policy_copy(tmp_path, monkeypatch, production={"quality": {"min_roc_auc": 0.7}})

    result = invoke("policy", "show", "--env", "production", "--json")

    assert result.exit_code == 0, result.output
    rows = {t["key"]: t for t in json.loads(result.stdout)["thresholds"]}
    assert rows["quality.min_roc_auc"] == {
        "key": "quality.min_roc_auc",
        "value": 0.7,
        "source": "configs/production/policy.yaml",
    }
    assert rows["quality.max_brier"]["source"] == "configs/base/policy.yaml"
    # The hash records carry (day-one review: a model risk officer could not tie a record's
    # policy_sha256 to a policy); it moves with the policy.
    from mlops_platform.governance.history_at import effective_policy_sha256

    shown = json.loads(result.stdout)["policy_sha256"]
    assert shown == effective_policy_sha256("production")
    _policy_copy(tmp_path / "again", monkeypatch, production={"quality": {"min_roc_auc": 0.71}})
    assert json.loads(invoke("policy", "show", "--env", "production", "--json").stdout)[
        "policy_sha256"
    ] not in (shown, None)


def test_policy_show_table_keeps_its_width_in_a_pipe() -> None:
    result = invoke("policy", "show", "--env", "staging")

    assert result.exit_code == 0, result.output
    assert "fairness.max_equalized_odds_difference" in result.stdout
    assert "configs/staging/policy.yaml" in result.stdout


def test_check_refuses_production_looser_than_base_and_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = _policy_copy(tmp_path, monkeypatch, production={"quality": {"min_roc_auc": 0.55}})

    findings = [f for f in check_configs(configs) if f.rule == "policy-strictness"]

    assert len(findings) == 1 and findings[0].subject == "production"
    assert "quality.min_roc_auc is 0.55 in production but 0.64 in staging" in findings[0].message
    assert BASE_MIN_ROC_AUC > 0.55  # the loosening the issue reports: below the base value too


def test_check_refuses_a_looser_maximum_and_accepts_a_stricter_one(tmp_path: Path) -> None:
    looser = copy_configs(
        tmp_path / "a", {"production/policy.yaml": {"fairness": {"max_roc_auc_gap": 0.16}}}
    )
    stricter = copy_configs(
        tmp_path / "b", {"production/policy.yaml": {"fairness": {"max_roc_auc_gap": 0.10}}}
    )

    assert [f.rule for f in check_configs(looser)] == ["policy-strictness"]
    assert check_configs(stricter) == []


def test_mlops_check_exits_9_on_a_loosened_policy_and_an_unbuildable_sensitive_feature(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One `mlops check` run (it builds every pipeline graph) for both refusals the issue reports.
    features = {"fairness": {"sensitive_features": ["race", "gender", "age_band", "payer_code"]}}
    _policy_copy(
        tmp_path,
        monkeypatch,
        base=_with_base(features),
        production={"quality": {"min_roc_auc": 0.55}},
    )

    result = invoke("check")

    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert "[policy-strictness] production: quality.min_roc_auc is 0.55" in result.stdout
    assert "['payer_code'], which the fairness code cannot build" in result.stdout


def _with_base(update: dict) -> dict:
    base = yaml.safe_load((config_dir() / "base" / "policy.yaml").read_text(encoding="utf-8"))
    for section, values in update.items():
        base[section] = {**base[section], **values}
    return base


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("quality.min_roc_auc", ">="),
        ("champion.max_ece_increase", "<="),
        ("quality.min_future_metric", ">="),  # a threshold added later is ordered too
        ("fairness.min_group_size", "<="),  # a lower eligibility minimum gates more groups
        ("quality.holdout_share", None),
    ],
)
def test_direction_is_read_from_the_key(key: str, expected: str | None) -> None:
    assert direction(key) == expected


def test_a_numeric_key_without_a_direction_is_reported_when_environments_differ() -> None:
    problems = compare_layers("staging", {"q": {"share": 0.2}}, "production", {"q": {"share": 0.3}})

    assert problems == [
        OrderingProblem(
            "q.share",
            "production",
            0.3,
            "staging",
            0.2,
            "its direction is unknown (name a threshold min_* or max_*)",
        )
    ]
    assert (
        compare_layers("staging", {"q": {"share": 0.2}}, "production", {"q": {"share": 0.2}}) == []
    )


def test_a_stricter_environment_must_cover_every_sensitive_group() -> None:
    problems = compare_layers(
        "staging", {"f": {"groups": ["a", "b"]}}, "production", {"f": {"groups": ["a"]}}
    )

    assert [p.key for p in problems] == ["f.groups"]


@pytest.mark.parametrize(
    ("staging", "production", "refused"),
    [
        ([], [], False),  # neither lists: any file in both
        ([], ["a"], False),  # production alone approves
        (["a", "b"], ["a"], False),  # production accepts less
        (["a", "b"], ["a", "b"], False),
        (["a"], [], True),  # production would accept any file staging refuses
        (["a"], ["a", "c"], True),  # production accepts a file staging refuses
    ],
)
def test_an_allow_list_is_stricter_when_it_accepts_less(
    staging: list[str], production: list[str], refused: bool
) -> None:
    """`approved_*` keys list what an environment accepts: unlike a list of groups to cover,
    the shorter one is the stricter one, and an empty one accepts anything."""
    key = {"evaluation_data": {"approved_file_sha256": staging}}
    problems = compare_layers(
        "staging", key, "production", {"evaluation_data": {"approved_file_sha256": production}}
    )

    assert [p.key for p in problems] == (
        ["evaluation_data.approved_file_sha256"] if refused else []
    )
    assert all("accepts less" in p.rule for p in problems)
    # Local gates ignore the lists, so a local list orders nothing after it.
    assert (
        compare_layers(
            "local", key, "staging", {"evaluation_data": {"approved_file_sha256": ["z"]}}
        )
        == []
    )


def test_sourced_marks_overrides_and_keys_only_in_the_override() -> None:
    result = sourced({"a": {"x": 1, "y": 2}}, {"a": {"y": 3, "z": 4}}, "base", "env")

    assert [(t.key, t.value, t.source) for t in result] == [
        ("a.x", 1, "base"),
        ("a.y", 3, "env"),
        ("a.z", 4, "env"),
    ]

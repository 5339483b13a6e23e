"""Adding a gate check is one registered function plus one policy key, and it then binds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_platform.config import config_dir, load_layered
from mlops_platform.governance.check import check_configs
from mlops_platform.governance.policy import registry
from mlops_platform.governance.policy.evaluate import CheckResult, compare, evaluate
from mlops_platform.governance.policy.models import PolicyError, load_policy, missing_thresholds

KEY = "quality.min_pr_auc"


@pytest.fixture
def pr_auc_check() -> Iterator[None]:
    """Register a new check exactly as the Platform Guide says, and remove it afterwards."""

    @registry.gate_check(KEY, bounds=(0.12, 1.0))
    def pr_auc(inputs: registry.GateInputs, limit: float) -> CheckResult:
        return compare("pr_auc", inputs.metrics.get("pr_auc"), limit, ">=", "improve the model")

    yield
    registry.REGISTRY.pop(KEY)


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    shutil.copytree(config_dir(), tmp_path / "configs")
    return tmp_path / "configs"


def _set_base(configs: Path, section: str, key: str, value: object) -> None:
    path = configs / "base" / "policy.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")


def _metrics(pr_auc: float) -> dict[str, float]:
    return {"roc_auc": 0.7, "brier": 0.09, "ece": 0.01, "recall": 0.4, "pr_auc": pr_auc}


@pytest.mark.usefixtures("pr_auc_check")
def test_a_registered_check_needs_its_key_in_every_policy(configs: Path) -> None:
    with pytest.raises(PolicyError, match=r"quality\.min_pr_auc is not set"):
        load_policy("production", configs)
    assert KEY in missing_thresholds(load_layered("policy", "production", configs))


@pytest.mark.usefixtures("pr_auc_check")
def test_a_registered_check_with_its_key_runs_in_every_gate(configs: Path) -> None:
    _set_base(configs, "quality", "min_pr_auc", 0.2)
    policy = load_policy("production", configs)

    passing = evaluate(_metrics(0.25), None, None, policy, "production")
    failing = evaluate(_metrics(0.15), None, None, policy, "production")

    assert [c.passed for c in passing.checks if c.name == "pr_auc"] == [True]
    assert [c.name for c in failing.failures() if c.name == "pr_auc"] == ["pr_auc"]
    assert "pr_auc = 0.15 < minimum 0.2" in failing.message()


@pytest.mark.usefixtures("pr_auc_check")
def test_a_registered_key_outside_its_bounds_is_refused(configs: Path) -> None:
    _set_base(configs, "quality", "min_pr_auc", 0.05)

    with pytest.raises(PolicyError, match=r"quality.min_pr_auc must be a number in \[0.12, 1.0\]"):
        load_policy("staging", configs)


@pytest.mark.usefixtures("pr_auc_check")
def test_the_strictness_ordering_covers_a_registered_key(configs: Path) -> None:
    _set_base(configs, "quality", "min_pr_auc", 0.2)
    (configs / "production" / "policy.yaml").write_text(
        "quality:\n  min_pr_auc: 0.15\n", encoding="utf-8"
    )

    findings = [f for f in check_configs(configs) if f.rule == "policy-strictness"]

    assert [f.subject for f in findings] == ["production"]
    assert "quality.min_pr_auc" in findings[0].message


def test_a_key_no_check_registered_is_refused(configs: Path) -> None:
    _set_base(configs, "quality", "min_pr_auc", 0.2)

    with pytest.raises(PolicyError, match=r"quality\.min_pr_auc is not a gate threshold"):
        load_policy("local", configs)


def test_a_misspelt_threshold_names_the_closest_one(configs: Path) -> None:
    """Day-one review: a policy typo (`min_roc_au`) got no hint; training-config typos do."""
    _set_base(configs, "quality", "min_roc_au", 0.7)

    with pytest.raises(PolicyError, match=r"did you mean quality\.min_roc_auc\?"):
        load_policy("local", configs)

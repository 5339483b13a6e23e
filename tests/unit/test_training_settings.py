"""Training settings: every key has its default in the base file; typos name the file and the keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlops_cli.commands import training_config
from mlops_platform.config import CONFIG_DIR_VARIABLE, config_dir
from readmission.config import SECTIONS, TrainingConfigError, parse_overrides, valid_keys
from tests.integration.helpers import copy_configs


def test_the_base_file_lists_every_key_of_every_section() -> None:
    base = yaml.safe_load((config_dir() / "base" / "training.yaml").read_text(encoding="utf-8"))

    for section in SECTIONS:
        assert sorted(base[section]) == sorted(valid_keys(section)), section


def test_an_unknown_key_names_the_file_and_lists_the_valid_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = copy_configs(
        tmp_path / "configs",
        {"local/training.yaml": {"data": {"allow_synthetic": True}, "model": {"learnin_rate": 1}}},
    )
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))

    with pytest.raises(TrainingConfigError) as raised:
        training_config("local", None)

    message = str(raised.value)
    assert str(configs / "local" / "training.yaml") in message
    assert "'model.learnin_rate'" in message
    assert "Did you mean 'model.learning_rate'?" in message
    assert all(f"model.{key}" in message for key in valid_keys("model"))


def test_an_unknown_section_is_refused_with_the_valid_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = copy_configs(tmp_path / "configs", {"staging/training.yaml": {"modle": {}}})
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))

    with pytest.raises(
        TrainingConfigError, match=r"staging/training.yaml: unknown section 'modle'"
    ):
        training_config("staging", None)


def test_set_overrides_one_setting_for_the_run() -> None:
    config = training_config("local", None, ["model.learning_rate=0.1", "split.seed=7"])

    assert config.model.learning_rate == 0.1
    assert config.split.seed == 7
    assert config.model.max_iter == training_config("local", None).model.max_iter


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("model.learnin_rate=0.1", r"--set: unknown key 'model.learnin_rate'"),
        ("learning_rate=0.1", "expected SECTION.KEY=VALUE"),
        ("model.learning_rate", "expected SECTION.KEY=VALUE"),
        ("modle.learning_rate=1", "unknown section 'modle'"),
    ],
)
def test_a_bad_set_is_refused(assignment: str, match: str) -> None:
    with pytest.raises(TrainingConfigError, match=match):
        parse_overrides([assignment])


@pytest.mark.parametrize(
    ("assignment", "named", "given"),
    [
        ("model.learning_rate=5", "model.learning_rate: Input should be less than", "(got 5)"),
        ("model.learning_rate=abc", "model.learning_rate: Input should be a valid number", "'abc'"),
    ],
)
def test_a_set_value_out_of_range_is_refused_by_the_typed_settings(
    assignment: str, named: str, given: str
) -> None:
    """One message naming the setting, the value and the rule (exit 7), not pydantic's own
    multi-line text with its documentation link (day-one review)."""
    with pytest.raises(TrainingConfigError, match=re.escape(named)) as refused:
        training_config("local", None, [assignment])
    assert given in str(refused.value)
    assert "errors.pydantic.dev" not in str(refused.value)


def test_a_given_file_gives_the_same_data_settings_in_every_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a file, no fallback applies: local training and a staging or production promotion
    hand the data steps the same parameters, so the promotion can reuse them (same cache key)."""
    monkeypatch.delenv("READMISSION_DATA", raising=False)
    data = tmp_path / "encounters.csv"
    local, staging, production = (
        training_config(env, data).data for env in ("local", "staging", "production")
    )
    assert local == staging == production
    assert local.path == str(data.resolve())
    # Without a file the environments still differ: only local falls back to synthetic data.
    assert training_config("local", None).data.allow_synthetic is True
    assert training_config("staging", None).data.allow_synthetic is False


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_an_operating_threshold_the_gate_would_refuse_is_refused_before_training(env: str) -> None:
    """Day-one review: `--set evaluation.operating_threshold=0.01` trained the whole model
    (about 30 s) before the gate refused the threshold, and left a rejected version behind."""
    from mlops_cli.commands import check_operating_threshold
    from mlops_platform.governance.policy.models import load_policy

    bounds = load_policy(env).operating_threshold
    low = bounds.min / 2
    config = training_config(env, None, [f"evaluation.operating_threshold={low}"])
    with pytest.raises(
        TrainingConfigError, match=r"outside the \w+ policy.s operating_threshold"
    ) as no:
        check_operating_threshold(env, config)
    assert f"it must be >= {bounds.min}" in str(no.value)
    inside = training_config(env, None, [f"evaluation.operating_threshold={bounds.min}"])
    check_operating_threshold(env, inside)  # on the limit: the gate's rule passes it too


def test_a_data_file_the_approved_list_lacks_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of the approved lists: a staging training run on an unlisted file trained the
    whole model before its gate refused the file (the version was discarded). The same rule,
    on the file's bytes, refuses it first; local ignores the list, as its gate does."""
    import hashlib

    from mlops_cli.commands import check_approved_data
    from mlops_platform.steps.validate_model import DataSourceRefused

    listed, other = tmp_path / "listed.csv", tmp_path / "other.csv"
    listed.write_bytes(b"encounter_id\n1\n")
    other.write_bytes(b"encounter_id\n2\n")
    policy = yaml.safe_load((config_dir() / "staging" / "policy.yaml").read_text())
    evaluation = {
        **policy.get("evaluation_data", {}),
        "approved_file_sha256": [hashlib.sha256(listed.read_bytes()).hexdigest()],
    }
    listing = {**policy, "evaluation_data": evaluation}
    configs = copy_configs(
        tmp_path / "configs",
        {"staging/policy.yaml": listing, "production/policy.yaml": listing},
    )
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))
    monkeypatch.delenv("READMISSION_DATA", raising=False)  # no file given: none at all

    check_approved_data("staging", training_config("staging", listed))
    check_approved_data("local", training_config("local", other))
    unlisted = f"has sha256 {hashlib.sha256(other.read_bytes()).hexdigest()}"
    for given, shown in ((other, unlisted), (None, "is not a file the platform hashed")):
        with pytest.raises(DataSourceRefused, match="Refused before training") as refused:
            check_approved_data("staging", training_config("staging", given))
        assert shown in str(refused.value)
        assert "evaluation_data.approved_file_sha256" in str(refused.value)

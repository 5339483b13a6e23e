"""Layered YAML configuration: base plus environment overrides, failing loudly on bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_platform.config import (
    CONFIG_DIR_VARIABLE,
    ENVIRONMENTS,
    ConfigError,
    config_dir,
    deep_merge,
    load_layered,
)


def _write(root: Path, layer: str, name: str, text: str) -> None:
    folder = root / layer
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_deep_merge_merges_mappings_and_replaces_lists_and_scalars() -> None:
    base = {"a": {"x": 1, "y": {"deep": 1, "keep": 2}}, "items": [1, 2, 3], "s": "base"}
    override = {"a": {"y": {"deep": 9}}, "items": [7], "s": "env", "new": True}
    merged = deep_merge(base, override)
    assert merged == {
        "a": {"x": 1, "y": {"deep": 9, "keep": 2}},
        "items": [7],
        "s": "env",
        "new": True,
    }
    assert base["a"]["y"]["deep"] == 1, "the base mapping must not be changed in place"


def test_override_replaces_a_mapping_with_a_scalar_when_it_says_so() -> None:
    assert deep_merge({"a": {"x": 1}}, {"a": None}) == {"a": None}


def test_load_layered_merges_the_environment_file(tmp_path: Path) -> None:
    _write(tmp_path, "base", "demo", "model:\n  depth: 3\n  rate: 0.1\nname: base\n")
    _write(tmp_path, "staging", "demo", "model:\n  depth: 5\n")
    assert load_layered("demo", "staging", tmp_path) == {
        "model": {"depth": 5, "rate": 0.1},
        "name": "base",
    }


@pytest.mark.parametrize("override", [None, "", "# only a comment\n"])
def test_absent_or_empty_override_means_the_base(tmp_path: Path, override: str | None) -> None:
    _write(tmp_path, "base", "demo", "a: 1\n")
    if override is not None:
        _write(tmp_path, "local", "demo", override)
    assert load_layered("demo", "local", tmp_path) == {"a": 1}


def test_unknown_environment_lists_the_valid_ones(tmp_path: Path) -> None:
    _write(tmp_path, "base", "demo", "a: 1\n")
    with pytest.raises(ConfigError, match="'prod'") as raised:
        load_layered("demo", "prod", tmp_path)
    for env in ENVIRONMENTS:
        assert env in str(raised.value)


def test_missing_base_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as raised:
        load_layered("demo", "local", tmp_path)
    assert str(tmp_path / "base" / "demo.yaml") in str(raised.value)


@pytest.mark.parametrize(
    ("layer", "text"),
    [("base", "- a\n- b\n"), ("base", "just text\n"), ("base", ""), ("staging", "[1, 2]\n")],
)
def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path, layer: str, text: str) -> None:
    _write(tmp_path, "base", "demo", "a: 1\n")
    _write(tmp_path, layer, "demo", text)
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_layered("demo", "staging", tmp_path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "base", "demo", "a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"demo\.yaml"):
        load_layered("demo", "local", tmp_path)


def test_config_dir_follows_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(tmp_path))
    _write(tmp_path, "base", "demo", "source: variable\n")
    assert config_dir() == tmp_path
    assert load_layered("demo", "local") == {"source": "variable"}


def test_default_config_dir_is_the_repository_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_DIR_VARIABLE, raising=False)
    assert config_dir() == Path(__file__).resolve().parents[2] / "configs"
    assert (config_dir() / "base" / "policy.yaml").is_file()


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    # PyYAML would keep the second silently: a reviewer reading the first misses the change.
    _write(tmp_path, "base", "demo", "gates:\n  min_roc_auc: 0.7\n  max_ece: 0.1\n")
    _write(tmp_path, "local", "demo", "gates:\n  min_roc_auc: 0.7\n  x: 1\n  min_roc_auc: 0.5\n")
    with pytest.raises(ConfigError, match=r"'min_roc_auc' a second time \(first at line 2\)"):
        load_layered("demo", "local", tmp_path)


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    _write(tmp_path, "base", "demo", "shared: &s {a: 1, b: 2}\nuse:\n  <<: *s\n  b: 3\n")
    assert load_layered("demo", "local", tmp_path)["use"] == {"a": 1, "b": 3}


def test_the_repository_config_files_hold_no_key_twice() -> None:
    from mlops_platform.config import read_mapping, repository_config_dir

    files = sorted(repository_config_dir().rglob("*.yaml"))
    # each read raises ConfigError naming the file on a repeated key
    read = [path for path in files if isinstance(read_mapping(path), dict)]
    assert len(read) == len(files) > 10


@pytest.mark.parametrize(
    "text",
    [
        # a key twice inside what a merge brings in (PyYAML flattens it unchecked)
        "q:\n  <<: {min_roc_auc: 0.60, max_ece: 0.04, min_roc_auc: 0.51}\n",
        "a: &a {x: 1, x: 2}\nq:\n  <<: [*a]\n",
        # two merge keys in one mapping: which one wins depends on layout
        "a: &a {x: 1}\nb: &b {x: 2}\nq:\n  <<: *a\n  <<: *b\n",
    ],
    ids=["inside-a-merge", "inside-a-merged-anchor", "two-merge-keys"],
)
def test_merges_cannot_hide_a_second_value(tmp_path: Path, text: str) -> None:
    _write(tmp_path, "base", "demo", text)
    with pytest.raises(ConfigError, match=r"a second time|merge keys"):
        load_layered("demo", "local", tmp_path)


def test_deployment_manifests_and_stack_files_refuse_a_key_twice(tmp_path: Path) -> None:
    """Reviewers approve the version a manifest shows: a second `version:` further down would
    deploy another one. Stack files are read the same way."""
    from mlops_platform.infra.deployment import ManifestError, load_manifest
    from mlops_platform.infra.stacks import StackFileError, parse_stack_file

    manifest = tmp_path / "production.yaml"
    manifest.write_text(
        "stage: production\nmodel:\n  name: m\n  version: '1'\n  version: '3'\n"
        "config:\n  environment: production\nchange:\n  reason: r\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError, match="'version' a second time"):
        load_manifest(manifest)
    stack = tmp_path / "local.yaml"
    stack.write_text("name: a\nname: b\ncomponents: {}\n", encoding="utf-8")
    with pytest.raises(StackFileError, match="'name' a second time"):
        parse_stack_file(stack)


def test_a_training_setting_given_twice_on_the_command_line_is_refused() -> None:
    from readmission.config import TrainingConfigError, parse_overrides

    assert parse_overrides(["model.learning_rate=0.1"]) == {"model": {"learning_rate": 0.1}}
    with pytest.raises(TrainingConfigError, match="given twice"):
        parse_overrides(["model.learning_rate=0.1", "model.learning_rate=0.9"])


def test_validation_issues_name_the_setting_the_rule_and_the_value_given() -> None:
    from pydantic import BaseModel, ValidationError, field_validator

    from mlops_platform.config import validation_issues

    class Inner(BaseModel):
        rate: float

    class Settings(BaseModel):
        inner: Inner
        name: str

        @field_validator("name")
        @classmethod
        def _not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("a name is needed")
            return value

    with pytest.raises(ValidationError) as raised:
        Settings.model_validate({"inner": {"rate": "fast"}, "name": " "})
    first, second = validation_issues(raised.value, "settings")
    assert first.startswith("inner.rate: ") and first.endswith("(got 'fast')")
    assert second == "name: a name is needed (got ' ')"  # pydantic's "Value error, " dropped
    with pytest.raises(ValidationError) as missing:
        Settings.model_validate({"inner": {}})
    # A missing setting names itself; its "value" would be the whole section, so none is shown.
    assert validation_issues(missing.value) == [
        "inner.rate: Field required",
        "name: Field required",
    ]

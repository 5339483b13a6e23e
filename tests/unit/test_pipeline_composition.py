"""A pipeline ZenML cannot run (a step `after=` a renamed step, a miswired input) is one finding
of `mlops check` (exit 9) and one message of `mlops train` (exit 7), never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from mlops_cli.app import app
from mlops_cli.errors import ExitCode, as_cli_error
from mlops_platform.config import CONFIG_DIR_VARIABLE, repository_config_dir
from mlops_platform.governance.check import _ancestors, check_composition
from mlops_platform.runtime.composition import PipelineCompositionError
from mlops_platform.runtime.runner import _composed
from tests.unit.composition_pipelines import (
    after_a_renamed_step,
    miswired_input,
    unbuildable_parameter,
)


def test_a_step_after_a_renamed_step_is_one_finding_naming_pipeline_step_and_name() -> None:
    (finding,) = check_composition(after_a_renamed_step, {})
    assert finding.rule == "unknown-upstream-step"
    assert finding.subject == "pipeline after_a_renamed_step"
    assert "step `consume`" in finding.message
    assert "'collect_history'" in finding.message
    assert "after=[...]" in finding.message and "gather_history" in finding.message


def test_a_miswired_input_is_one_finding_naming_the_line() -> None:
    (finding,) = check_composition(miswired_input, {})
    assert finding.rule == "pipeline-composition"
    assert "pipeline miswired_input cannot be composed" in finding.message
    assert "'number'" in finding.message
    assert "composition_pipelines.py:" in finding.message


def test_a_parameter_the_check_cannot_build_is_one_finding() -> None:
    (finding,) = check_composition(unbuildable_parameter, {})
    assert finding.rule == "pipeline-composition"
    assert "cannot compose pipeline unbuildable_parameter" in finding.message
    assert "TypeError" in finding.message


def test_ancestors_of_a_step_after_an_unknown_name_do_not_raise() -> None:
    invocations = {
        "train": SimpleNamespace(upstream_steps={"load"}),
        "load": SimpleNamespace(upstream_steps=set()),
        "register": SimpleNamespace(upstream_steps={"train", "renamed_away"}),
    }
    assert _ancestors(invocations, "register") == {"train", "load", "renamed_away"}


@pytest.mark.parametrize("pipeline", [after_a_renamed_step, miswired_input])
def test_train_refuses_a_pipeline_it_cannot_run_with_exit_7(pipeline: object) -> None:
    with pytest.raises(PipelineCompositionError) as raised:
        _composed(pipeline, {})  # type: ignore[arg-type]
    failure = as_cli_error(raised.value)
    assert failure is not None and failure.code is ExitCode.CONFIG
    assert pipeline.name in str(failure)  # type: ignore[attr-defined]


def test_check_reports_the_broken_pipelines_as_findings_in_json(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(repository_config_dir(), configs)
    platform = configs / "base" / "platform.yaml"
    settings = yaml.safe_load(platform.read_text(encoding="utf-8"))
    settings["governance"]["pipeline_packages"] = ["tests.unit.composition_pipelines"]
    settings["caching"]["reusable_steps"] = []
    platform.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))

    result = CliRunner().invoke(app, ["check", "--json"])

    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    payload = json.loads(result.stdout)
    assert sorted((f["rule"], f["subject"]) for f in payload["findings"]) == [
        ("pipeline-composition", "pipeline miswired_input"),
        ("pipeline-composition", "pipeline unbuildable_parameter"),
        ("unknown-upstream-step", "pipeline after_a_renamed_step"),
    ]
    assert "Traceback" not in result.stderr

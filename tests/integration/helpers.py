"""Helpers for tests that run the real CLI and pipelines in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from mlops_cli.app import app
from mlops_platform.config import config_dir
from mlops_platform.governance.policy.models import BaselineMargins
from readmission.core.synthetic import generate_encounters

# The widest baseline margins the policy allows. On synthetic data the logistic baseline is as
# good as the booster (measured: it led by up to 0.011 ROC-AUC and 0.0024 Brier on the holdout),
# so tests that stand staging/production in with synthetic files use these.
SYNTHETIC_BASELINE_MARGINS = {
    name: field.metadata[-1].le for name, field in BaselineMargins.model_fields.items()
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def invoke_json(*args: str) -> dict[str, Any]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds the JSON object only: logs go to stderr


def write_synthetic_csv(path: Path, patients: int = 15000, seed: int = 11) -> Path:
    generate_encounters(patients, seed).to_csv(path, index=False)
    return path


def copy_configs(target: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """A private copy of configs/ with some files replaced, for tests that need other settings."""
    shutil.copytree(config_dir(), target)
    for relative, content in (overrides or {}).items():
        (target / relative).write_text(yaml.safe_dump(content), encoding="utf-8")
    return target

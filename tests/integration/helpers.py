"""Helpers for tests that run the real CLI and pipelines in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
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


def tamper(url: str, *statements: str) -> None:
    """Run raw SQL on an audit database behind the audit API's back, as someone with write access
    to the file or the database (a DBA) could."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def zenml_sql(*statements: tuple[str, dict[str, Any]]) -> list[int]:
    """Change ZenML's own database behind its API (row counts), as its database admin could."""
    from sqlalchemy import create_engine, text
    from zenml.client import Client

    engine = create_engine(str(Client().zen_store.url))
    try:
        with engine.begin() as connection:
            return [connection.execute(text(sql), values).rowcount for sql, values in statements]
    finally:
        engine.dispose()


def hold_stage(number: str, stage: str, actor: str = "test-setup") -> None:
    """Give version ``number`` the stage as a promotion records it (a `promotion` record in the
    stage's trail, then ZenML's stage), for tests about what happens once a version holds it.
    Promotion itself, its gates and approvals are tested in test_promotion.py. A stage moved with
    ZenML alone is refused by every decision and by scoring (test_stage_vs_trail.py)."""
    from zenml.client import Client

    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import record_version_event
    from readmission.names import MODEL_NAME

    client = Client()
    version = client.get_model_version(MODEL_NAME, int(number))
    record_version_event(
        stage_environment(stage),
        AuditEventType.PROMOTION,
        actor,
        version,
        stage=stage,
        details={"reason": "test set-up", "target_stage": stage},
    )
    client.update_model_version(MODEL_NAME, str(number), stage=stage, force=True)


def clear_stage(stage: str) -> None:
    """Leave ``stage`` with no holder, in ZenML and in the trail, for tests that need a stage
    nobody holds after earlier tests filled it. A test set-up, not a platform path: it writes the
    record `mlops audit reconcile` writes when a recorded holder was deleted (`stage_restored`
    giving the stage to no version), under the test's own name instead of a verified person."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import record_event
    from readmission.names import MODEL_NAME

    client = Client()
    for version in client.list_model_versions(MODEL_NAME, stage=stage, size=50):
        client.update_model_version(
            MODEL_NAME, version.name, stage=ModelStages.ARCHIVED, force=True
        )
        record_event(
            stage_environment(stage),
            AuditEventType.STAGE_RESTORED,
            "test-set-up",
            model_name=MODEL_NAME,
            model_version=version.name,
            stage=stage,
            details={"target_stage": stage, "found": version.name, "restored": None},
        )


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


# The console script's entry point, run in a fresh interpreter that records on exit whether ZenML
# was imported (checks before a run starts must refuse bad input without it).
_CLI_RUNNER = """
import atexit, os, sys
marker = os.environ["MLOPS_TEST_IMPORT_MARKER"]
atexit.register(lambda: open(marker, "w").write("zenml" if "zenml" in sys.modules else "-"))
from mlops_cli.app import main
sys.argv = ["mlops", *sys.argv[1:]]
main()
"""


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    imported_zenml: bool

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_cli(state: Path, *args: str) -> CliRun:
    """Run `mlops ARGS` in a subprocess against the ZenML, MLflow and audit state in `state`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ZENML_STORE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        and not key.startswith("MLOPS_")
    }
    marker = state.parent / f"imports-{os.getpid()}-{time.monotonic_ns()}"
    env |= {
        "MLOPS_STATE_DIR": str(state),
        # Every stage records to the one local trail, as on a local checkout (CI sets CI=true,
        # where nothing defaults to a local file).
        "MLOPS_AUDIT_DB_URL": f"sqlite:///{state / 'audit.db'}",
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "MLOPS_TEST_IMPORT_MARKER": str(marker),
        "COLUMNS": "80",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CLI_RUNNER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    imported = marker.read_text() == "zenml"
    marker.unlink()
    return CliRun(done.returncode, done.stdout, done.stderr, imported)


def assert_one_clean_error(run: CliRun, code: int, named: str) -> None:
    """The documented code, one `error:` message naming `named`, no traceback, no ANSI colour."""
    shown = f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == code, shown
    assert len(run.error_lines()) == 1, shown
    assert named.lower() in run.stderr.lower(), shown
    for stream in (run.stdout, run.stderr):
        assert "Traceback" not in stream, shown
        assert "\x1b[" not in stream, shown

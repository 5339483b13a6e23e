"""`mlops serve`, `mlops server status` and `mlops lineage --request-id` refuse cleanly: one line,
a documented exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")


def test_start_without_a_production_model_is_not_found() -> None:
    result = invoke("serve", "start")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "holds 'production'" in result.stderr and "Traceback" not in result.output


def test_a_typed_name_cannot_start_the_production_service() -> None:
    result = invoke("serve", "start", "--env", "production", "--actor", "mallory")
    assert result.exit_code == ExitCode.DENIED, result.output
    assert "typed --actor is not accepted in production" in result.stderr
    assert invoke("serve", "status", "--json").exit_code == ExitCode.NOT_FOUND


def test_status_without_a_service_is_not_found() -> None:
    result = invoke("serve", "status", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "mlops serve start" in result.stderr
    # --json: stdout still holds one object, the error and its exit code
    refusal = json.loads(result.stdout)
    assert refusal["exit_code"] == ExitCode.NOT_FOUND and "mlops serve start" in refusal["error"]


def test_server_status_without_a_server_is_not_found() -> None:
    result = invoke("server", "status", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert json.loads(result.stdout)["running"] is False  # still says what it found
    shown = invoke("server", "status")
    assert shown.exit_code == ExitCode.NOT_FOUND and "not running" in shown.stdout
    assert "unexpected" not in shown.stderr and "bug" not in shown.stderr


def test_lineage_needs_exactly_one_key(tmp_path: Path) -> None:
    both = invoke("lineage", "--encounter-id", "1", "--request-id", "x")
    assert both.exit_code == ExitCode.BAD_INPUT
    missing = invoke("lineage", "--request-id", "x", "--predictions", str(tmp_path))
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "No prediction log" in missing.stderr

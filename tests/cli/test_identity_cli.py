"""Typed names and GitHub variables are not identities in staging and production (exit 5).

The local checkout with the documented local trail (MLOPS_AUDIT_DB_URL on SQLite), no ZenML server:
every attempt is refused before anything is read or written, and the trails stay empty.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditTrail
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")


@pytest.fixture(autouse=True)
def local_trail(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{isolated_state / 'audit.db'}"
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", url)
    return url


def trail_length(env: str) -> int:
    trail = AuditTrail(load_platform_settings(env).audit.url)
    try:
        return len(trail.records())
    finally:
        trail.close()


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "--version", "1", "--to", "production", "--actor", "carol", "--reason", "ok"],
        ["promote", "--version", "1", "--to", "production", "--actor", "bob", "--reason", "r"],
        ["promote", "--version", "1", "--to", "staging", "--actor", "alice", "--reason", "r"],
        ["rollback", "--to", "production", "--actor", "bob", "--reason", "INC-1"],
        ["train", "--env", "staging", "--actor", "alice"],
    ],
)
def test_typed_names_are_refused_outside_local(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == ExitCode.DENIED, result.output
    assert "no verified identity for environment" in result.stderr
    assert "a typed --actor is not accepted" in result.stderr
    assert trail_length("production") == trail_length("staging") == 0


def test_github_variables_and_a_file_api_do_not_make_an_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository, run_id = "acme/readmission", "77"
    folder = tmp_path / "api" / "repos" / repository / "actions" / "runs" / run_id
    folder.mkdir(parents=True)
    review = {
        "state": "approved",
        "comment": "looks fine",
        "environments": [{"name": "production"}],
        "user": {"login": "carol"},
    }
    (folder / "approvals").write_text(json.dumps([review]))
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "bob",
        "GITHUB_API_URL": f"file://{tmp_path / 'api'}",
        "GITHUB_REPOSITORY": repository,
        "GITHUB_RUN_ID": run_id,
        "GITHUB_TOKEN": "not-a-token",
    }.items():
        monkeypatch.setenv(name, value)
    result = invoke(
        "approve",
        "--version",
        "1",
        "--to",
        "production",
        "--reason",
        "workflow",
        "--from-github-environment",
        "production",
    )
    assert result.exit_code == ExitCode.DENIED, result.output
    assert "no verified identity" in result.stderr
    assert trail_length("production") == 0


@pytest.mark.parametrize("name", ["", "  ", "ca\u200brol"])
def test_blank_or_invisible_names_are_refused_even_locally(name: str) -> None:
    result = invoke("train", "--env", "local", "--actor", name)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--actor" in result.stderr
    assert trail_length("local") == 0


def test_acting_as_someone_needs_the_project_server_and_their_key() -> None:
    result = invoke("--as", "carol", "history")
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "mlops server start" in result.stderr


@pytest.mark.parametrize("given", ["abc", "1.5", "-1", "0", "²", "１"])
def test_a_version_that_is_no_number_is_bad_input_not_a_missing_version(given: str) -> None:
    """Day-one review: `--version abc` answered "not found" (exit 6) as if it might exist."""
    for result in (
        invoke("model", "types", "--version", given),
        invoke("compare", "--", "1", given),  # a review: "１" ended in a KeyError traceback
    ):
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert f"got {given!r}" in result.stderr and "Traceback" not in result.output


def test_a_refused_as_name_prints_its_error_as_json_with_json() -> None:
    """Day-one review: `mlops --as mallory versions --json` printed nothing on stdout."""
    result = invoke("--as", "mallory", "versions", "--json")
    assert result.exit_code == ExitCode.CONFIG, result.output
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["exit_code"] == ExitCode.CONFIG and answer["error"]
    assert answer["error"] in " ".join(result.stderr.split())  # the same one message

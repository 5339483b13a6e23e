"""`mlops audit log` and `mlops audit verify` on a real SQLite audit store, tampered with raw SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlops_cli.errors import ExitCode
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditEventType, AuditTrail
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")

MODEL = "patient_readmission_predictor"
EVENTS = 8


@pytest.fixture
def store_url() -> Iterator[str]:
    """The local environment's audit store, filled with a short promotion story."""
    url = load_platform_settings("local").audit.url
    trail = AuditTrail(url)
    for index in range(1, EVENTS + 1):
        trail.append(
            AuditEventType.APPROVAL_RECORDED if index % 2 else AuditEventType.PROMOTION,
            f"person{index}",
            model_name=MODEL if index % 4 else "another_model",
            model_version=str(index),
            stage="production",
            details={"reason": f"step {index}", "approver": "carol"},
        )
    trail.close()
    yield url


def tamper(url: str, *statements: str) -> None:
    """Change rows behind the audit API's back, as someone with write access to the file could."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def verify_json() -> tuple[int, dict[str, object], str]:
    result = invoke("audit", "verify", "--json")
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_intact_trail_verifies_and_logs(store_url: str) -> None:
    code, payload, _ = verify_json()
    assert code == 0
    assert payload["ok"] is True
    assert payload["records_checked"] == EVENTS
    assert payload["head_seq"] == EVENTS

    result = invoke("audit", "log", "--model", MODEL, "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    assert [r["seq"] for r in records] == [i for i in range(1, EVENTS + 1) if i % 4]
    assert records[0]["details"]["reason"] == "step 1"

    human = invoke("audit", "log")
    assert human.exit_code == 0, human.output
    assert "person4" in human.stdout


@pytest.mark.parametrize(
    "change",
    ["actor = 'mallory'", 'details = \'{"reason":"forged","approver":"carol"}\''],
)
def test_edited_row_is_named(store_url: str, change: str) -> None:
    tamper(store_url, f"UPDATE audit_events SET {change} WHERE seq = 5")

    code, payload, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert payload["first_bad_seq"] == 5
    assert "record 5 was edited" in stderr
    assert "at record 5" in stderr


def test_deleted_row_is_named(store_url: str) -> None:
    tamper(store_url, "DELETE FROM audit_events WHERE seq = 3")

    result = invoke("audit", "verify")

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert "record 3 is missing (sequence jumps from 2 to 4)" in result.stderr


def test_reordered_rows_are_named(store_url: str) -> None:
    tamper(
        store_url,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -1",
    )

    code, payload, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert payload["first_bad_seq"] == 2
    assert "record 2 holds the content of record 6" in stderr


def test_dropped_newest_record_needs_the_published_head(store_url: str) -> None:
    _, intact, _ = verify_json()
    tamper(store_url, f"DELETE FROM audit_events WHERE seq = {EVENTS}")

    assert invoke("audit", "verify").exit_code == 0  # the chain alone cannot see it
    result = invoke("audit", "verify", "--expected-head", str(intact["head_hash"]))

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert f"records after {EVENTS - 1} were removed" in result.stderr


def test_staging_store_needs_its_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLOPS_AUDIT_DB_URL", raising=False)
    assert invoke("audit", "verify", "--env", "staging").exit_code == ExitCode.CONFIG

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'staging-audit.db'}")
    result = invoke("audit", "verify", "--env", "staging", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records_checked"] == 0

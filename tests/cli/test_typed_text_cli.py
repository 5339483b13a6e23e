"""Typed reasons and tickets are refused before anything is recorded when they are too long or
hold control or invisible characters (exit 3); recorded text is printed with such characters
escaped."""

from __future__ import annotations

import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.trust.audit import AuditEventType, AuditTrailMissing
from mlops_platform.trust.events import audit_trail
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")

MODEL = "patient_readmission_predictor"
ATTACKS = {
    "long": "B" * 130_000,
    "escapes": "\x1b[0m" * 6,
    "zero-width": "\u200b" * 25,
    "three zero-width": "\u200b" * 3,
}


def _record_counts() -> dict[str, int]:
    counts = {}
    for env in ("local", "staging", "production"):
        try:
            trail = audit_trail(env, write=False)
        except AuditTrailMissing:
            continue
        try:
            counts[env] = len(trail.records())
        finally:
            trail.close()
    return counts


def _commands(text: str) -> list[list[str]]:
    where = ["--version", "1", "--to", "production"]
    return [
        ["promote", *where, "--reason", text, "--ticket", "CHG-1"],
        ["promote", *where, "--override", "--reason", "a plain reason", "--ticket", text],
        ["approve", *where, "--reason", text],
        ["countersign", *where, "--reason", text],
        ["withdraw", *where, "--reason", text],
        ["rollback", "--to", "production", "--reason", text],
    ]


@pytest.mark.parametrize("text", ATTACKS.values(), ids=ATTACKS.keys())
def test_bad_typed_text_is_refused_before_anything_is_recorded(text: str) -> None:
    before = _record_counts()
    for command in _commands(text):
        result = invoke(*command)
        assert result.exit_code == ExitCode.BAD_INPUT, (command[0], result.output[-500:])
        message = result.stderr
        assert "characters long; the limit is 2,000" in message or "invisible" in message
        assert len(message) < 1000  # one message, not the text echoed back
    assert _record_counts() == before


def test_audit_log_shows_escape_sequences_of_a_record_escaped() -> None:
    trail = audit_trail("local")
    trail.append(
        AuditEventType.APPROVAL_RECORDED,
        "mallory",
        model_name=MODEL,
        model_version="1",
        stage="production",
        details={"reason": "ok\x1b[2K\x1b[1A\x1b[8mhidden\u200b\nforged row", "approver": "x"},
    )
    trail.close()

    result = invoke("audit", "log")

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u200b" not in result.stdout
    assert "\\x1b[2K" in result.stdout
    assert "hidden\\u200b\\x0aforged row" in result.stdout  # one row: the newline shown too

"""The identity recorded for an event whose caller gave none never comes from a variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_platform.trust.events import record_event


def test_variables_cannot_claim_a_verified_identity_source(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: claim that the actor was verified by GitHub OIDC through the variables the
    # runner used to read, outside any governed run.
    monkeypatch.setenv("MLOPS_RUN_ACTOR", "mallory")
    monkeypatch.setenv("MLOPS_RUN_ACTOR_SOURCE", "github-oidc")

    record = record_event("local", "batch_inference", "mallory", details={"rows": 1})

    assert record.details["identity"]["name"] == "mallory"
    assert record.details["identity"]["source"] == "unrecorded"

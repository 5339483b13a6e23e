"""The promotion transaction on a real ZenML store, MLflow registry and signed audit trail.

Versions are created directly in ZenML and MLflow (tagged validated, with a training author and
an MLflow registry version), without training: what is under test is the lock, the started and
end records, reconciliation after a crash at each phase, and concurrent promotions, not the gate.
The gate's verdict is handed to the transaction as the gate step would, naming the holder it
compared the candidate with.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from zenml import log_metadata
from zenml.client import Client

from mlops_platform import workspace
from mlops_platform.governance import transaction
from mlops_platform.governance.approvals.policy import STAGING
from mlops_platform.governance.check import trail_findings
from mlops_platform.governance.model_stages import read_history, stage_holder
from mlops_platform.governance.promotion import PromotionDenied, PromotionOrder
from mlops_platform.names import VALIDATED_TAG
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.events import audit_trail
from readmission.names import MODEL_NAME
from tests.integration.helpers import invoke

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("promotion-transaction")]

VERSIONS = 9  # one holds staging first; the other eight race for it
AUTHOR = "alice"
REQUESTER = "bob"


@pytest.fixture(scope="module")
def mlflow_uri(module_state: Path) -> Iterator[str]:
    # Staging records to the local trail, as in the local demo (module_state restores the env).
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    uri = workspace.mlflow_tracking_uri()
    mlflow = MlflowClient(uri)
    mlflow.create_registered_model(MODEL_NAME)
    client = Client()
    model = client.create_model(MODEL_NAME)
    for _ in range(VERSIONS):
        version = client.create_model_version(model.id, tags=[VALIDATED_TAG])
        registered = mlflow.create_model_version(MODEL_NAME, source="file:///nowhere")
        log_metadata(
            metadata={
                "registration": {
                    "trained_by": AUTHOR,
                    "mlflow": {"registered_version": str(registered.version)},
                }
            },
            model_name=MODEL_NAME,
            model_version=version.name,
        )
    yield uri


def promote(uri: str, number: int, champion: str | None) -> dict[str, Any]:
    version = Client().get_model_version(MODEL_NAME, number)
    order = PromotionOrder(reason=f"promote {number}")
    request = transaction.PromotionRequest(
        target_stage=STAGING,
        actor=REQUESTER,
        gate_decision={"environment": "staging", "passed": True, "champion_version": champion},
        common={"reason": order.reason, "pipeline_run_id": None},
        mlflow_uri=uri,
    )
    return transaction.promote(version, order, request)


def holder() -> str | None:
    found = stage_holder(MODEL_NAME, STAGING)
    return found.name if found is not None else None


def staging_records() -> list[AuditRecord]:
    trail = audit_trail("staging", write=False)
    try:
        return trail.records(model_name=MODEL_NAME, verified=True)
    finally:
        trail.close()


def assert_agreement(uri: str) -> None:
    """ZenML's holder, the trail's current holder and the MLflow alias name one version."""
    current = holder()
    tenures = read_history(MODEL_NAME, [STAGING])[STAGING]
    open_tenures = [t.model_version for t in tenures if t.until is None]
    assert open_tenures == ([current] if current else [])
    aliases = MlflowClient(uri).get_registered_model(MODEL_NAME).aliases or {}
    if current is None:
        assert STAGING not in aliases
    else:
        metadata = Client().get_model_version(MODEL_NAME, int(current)).run_metadata
        assert str(aliases[STAGING]) == metadata["registration"]["mlflow"]["registered_version"]
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "unfinished-promotion"]


def test_promotion_records_started_and_end(mlflow_uri: str) -> None:
    details = promote(mlflow_uri, 1, None)
    assert holder() == "1"
    started, done = [r for r in staging_records() if r.event_type.startswith("promotion")][-2:]
    assert (started.event_type, done.event_type) == (
        AuditEventType.PROMOTION_STARTED,
        AuditEventType.PROMOTION,
    )
    assert done.details["started_seq"] == started.seq == details["started_seq"]
    assert details["lock_wait_seconds"] >= 0 and details["verification_seconds"] > 0
    assert_agreement(mlflow_uri)


@pytest.mark.parametrize(
    ("phase", "number", "outcome"),
    [
        ("started", 2, "rolled back"),
        ("stage_moved", 3, "rolled forward"),
        ("aliases_synced", 4, "rolled forward"),
    ],
)
def test_crash_at_each_phase_is_reconciled(
    mlflow_uri: str, phase: str, number: int, outcome: str
) -> None:
    before = holder()
    transaction.FAILPOINTS.add(phase)
    try:
        with pytest.raises(transaction.Crash):
            promote(mlflow_uri, number, before)
    finally:
        transaction.FAILPOINTS.clear()
    (finding,) = [f for f in trail_findings(MODEL_NAME) if f.rule == "unfinished-promotion"]
    assert f"version {number} to staging" in finding.message

    result = invoke("audit", "reconcile", "--env", "staging", "--json")

    assert result.exit_code == 0, result.output
    (done,) = json.loads(result.stdout)["reconciled"]
    assert (done["model_version"], done["outcome"]) == (str(number), outcome)
    assert holder() == (before if outcome == "rolled back" else str(number))
    assert_agreement(mlflow_uri)
    again = invoke("audit", "reconcile", "--env", "staging", "--json")
    assert json.loads(again.stdout)["reconciled"] == []


def test_eight_concurrent_promotions_leave_one_holder(mlflow_uri: str) -> None:
    """All eight were gated against the same holder; under the lock the first one wins and every
    other one is refused against the holder it would really have replaced."""
    before = holder()
    candidates = [n for n in range(1, VERSIONS + 1) if str(n) != before]
    start = threading.Barrier(len(candidates))
    outcomes: dict[int, Any] = {}

    def attempt(number: int) -> None:
        start.wait()
        try:
            outcomes[number] = promote(mlflow_uri, number, before)
        except PromotionDenied as error:
            outcomes[number] = error

    threads = [threading.Thread(target=attempt, args=(n,)) for n in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    winners = [n for n, result in outcomes.items() if isinstance(result, dict)]
    assert len(outcomes) == len(candidates)
    assert len(winners) == 1, outcomes
    (winner,) = winners
    assert holder() == str(winner)
    assert outcomes[winner]["previous_holder"] == before
    assert_agreement(mlflow_uri)
    denials = [
        r
        for r in staging_records()
        if r.event_type == AuditEventType.PROMOTION_DENIED
        and r.model_version in {str(n) for n in candidates if n != winner}
    ]
    assert len(denials) == len(candidates) - 1
    for denial in denials:
        assert any(f"version {winner} holds the stage now" in r for r in denial.details["reasons"])


def test_tag_and_gate_metadata_edits_are_findings(mlflow_uri: str) -> None:
    """A version the gate rejected, then re-tagged `validated` and given passing gate metadata
    behind the platform's back: `mlops check` reports both against the trail (exit 9)."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.names import REJECTED_TAG
    from mlops_platform.trust.events import record_version_event

    client = Client()
    version = client.create_model_version(MODEL_NAME, tags=[REJECTED_TAG])
    record_version_event("local", AuditEventType.GATE_FAILED, "ci", version, details={})
    log_metadata(
        metadata={"gate_decision_local": {"passed": False, "environment": "local"}},
        model_name=MODEL_NAME,
        model_version=version.name,
    )
    assert not [
        f for f in trail_findings(MODEL_NAME) if f.subject.endswith(f"version {version.name}")
    ]

    client.update_model_version(
        version.model.id, version.id, add_tags=[VALIDATED_TAG], remove_tags=[REJECTED_TAG]
    )
    log_metadata(
        metadata={"gate_decision_local": {"passed": True, "environment": "local"}},
        model_name=MODEL_NAME,
        model_version=version.name,
    )

    result = invoke("check", "--json")

    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    mine = [
        f["rule"]
        for f in json.loads(result.stdout)["findings"]
        if f["subject"].endswith(f"version {version.name}")
    ]
    assert sorted(mine) == ["gate-metadata-vs-trail", "tag-vs-trail"]

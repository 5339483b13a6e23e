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
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine, text
from zenml import log_metadata, pipeline, step
from zenml.client import Client

from mlops_cli.commands import ensure_stack
from mlops_cli.errors import ExitCode, exit_code_for
from mlops_platform import workspace
from mlops_platform.governance import transaction
from mlops_platform.governance.approvals.policy import ASSERTED, PRODUCTION, STAGING
from mlops_platform.governance.check import trail_findings
from mlops_platform.governance.model_stages import (
    StageChangedOutsideError,
    move_stage,
    read_history,
    stage_holder,
)
from mlops_platform.governance.promotion import (
    MODEL_VERSION_ID_KEY,
    PromotionDenied,
    PromotionOrder,
    TrainingAuthorUnknown,
)
from mlops_platform.names import VALIDATED_TAG
from mlops_platform.steps import validate_model
from mlops_platform.steps.validate_model import GateRecordMismatch
from mlops_platform.trust.audit import AuditChainBroken, AuditEventType, AuditRecord
from mlops_platform.trust.events import audit_trail, record_version_event
from mlops_platform.trust.identity import identity_details
from readmission.names import MODEL_NAME
from tests.integration.helpers import invoke, zenml_sql

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("promotion-transaction")]

VERSIONS = 9  # one holds staging first; the other eight race for it
AUTHOR = "alice"
REQUESTER = "bob"


@pytest.fixture(scope="module")
def mlflow_uri(module_state: Path) -> Iterator[str]:
    # Staging records to the local trail, as in the local demo (module_state restores the env).
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    ensure_stack()  # the local stack, whose MLflow tracker keeps the trail's head as a tag
    uri = workspace.mlflow_tracking_uri()
    MlflowClient(uri).create_registered_model(MODEL_NAME)
    Client().create_model(MODEL_NAME)
    for _ in range(VERSIONS):
        new_version(uri, AUTHOR)
    yield uri


def new_version(
    uri: str, author: str, *, trained: bool = True, env: str = "local", source: str = ASSERTED
) -> Any:
    """A validated version registered in MLflow, with `trained_by` in its ZenML metadata, its
    passed gate and (``trained``) the `training_completed` record of its author (identified by
    ``source``) in the trail of ``env``."""
    client = Client()
    version = client.create_model_version(MODEL_NAME, tags=[VALIDATED_TAG])
    registered = MlflowClient(uri).create_model_version(MODEL_NAME, source="file:///nowhere")
    record_version_event(env, AuditEventType.GATE_PASSED, author, version, details={})
    if trained:
        record_version_event(
            env,
            AuditEventType.TRAINING_COMPLETED,
            author,
            version,
            # As register_model records it.
            details={
                MODEL_VERSION_ID_KEY: str(version.id),
                "identity": identity_details(author, source),
            },
        )
    log_metadata(
        metadata={
            "registration": {
                "trained_by": author,
                "mlflow": {"registered_version": str(registered.version)},
            }
        },
        model_name=MODEL_NAME,
        model_version=version.name,
    )
    return version


def promote(
    uri: str,
    number: int,
    champion: str | None,
    run_id: str | None = None,
    *,
    gate_recorded: bool = True,
) -> dict[str, Any]:
    """Promote as the platform's promote step would, after the platform gate of run ``run_id``
    compared the version with ``champion`` and recorded it (``gate_recorded``)."""
    version = Client().get_model_version(MODEL_NAME, number)
    run_id = run_id or f"run-{uuid.uuid4().hex}"
    if gate_recorded:
        record_version_event(
            STAGING, AuditEventType.GATE_PASSED, REQUESTER, version,
            details={"pipeline_run_id": run_id, "champion_version": champion},
        )  # fmt: skip
    order = PromotionOrder(reason=f"promote {number}")
    request = transaction.PromotionRequest(
        target_stage=STAGING,
        actor=REQUESTER,
        gate_decision={"environment": "staging", "passed": True, "champion_version": champion},
        common={"reason": order.reason, "pipeline_run_id": run_id},
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


def test_a_promotion_that_lost_the_race_to_itself_gives_one_reason(mlflow_uri: str) -> None:
    """The review: the second of two concurrent promotions of one version was refused with "no
    version holds the stage now" beside "already holds staging". Under the lock the version
    already holds the stage: that is the reason, and nothing is recorded as moved."""
    before = holder()
    number = next(n for n in range(1, VERSIONS + 1) if str(n) != before)
    promote(mlflow_uri, number, before)
    moves = len([r for r in staging_records() if r.event_type == AuditEventType.PROMOTION])
    with pytest.raises(PromotionDenied) as refused:
        promote(mlflow_uri, number, before)  # its gate ran against the earlier holder
    reasons = " ".join(refused.value.reasons)
    assert "already holds staging" in reasons and "holds the stage now" not in reasons
    assert holder() == str(number)
    assert moves == len([r for r in staging_records() if r.event_type == AuditEventType.PROMOTION])
    if before is not None:
        promote(mlflow_uri, int(before), str(number))  # the holder later tests expect


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


def test_a_stage_set_with_zenml_after_a_crash_is_not_finished_into_a_promotion(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack review: a promotion killed right after its start record, then the stage set with
    ZenML's own client once the lock was gone, and reconcile recorded the promotion (past a
    degraded verdict recorded meanwhile). A stage ZenML changed after the crashed move's lease
    is rolled back (`mlops audit reconcile` then gives the stage back to the recorded holder,
    tested with real models in test_stage_vs_trail.py). The lease is cut to nothing here so that
    "after the lease" takes a second, not five minutes."""
    import time

    from mlops_platform.governance.model_stages import sync_mlflow_aliases

    monkeypatch.setattr(transaction, "LOCK_LEASE_SECONDS", 0.0)
    monkeypatch.setattr(transaction, "LOCK_CLOCK_SLACK", 0.0)
    before = holder()
    number = next(n for n in range(1, VERSIONS + 1) if str(n) != before)
    transaction.FAILPOINTS.add("started")
    try:
        with pytest.raises(transaction.Crash):
            promote(mlflow_uri, number, before)
    finally:
        transaction.FAILPOINTS.clear()
    time.sleep(1.5)  # the crashed move's (cut) lease is over
    Client().update_model_version(MODEL_NAME, str(number), stage=STAGING, force=True)

    (done,) = transaction.reconcile("staging", MODEL_NAME, mlflow_uri)

    assert (done["model_version"], done["outcome"]) == (str(number), "rolled back")
    trail = staging_records()
    ended = next(r for r in reversed(trail) if r.event_type == AuditEventType.PROMOTION_ABORTED)
    assert "set outside the platform" in ended.details["outcome"]
    assert not [r for r in trail if r.event_type == AuditEventType.PROMOTION and r.seq > ended.seq]
    # The recorded holder is still `before`; ZenML's stage goes back to it for the next tests.
    if before is None:
        Client().update_model_version(MODEL_NAME, str(number), stage="archived", force=True)
    else:
        Client().update_model_version(MODEL_NAME, before, stage=STAGING, force=True)
    sync_mlflow_aliases(mlflow_uri, MODEL_NAME)
    assert_agreement(mlflow_uri)


def test_reconcile_closes_only_its_own_environment_s_moves_in_a_shared_trail(
    mlflow_uri: str,
) -> None:
    """Attack review: staging and production share one trail here (the local default), and
    `mlops audit reconcile --env staging` closed a production promotion that was still running
    under production's lock (recorded aborted; then it finished, recorded promoted too)."""
    from mlops_platform.trust.events import record_event

    started = record_event(
        "production", AuditEventType.PROMOTION_STARTED, REQUESTER, model_name=MODEL_NAME,
        model_version="1", stage=PRODUCTION, details={"target_stage": PRODUCTION},
    )  # fmt: skip
    assert transaction.reconcile("staging", MODEL_NAME, mlflow_uri) == []
    still = [f for f in trail_findings(MODEL_NAME) if f.rule == "unfinished-promotion"]
    assert [f"record {started.seq}" in f.message for f in still] == [True]
    (done,) = transaction.reconcile("production", MODEL_NAME, mlflow_uri)
    assert (done["started_seq"], done["outcome"]) == (started.seq, "rolled back")


def race(uri: str, candidates: list[int], champion: str | None) -> dict[int, Any]:
    """Promote ``candidates`` at once, all gated against ``champion``; {number: details or the
    error that refused it}."""
    start = threading.Barrier(len(candidates))
    outcomes: dict[int, Any] = {}

    def attempt(number: int) -> None:
        start.wait()
        try:
            outcomes[number] = promote(uri, number, champion)
        except (PromotionDenied, GateRecordMismatch) as error:
            outcomes[number] = error

    threads = [threading.Thread(target=attempt, args=(n,)) for n in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert len(outcomes) == len(candidates)
    return outcomes


def test_eight_concurrent_promotions_are_each_judged_against_the_holder_they_replace(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All eight were gated against the same holder. Under the lock they go one at a time; each
    one after the first is judged again against the holder it really replaces, and that verdict
    is recorded and decides. The third re-judgement fails: that candidate is refused (exit 4)
    naming the holder it was judged against and the failed check, and nothing moves for it.

    The platform's judge itself (`validate_model.judge_run_again`) needs trained models; it is
    tested on real ones in test_model_artifacts.py. Here it is replaced by one that answers from
    ZenML's holder, which is what the transaction must hand it."""
    before = holder()
    candidates = [n for n in range(1, VERSIONS + 1) if str(n) != before]
    asked: list[tuple[str, str | None, str]] = []  # (candidate, holder when asked, run id)
    failing: list[str] = []

    def judge_again(version: Any, env: str, stage: str, gate: Any, run_id: str) -> Any:
        asked.append((version.name, holder(), run_id))
        passed = len(asked) != 3
        if not passed:
            failing.append(version.name)
        return {
            "environment": env,
            "passed": passed,
            "champion_version": holder(),
            "checks": [{"name": "roc_auc_drop_vs_champion", "passed": passed}],
        }

    monkeypatch.setattr(validate_model, "judge_run_again", judge_again)
    earlier = max((r.seq for r in staging_records()), default=0)  # denials of earlier tests
    outcomes = race(mlflow_uri, candidates, before)

    refused = [n for n, result in outcomes.items() if not isinstance(result, dict)]
    assert [str(n) for n in refused] == failing and len(failing) == 1, outcomes
    assert isinstance(outcomes[refused[0]], transaction.RejudgedGateFailed)
    promoted = [n for n, result in outcomes.items() if isinstance(result, dict)]
    assert len(asked) == len(candidates) - 1  # all but the first were judged again
    records = staging_records()
    moves = [r for r in records if r.event_type == AuditEventType.PROMOTION][-len(promoted) :]
    assert sorted(int(r.model_version) for r in moves) == sorted(promoted)
    # One chain of holders: each promotion replaced the one before it.
    replaced = [r.details["previous_holder"] for r in moves]
    assert replaced == [before] + [r.model_version for r in moves[:-1]]
    assert holder() == moves[-1].model_version
    assert_agreement(mlflow_uri)
    rejudged = {
        r.model_version: r
        for r in records
        if r.event_type.startswith("gate_") and r.details.get("rejudged")
    }
    for move, previous in zip(moves[1:], replaced[1:], strict=True):
        # Asked once, about the holder it replaced; the verdict recorded before the move.
        assert [(h, run) for v, h, run in asked if v == move.model_version] == [
            (previous, move.details["pipeline_run_id"])
        ]
        gate = rejudged[move.model_version]
        assert gate.event_type == AuditEventType.GATE_PASSED
        assert (gate.details["champion_version"], gate.details["earlier_champion_version"]) == (
            previous,
            before,
        )
        assert gate.seq < move.details["started_seq"]
        metadata = Client().get_model_version(MODEL_NAME, int(move.model_version)).run_metadata
        assert metadata["gate_decision_staging"]["champion_version"] == previous
    (loser,) = failing
    gate = rejudged[loser]
    assert gate.event_type == AuditEventType.GATE_FAILED
    (denial,) = [
        r
        for r in records
        if r.event_type == AuditEventType.PROMOTION_DENIED
        and r.model_version == loser
        and r.seq > earlier
    ]
    assert any(
        f"(failed: roc_auc_drop_vs_champion) when judged again against version "
        f"{gate.details['champion_version']}" in reason
        for reason in denial.details["reasons"]
    ), denial.details
    assert loser not in [r.model_version for r in moves]
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "gate-metadata-vs-trail"]


def test_a_run_without_a_platform_gate_step_cannot_be_judged_again(mlflow_uri: str) -> None:
    """When the stage changed after the gate, the platform judges the candidate again on what
    the run's own gate step judged. A promotion from a run without one (here: no ZenML run at
    all) is refused with exit 8, recorded, and moves nothing."""
    before = holder()
    candidates = [n for n in range(1, VERSIONS + 1) if str(n) != before][:3]

    outcomes = race(mlflow_uri, candidates, before)

    winners = [n for n, result in outcomes.items() if isinstance(result, dict)]
    assert len(winners) == 1, outcomes
    (winner,) = winners
    assert holder() == str(winner)
    assert outcomes[winner]["previous_holder"] == before
    assert_agreement(mlflow_uri)
    for number, result in outcomes.items():
        if number != winner:
            assert isinstance(result, GateRecordMismatch)
            assert "has 0 platform gate steps" in str(result)
    denials = [r for r in staging_records() if r.event_type == AuditEventType.PROMOTION_DENIED]
    assert {r.model_version for r in denials[-2:]} == {str(n) for n in candidates if n != winner}


def test_a_decision_the_platform_gate_did_not_record_moves_nothing(mlflow_uri: str) -> None:
    """Other code handing the transaction a passing decision of its own (no gate record of the
    run in the verified trail) is refused and recorded; the stage stays."""
    before = holder()
    number = next(n for n in range(1, VERSIONS + 1) if str(n) != before)

    with pytest.raises(PromotionDenied, match="holds no gate record of version"):
        promote(mlflow_uri, number, before, gate_recorded=False)

    assert holder() == before
    assert staging_records()[-1].event_type == AuditEventType.PROMOTION_DENIED


def test_tag_and_gate_metadata_edits_are_findings(mlflow_uri: str) -> None:
    """A version the gate rejected, then re-tagged `validated` and given passing gate metadata
    behind the platform's back: `mlops check` reports both against the trail (exit 9)."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.names import REJECTED_TAG

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


def version_records(number: str, event_type: str) -> list[AuditRecord]:
    trail = audit_trail("local", write=False)
    try:
        found = trail.records(model_name=MODEL_NAME, event_types=[event_type], verified=True)
    finally:
        trail.close()
    return [r for r in found if r.model_version == number]


def check_findings(number: str) -> list[dict[str, str]]:
    """`mlops check` must fail (exit 9); its findings about version ``number``."""
    from mlops_cli.errors import ExitCode

    result = invoke("check", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    return [
        f
        for f in json.loads(result.stdout)["findings"]
        if f["subject"].endswith(f"version {number}")
    ]


def test_self_approval_is_judged_on_the_trail_not_zenml_metadata(
    mlflow_uri: str, zenml_server: str
) -> None:
    """The approver trained the version (the trail says so), then rewrote ZenML's
    registration.trained_by to someone else: approving it is still self-approval."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import load_approval_policy

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    version = new_version(mlflow_uri, approver)
    log_metadata(  # the edit any ZenML user can make
        metadata={"registration": {"trained_by": AUTHOR, "mlflow": {"registered_version": "1"}}},
        model_name=MODEL_NAME,
        model_version=version.name,
    )
    assert (
        Client()
        .get_model_version(MODEL_NAME, int(version.name))
        .run_metadata["registration"]["trained_by"]
        == AUTHOR
    )

    result = invoke(
        "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
        "--reason", "model report reviewed", "--json",
    )  # fmt: skip

    assert result.exit_code == ExitCode.DENIED, result.output
    assert f"{approver} authored the training run" in result.output
    assert version_records(version.name, AuditEventType.APPROVAL_RECORDED) == []
    (finding,) = check_findings(version.name)
    assert finding["rule"] == "author-vs-trail"
    assert repr(AUTHOR) in finding["message"] and repr(approver) in finding["message"]


def test_a_key_moved_onto_another_person_s_account_acts_as_nobody(
    mlflow_uri: str, zenml_server: str, module_state: Path
) -> None:
    """The attack review: with write access to ZenML's database, the requester moved their own
    API key onto the approver's service account (raw SQL on `api_key`); `mlops --as REQUESTER
    approve` was recorded as the approver's approval. `--as NAME` now acts only when the server
    names the key's account NAME: refused (exit 5), nothing recorded. A NAME that is a path to
    someone else's key file is refused before any key is read (exit 3)."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION, load_approval_policy

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    assert approver != REQUESTER
    version = new_version(mlflow_uri, AUTHOR)
    client = Client()
    to = client.get_service_account(approver).id.hex
    own = client.get_service_account(REQUESTER).id.hex
    move = (
        "UPDATE api_key SET service_account_id = :to, name = :name WHERE service_account_id = :own"
    )
    assert zenml_sql((move, {"to": to, "own": own, "name": "mlops-moved"})) == [1]
    (module_state / "server" / "accounts" / f"{REQUESTER}.token").unlink(missing_ok=True)
    try:
        moved = invoke(
            "--as", REQUESTER, "approve", "--version", version.name, "--to", PRODUCTION,
            "--reason", "model report reviewed",
        )  # fmt: skip
        assert moved.exit_code == ExitCode.DENIED, moved.output
        assert f"belongs to account {approver!r}" in moved.output
        path = invoke(
            "--as", f"../accounts/{approver}", "approve", "--version", version.name,
            "--to", PRODUCTION, "--reason", "model report reviewed",
        )  # fmt: skip
        assert path.exit_code == ExitCode.CONFIG, path.output
        assert "is not a person's name" in path.output
        assert version_records(version.name, AuditEventType.APPROVAL_RECORDED) == []
    finally:
        back = "UPDATE api_key SET service_account_id = :own, name = 'mlops' WHERE name = :name"
        zenml_sql((back, {"own": own, "name": "mlops-moved"}))


def test_a_replaced_writer_key_file_records_nothing(
    mlflow_uri: str, zenml_server: str, module_state: Path
) -> None:
    """The attack review: the local writer key file replaced by a new Ed25519 key; an approval
    was recorded with it (exit 0) and every later command stopped on the broken chain. Now the
    approval is refused (exit 8) before anything is written, and the trail still verifies."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION, load_approval_policy
    from mlops_platform.trust.signing import private_pem

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    version = new_version(mlflow_uri, AUTHOR)
    key = module_state / "keys" / "signing-key.pem"
    kept = key.read_bytes()
    trail = audit_trail("local", write=False)
    head = trail.head()
    trail.close()
    key.write_text(private_pem(Ed25519PrivateKey.generate()))
    try:
        approved = invoke(
            "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
            "--reason", "model report reviewed",
        )  # fmt: skip
    finally:
        key.write_bytes(kept)
    assert approved.exit_code == ExitCode.AUDIT_BROKEN, approved.output
    assert "is not one the trail trusts" in approved.output
    trail = audit_trail("local", write=False)
    try:
        assert trail.head() == head and trail.verify().ok  # nothing written
    finally:
        trail.close()


def test_an_account_renamed_before_its_person_acted_cannot_take_the_name(
    mlflow_uri: str, zenml_server: str, module_state: Path
) -> None:
    """The attack review: names were bound to the account that first acted under them, so a
    raw SQL rename of an account that had not acted yet (one person's account given another's
    name) took that name for good. `mlops server start` now binds each account it creates to its
    name (`bind_created_accounts`); the renamed account, acting with its own key through the
    server (the documented ZENML_STORE_URL / ZENML_STORE_API_KEY way), is refused (exit 5)."""
    import subprocess
    import sys

    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION
    from mlops_platform.infra import server
    from mlops_platform.trust.identity import bind_created_accounts

    created = server.create_accounts_in_store(["frank-new", "grace-new"])
    assert sorted(created) == ["frank-new", "grace-new"]
    assert bind_created_accounts(created)  # what `mlops server start` does after creating them
    rename = "UPDATE user SET name = :to WHERE id = :id"
    assert zenml_sql(
        (rename, {"to": "grace-old", "id": uuid.UUID(created["grace-new"]).hex}),
        (rename, {"to": "grace-new", "id": uuid.UUID(created["frank-new"]).hex}),
    ) == [1, 1]
    version = new_version(mlflow_uri, AUTHOR)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
    environ |= {
        "ZENML_STORE_URL": zenml_server,
        "ZENML_STORE_API_KEY": (module_state / "server" / "accounts" / "frank-new.key")
        .read_text()
        .strip(),
        "ZENML_CONFIG_PATH": str(module_state / "frank-client"),
    }
    acted = subprocess.run(
        [
            sys.executable, "-c", "import sys; from mlops_cli.app import main; main()",
            "approve", "--version", version.name, "--to", PRODUCTION, "--reason", "reviewed",
        ],
        env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert acted.returncode == ExitCode.DENIED, acted.stderr
    assert "names this account 'grace-new', but refused" in acted.stderr, acted.stderr
    assert version_records(version.name, AuditEventType.APPROVAL_RECORDED) == []


def test_version_without_a_training_record_is_refused(mlflow_uri: str, zenml_server: str) -> None:
    """ZenML metadata names an author, but the trail holds no training record (a version made
    outside the platform): approval and promotion stop with exit 8 and record or move nothing."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION, load_approval_policy

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    version = new_version(mlflow_uri, AUTHOR, trained=False)
    before = holder()

    approved = invoke(
        "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
        "--reason", "model report reviewed",
    )  # fmt: skip
    with pytest.raises(TrainingAuthorUnknown, match="no training_completed record"):
        promote(mlflow_uri, int(version.name), before)

    assert approved.exit_code == ExitCode.AUDIT_BROKEN, approved.output
    assert "no training_completed record" in approved.output
    assert holder() == before
    for event in (AuditEventType.APPROVAL_RECORDED, AuditEventType.PROMOTION_STARTED):
        assert version_records(version.name, event) == []
    (finding,) = check_findings(version.name)
    assert finding["rule"] == "author-vs-trail"


def test_removing_the_rejected_tag_alone_is_a_finding(mlflow_uri: str) -> None:
    """A gate rejected the version; someone removes only the `rejected` tag (no `validated`
    added) through ZenML's client: `mlops check` reports it (exit 9)."""
    from mlops_platform.names import REJECTED_KEY, REJECTED_TAG

    client = Client()
    version = client.create_model_version(MODEL_NAME, tags=[REJECTED_TAG])
    record_version_event(
        "local", AuditEventType.GATE_FAILED, "ci", version, details={REJECTED_KEY: True}
    )
    assert not [
        f for f in trail_findings(MODEL_NAME) if f.subject.endswith(f"version {version.name}")
    ]

    client.update_model_version(version.model.id, version.id, remove_tags=[REJECTED_TAG])

    assert [f["rule"] for f in check_findings(version.name)] == ["rejected-tag-vs-trail"]


@step
def idle() -> int:
    return 1


@pipeline(enable_cache=False)
def promotion_run_probe() -> None:
    idle()


def test_crash_with_the_run_left_running_is_marked_failed(mlflow_uri: str) -> None:
    """The promotion's process dies after ZenML's stage moved (kill -9 leaves its pipeline run
    and step `running`): reconcile rolls forward and marks that run failed."""
    from zenml.enums import ExecutionStatus

    run = promotion_run_probe()
    assert run is not None
    changed = zenml_sql(
        (
            "UPDATE pipeline_run SET status = 'running', in_progress = 1, end_time = NULL "
            "WHERE id = :id",
            {"id": run.id.hex},
        ),
        (
            "UPDATE step_run SET status = 'running', end_time = NULL WHERE pipeline_run_id = :id",
            {"id": run.id.hex},
        ),
    )
    assert changed == [1, 1]
    assert Client().get_pipeline_run(run.id).status == ExecutionStatus.RUNNING
    before = holder()
    version = new_version(mlflow_uri, AUTHOR)
    transaction.FAILPOINTS.add("stage_moved")
    try:
        with pytest.raises(transaction.Crash):
            promote(mlflow_uri, int(version.name), before, run_id=str(run.id))
    finally:
        transaction.FAILPOINTS.clear()

    result = invoke("audit", "reconcile", "--env", "staging", "--json")

    assert result.exit_code == 0, result.output
    (done,) = json.loads(result.stdout)["reconciled"]
    assert (done["model_version"], done["outcome"]) == (version.name, "rolled forward")
    assert done["run_marked_failed"] is True
    assert Client().get_pipeline_run(run.id).status == ExecutionStatus.FAILED
    (closed,) = [
        r
        for r in version_records(version.name, AuditEventType.PROMOTION)
        if r.details.get("reconciled")
    ]
    assert closed.details["run_marked_failed"] is True
    assert closed.details["pipeline_run_id"] == str(run.id)
    assert_agreement(mlflow_uri)


@contextmanager
def appended_elsewhere_then_restored(state: Path, version: Any) -> Iterator[None]:
    """Another process records an event about ``version`` (the anchors move past the head H
    this process knows); then the trail file is restored from a copy taken at H and the
    checkpoint removed. The newest trail is put back afterwards."""
    import subprocess
    import sys

    database = state / "audit.db"
    copy = shutil.copyfile(database, state.parent / "audit-at-head.db")
    appended = subprocess.run(  # another process, with this test's stores
        [
            sys.executable, "-c",
            "from mlops_platform.workspace import activate; activate()\n"
            "from zenml.client import Client\n"
            "from mlops_platform.trust.events import record_version_event\n"
            f"version = Client().get_model_version({MODEL_NAME!r}, {version.name!r})\n"
            "record_version_event('local', 'batch_inference', 'bob', version, "
            "details={'rows': 2})\n",
        ],
        capture_output=True, text=True, check=False, env=os.environ.copy(),
    )  # fmt: skip
    assert appended.returncode == 0, appended.stderr
    newest = shutil.copyfile(database, state.parent / "audit-after.db")
    try:
        shutil.copyfile(copy, database)  # the restore
        shutil.rmtree(state / "audit-checkpoints", ignore_errors=True)
        yield
    finally:
        shutil.copyfile(newest, database)


def test_a_trail_restored_to_a_head_this_process_read_is_still_compared_with_the_anchors(
    mlflow_uri: str, module_state: Path
) -> None:
    """The attack review: a process reads the trail (its anchors compared at head H); another
    process records an event (the anchors move past H); the trail file is restored from a copy
    taken at H and the checkpoint removed. A decision read in the first process used to trust
    its cached comparison at H and go on; every decision read compares again outside one
    decision's scope, so it stops (exit 8) and nothing is appended."""

    from mlops_platform.governance.model_stages import read_history

    version = new_version(mlflow_uri, AUTHOR)
    read_history(MODEL_NAME)  # this process compares the trail with the anchors at head H
    with appended_elsewhere_then_restored(module_state, version), pytest.raises(AuditChainBroken):
        read_history(MODEL_NAME)


def test_a_trail_restored_to_the_head_this_process_wrote_is_compared_before_it_appends(
    mlflow_uri: str, module_state: Path
) -> None:
    """The same restore against an append: this process writes record H (a long-lived process,
    the serving service, writes records without a decision); another process writes H+1 (the
    anchors move past H); the trail file is restored from a copy taken at H and the checkpoint
    removed. The next event this process writes is refused (its append compares the trail with
    the anchors again), so the cut is not hidden by anchors moved onto a new H+1."""

    version = new_version(mlflow_uri, AUTHOR)
    written = record_version_event(
        "local", AuditEventType.BATCH_INFERENCE, AUTHOR, version, details={"rows": 1}
    )
    with appended_elsewhere_then_restored(module_state, version):
        with pytest.raises(AuditChainBroken):
            record_version_event(
                "local", AuditEventType.BATCH_INFERENCE, AUTHOR, version, details={"rows": 3}
            )
        trail = audit_trail("local", write=False)
        assert (trail.head().seq, trail.head().record_hash) == (written.seq, written.record_hash)
        trail.close()  # nothing appended


def test_a_cut_trail_with_a_rolled_back_mlflow_tag_is_stopped_by_the_zenml_anchor(
    mlflow_uri: str, module_state: Path, zenml_server: str
) -> None:
    """Someone with write access to the audit database and to MLflow (not ZenML) deletes the
    newest record (an approval), puts the MLflow anchor back to the record before it and removes
    the checkpoint: the next decision still stops (exit 8), on the ZenML metadata anchor of the
    version, and appends nothing. The row and the tag are put back afterwards."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION, load_approval_policy
    from mlops_platform.trust.events import MLFLOW_ANCHOR_TAG

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    version = new_version(mlflow_uri, AUTHOR)
    approved = invoke(
        "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
        "--reason", "model report reviewed",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    (approval,) = version_records(version.name, AuditEventType.APPROVAL_RECORDED)
    tag = MLFLOW_ANCHOR_TAG.format(env=PRODUCTION)
    client = MlflowClient(mlflow_uri)
    assert client.get_registered_model(MODEL_NAME).tags[tag].startswith(f"{approval.seq}:")
    trail = audit_trail(PRODUCTION, write=False)
    (before,) = [r for r in trail.records() if r.seq == approval.seq - 1]
    trail.close()

    engine = create_engine(os.environ["MLOPS_AUDIT_DB_URL"])
    with engine.begin() as connection:
        row = dict(
            connection.execute(
                text("SELECT * FROM audit_events WHERE seq = :seq"), {"seq": approval.seq}
            )
            .mappings()
            .one()
        )
        connection.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": approval.seq})
    client.set_registered_model_tag(MODEL_NAME, tag, f"{before.seq}:{before.record_hash}")
    shutil.rmtree(module_state / "audit-checkpoints")
    try:
        again = invoke(
            "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
            "--reason", "model report reviewed again",
        )  # fmt: skip
        assert again.exit_code == ExitCode.AUDIT_BROKEN, again.output
        assert "ZenML metadata" in again.stderr and f"version {version.name}" in again.stderr
        trail = audit_trail(PRODUCTION, write=False)
        assert trail.head().seq == before.seq  # nothing appended
        trail.close()
        # An event that decides nothing (batch scoring records one) is refused too: written,
        # it would move both anchors onto the cut trail and hide the cut.
        with pytest.raises(AuditChainBroken, match="ZenML metadata"):
            record_version_event(
                PRODUCTION, AuditEventType.BATCH_INFERENCE, approver, version,
                details={"rows": 1},
            )  # fmt: skip
        trail = audit_trail(PRODUCTION, write=False)
        assert trail.head().seq == before.seq
        trail.close()

        # With ZenML write access too, the anchor is re-labelled to an environment nobody checks
        # (it used to be skipped then): still exit 8, naming the edited anchor.
        key = f"audit_{approval.seq:06d}_{approval.event_type}"
        anchor = Client().get_model_version(MODEL_NAME, version.name).run_metadata[key]
        relabelled = {**anchor, "details": {**anchor["details"], "environment": "elsewhere"}}
        log_metadata({key: relabelled}, model_name=MODEL_NAME, model_version=version.name)
        hidden = invoke(
            "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
            "--reason", "model report reviewed again",
        )  # fmt: skip
        log_metadata({key: anchor}, model_name=MODEL_NAME, model_version=version.name)
        assert hidden.exit_code == ExitCode.AUDIT_BROKEN, hidden.output
        assert "not a well-formed audit anchor" in hidden.stderr and key in hidden.stderr
        trail = audit_trail(PRODUCTION, write=False)
        assert trail.head().seq == before.seq
        trail.close()
    finally:
        columns = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO audit_events ({columns}) VALUES ({values})"), row)
        engine.dispose()
        client.set_registered_model_tag(MODEL_NAME, tag, f"{approval.seq}:{approval.record_hash}")
    assert invoke("audit", "verify", "--env", PRODUCTION).exit_code == 0


def test_truncation_below_the_mlflow_anchor_is_reported(
    mlflow_uri: str, module_state: Path, zenml_server: str
) -> None:
    """An approval moves the MLflow anchor. Someone with write access to the audit database and
    ZenML's (not MLflow's) deletes that newest record and its ZenML anchor, on a machine with no
    checkpoint: `mlops audit verify` still reports the truncation (exit 8). Runs last: it leaves
    the trail broken."""
    from mlops_cli.errors import ExitCode
    from mlops_platform.governance.approvals.policy import PRODUCTION, load_approval_policy
    from mlops_platform.trust.events import MLFLOW_ANCHOR_TAG

    policy = load_approval_policy(PRODUCTION)
    approver = policy.roles[policy.stages.production.approvers[0]][0]
    version = new_version(mlflow_uri, AUTHOR)
    approved = invoke(
        "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
        "--reason", "model report reviewed",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    (approval,) = version_records(version.name, AuditEventType.APPROVAL_RECORDED)
    tag = MLFLOW_ANCHOR_TAG.format(env=PRODUCTION)
    tags = MlflowClient(mlflow_uri).get_registered_model(MODEL_NAME).tags
    assert tags[tag] == f"{approval.seq}:{approval.record_hash}"
    trail = audit_trail(PRODUCTION, write=False)
    assert trail.head().seq == approval.seq  # the newest record
    trail.close()
    assert invoke("audit", "verify", "--env", PRODUCTION).exit_code == 0

    engine = create_engine(os.environ["MLOPS_AUDIT_DB_URL"])
    with engine.begin() as connection:
        deleted = connection.execute(
            text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": approval.seq}
        )
        assert deleted.rowcount == 1
    engine.dispose()
    key = f"audit_{approval.seq:06d}_{AuditEventType.APPROVAL_RECORDED}"
    zenml_sql(
        (
            "DELETE FROM run_metadata_resource WHERE run_metadata_id IN "
            "(SELECT id FROM run_metadata WHERE key = :key)",
            {"key": key},
        ),
        ("DELETE FROM run_metadata WHERE key = :key", {"key": key}),
    )
    assert key not in Client().get_model_version(MODEL_NAME, int(version.name)).run_metadata
    shutil.rmtree(module_state / "audit-checkpoints")

    result = invoke("audit", "verify", "--env", PRODUCTION, "--json")

    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    problem = json.loads(result.stdout)["problem"]
    assert f"MLflow tag {tag!r}" in problem, problem
    assert f"record {approval.seq}" in problem and "newest records were deleted" in problem

    # Decisions compare the trail with the same anchor: a second approval (which would also be
    # judged on approvals and history read from this cut trail) stops with exit 8, and nothing
    # is appended to the trail.
    trail = audit_trail(PRODUCTION, write=False)
    head_before = trail.head().seq
    trail.close()
    again = invoke(
        "--as", approver, "approve", "--version", version.name, "--to", PRODUCTION,
        "--reason", "model report reviewed again",
    )  # fmt: skip
    assert again.exit_code == ExitCode.AUDIT_BROKEN, again.output
    assert f"MLflow tag {tag!r}" in again.stderr, again.stderr
    trail = audit_trail(PRODUCTION, write=False)
    assert trail.head().seq == head_before
    trail.close()


def test_a_stage_changed_by_hand_after_the_decision_stops_the_move(mlflow_uri: str) -> None:
    """The move re-reads ZenML's holder: one that is not the holder the promotion was decided
    against (changed outside the platform meanwhile) stops it before anything moves (exit 9)."""
    before = holder()
    number = next(n for n in range(1, VERSIONS + 1) if str(n) != before)
    version = Client().get_model_version(MODEL_NAME, number)

    with pytest.raises(StageChangedOutsideError, match="changed outside the platform") as raised:
        move_stage(version, STAGING, expected="999")

    assert holder() == before
    assert exit_code_for(type(raised.value)) == ExitCode.CHECK_FAILED

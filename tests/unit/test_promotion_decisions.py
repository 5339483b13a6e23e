"""Promotion decisions and stage history derived from audit records (pure, no I/O).

People come from the loaded approval policy, so the tests follow a fork's edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlops_platform.governance.approvals.policy import (
    PRODUCTION,
    STAGING,
    Approval,
    ApprovalPolicy,
    Countersignature,
    load_approval_policy,
)
from mlops_platform.governance.check import stage_mirror_findings
from mlops_platform.governance.promotion import (
    LATEST,
    Candidate,
    Evidence,
    PromotionDecision,
    PromotionOrder,
    PromotionTargetNotFound,
    alias_mismatches,
    approval_problems,
    approvals_from_records,
    available_evidence,
    candidate_problems,
    current_holder,
    decide_promotion,
    previous_holder,
    previous_tenure,
    resolve_version,
    reused_number_problem,
    rollback_problems,
    rollback_undo_problem,
    stage_history,
    stage_record_problem,
    stages_held,
)
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG
from mlops_platform.trust.audit import GENESIS, AuditEventType, AuditRecord, seal_record
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY, VersionIdentity

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MODEL = "readmission_model_under_test"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
# An identity source production accepts (a verified one), read from the policy like the people.
VERIFIED = load_approval_policy(PRODUCTION, CONFIGS).stages.production.accepted_identity_sources[0]


@pytest.fixture(scope="module")
def policy() -> ApprovalPolicy:
    return load_approval_policy(PRODUCTION, CONFIGS)


@pytest.fixture(scope="module")
def cast(policy: ApprovalPolicy) -> dict[str, str]:
    """A production requester, an approver, a training author and an override countersigner."""
    stage = policy.stages.production

    def people(roles: Sequence[str]) -> list[str]:
        return [person for role in roles for person in policy.roles[role]]

    approver = people(stage.approvers)[0]
    requester = next(p for p in people(stage.requesters) if p != approver)
    everyone = [p for members in policy.roles.values() for p in members]
    author = next(p for p in everyone if p not in (approver, requester))
    overrider = next(p for p in people(policy.override.roles) if p not in (requester, author))
    return {"approver": approver, "requester": requester, "author": author, "overrider": overrider}


class Trail:
    """Records chained exactly as the audit store seals them, one minute apart."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def add(self, event: str, actor: str, version: str, stage: str | None, **details: Any) -> None:
        previous = self.records[-1].record_hash if self.records else GENESIS
        self.records.append(
            seal_record(
                seq=len(self.records) + 1,
                recorded_at=(NOW + timedelta(minutes=len(self.records))).isoformat(),
                event_type=event,
                actor=actor,
                model_name=MODEL,
                model_version=version,
                stage=stage,
                details=details,
                prev_hash=previous,
            )
        )


def candidate(
    trained_by: str,
    *,
    tags: Sequence[str] = (VALIDATED_TAG,),
    current: str | None = None,
    held: Sequence[str] = (),
    version: str = "3",
    trained_by_source: str = VERIFIED,
) -> Candidate:
    return Candidate(
        MODEL, version, frozenset(tags), trained_by, current, frozenset(held), trained_by_source
    )


def decide(
    policy: ApprovalPolicy,
    facts: Candidate,
    stage: str,
    requester: str,
    order: PromotionOrder,
    approvals: Sequence[Approval] = (),
    now: datetime = NOW,
    countersignatures: Sequence[Countersignature] = (),
    source: str = VERIFIED,
) -> PromotionDecision:
    evidence = Evidence(tuple(approvals), tuple(countersignatures))
    return decide_promotion(policy, facts, stage, requester, order, evidence, now, source)


def lifecycle(cast: dict[str, str]) -> Trail:
    """v1 staging -> production, v2 staging -> production, then a rollback to v1."""
    trail = Trail()
    promote, rollback = AuditEventType.PROMOTION, AuditEventType.ROLLBACK
    trail.add(promote, cast["requester"], "1", STAGING)
    trail.add(AuditEventType.APPROVAL_RECORDED, cast["approver"], "1", PRODUCTION)
    trail.add(promote, cast["requester"], "1", PRODUCTION)
    trail.add(promote, cast["requester"], "2", STAGING)
    trail.add(AuditEventType.GATE_PASSED, cast["requester"], "2", None)
    trail.add(promote, cast["requester"], "2", PRODUCTION)
    trail.add(rollback, cast["requester"], "1", PRODUCTION)
    return trail


def test_history_replays_every_move_and_who_held_what_when(cast: dict[str, str]) -> None:
    records = lifecycle(cast).records
    history = stage_history(reversed(records), MODEL)  # order comes from seq, not from input

    staging = [(t.model_version, t.seq, t.ended_seq) for t in history[STAGING]]
    production = [(t.model_version, t.seq, t.ended_seq, t.started_by) for t in history[PRODUCTION]]
    # A version leaves staging when it moves to production (ZenML: one stage per version).
    assert staging == [("1", 1, 3), ("2", 4, 6)]
    assert production == [
        ("1", 3, 6, AuditEventType.PROMOTION),
        ("2", 6, 7, AuditEventType.PROMOTION),
        ("1", 7, None, AuditEventType.ROLLBACK),
    ]
    assert history[PRODUCTION][0].until == records[5].recorded_at
    assert history[PRODUCTION][-1].until is None
    assert stages_held(history, "2") == {STAGING, PRODUCTION}
    assert stages_held(history, "9") == frozenset()


def test_history_ignores_other_models_and_events(cast: dict[str, str]) -> None:
    trail = lifecycle(cast)
    assert stage_history(trail.records, "another_model") == {STAGING: [], PRODUCTION: []}
    only_approvals = [r for r in trail.records if r.event_type == AuditEventType.APPROVAL_RECORDED]
    assert stage_history(only_approvals, MODEL) == {STAGING: [], PRODUCTION: []}


def test_previous_holder_is_read_from_history_never_guessed(cast: dict[str, str]) -> None:
    history = stage_history(lifecycle(cast).records, MODEL)
    production = history[PRODUCTION]
    assert previous_holder(production[:2], "2") == "1"
    # After the rollback v1 holds production again; the one before it is v2.
    assert previous_holder(production, "1") == "2"
    assert previous_holder(production[:1], "1") is None
    # A holder the trail never recorded (its stage was set outside the platform): no target.
    assert previous_holder(production, "7") is None


OLD_3 = VersionIdentity("id-of-the-first-3", "a" * 64)  # deleted; its number given again
NEW_3 = VersionIdentity("id-of-the-second-3", "b" * 64)


def about(identity: VersionIdentity) -> dict[str, Any]:
    return {VERSION_IDENTITY_KEY: identity.as_dict()}


def test_a_version_identity_matches_its_own_records_only() -> None:
    assert OLD_3.matches(OLD_3.as_dict())
    assert not NEW_3.matches(OLD_3.as_dict())
    # The same id with another model file: its pin was changed, or another file was signed.
    assert not VersionIdentity(OLD_3.version_id, "c" * 64).matches(OLD_3.as_dict())
    # Recorded before the version was registered: its id decides.
    assert OLD_3.matches({"model_version_id": OLD_3.version_id})
    assert not OLD_3.matches("3") and not OLD_3.matches({})
    assert OLD_3.matches(None)  # written before records named versions (docs/SECURITY.md)


def test_approvals_and_stages_of_a_deleted_version_do_not_pass_to_its_number(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    trail = Trail()
    fields = {"reason": "reviewed", "source": VERIFIED, "target_stage": PRODUCTION}
    trail.add(AuditEventType.PROMOTION, cast["requester"], "3", STAGING, **about(OLD_3))
    trail.add(
        AuditEventType.APPROVAL_RECORDED, cast["approver"], "3", PRODUCTION,
        approver=cast["approver"], **fields, **about(OLD_3),
    )  # fmt: skip
    history = stage_history(trail.records, MODEL)

    assert stages_held(history, "3", OLD_3) == {STAGING}
    assert stages_held(history, "3", NEW_3) == frozenset()
    old = available_evidence(trail.records, MODEL, "3", PRODUCTION, OLD_3)
    new = available_evidence(trail.records, MODEL, "3", PRODUCTION, NEW_3)
    assert [a.approver for a in old.approvals] == [cast["approver"]]
    assert new.approvals == ()

    facts = candidate(cast["author"], held=stages_held(history, "3", NEW_3))
    order = PromotionOrder(reason="r")
    refused = decide(policy, facts, PRODUCTION, cast["requester"], order, new.approvals)
    assert not refused.allowed
    assert any("never been in staging" in reason for reason in refused.reasons)


def test_a_rollback_never_restores_a_number_given_to_another_model(cast: dict[str, str]) -> None:
    trail = Trail()
    trail.add(AuditEventType.PROMOTION, cast["requester"], "3", PRODUCTION, **about(OLD_3))
    trail.add(AuditEventType.PROMOTION, cast["requester"], "4", PRODUCTION)
    tenure = previous_tenure(stage_history(trail.records, MODEL)[PRODUCTION], "4")
    assert tenure is not None and tenure.model_version == "3"

    assert reused_number_problem(tenure, OLD_3, MODEL, PRODUCTION) is None
    problem = reused_number_problem(tenure, NEW_3, MODEL, PRODUCTION)
    assert problem is not None
    assert "number given to another model" in problem and OLD_3.version_id in problem


def test_zenml_s_holder_must_be_the_holder_the_trail_records(cast: dict[str, str]) -> None:
    trail = Trail()
    trail.add(AuditEventType.PROMOTION, cast["requester"], "3", PRODUCTION, **about(OLD_3))
    tenures = stage_history(trail.records, MODEL)[PRODUCTION]

    assert stage_record_problem(PRODUCTION, tenures, "3", OLD_3) is None
    assert stage_record_problem(STAGING, [], None, None) is None
    moved = stage_record_problem(PRODUCTION, tenures, "2", VersionIdentity("id-2"))
    assert moved is not None and "records version 3" in moved
    assert "another model" in (stage_record_problem(PRODUCTION, tenures, "3", NEW_3) or "")
    assert "ZenML says version none" in (
        stage_record_problem(PRODUCTION, tenures, None, None) or ""
    )
    put = stage_record_problem(STAGING, [], "2", VersionIdentity("id-2"))
    assert put is not None and "records no version" in put


def test_a_restore_that_found_the_holder_gone_ends_its_tenure(cast: dict[str, str]) -> None:
    trail = Trail()
    trail.add(AuditEventType.PROMOTION, cast["requester"], "3", STAGING, **about(OLD_3))
    trail.add(AuditEventType.STAGE_RESTORED, "mlops-reconcile", "3", STAGING, restored="3")
    assert stage_history(trail.records, MODEL)[STAGING][-1].until is None  # given back: holds
    trail.add(AuditEventType.STAGE_RESTORED, "mlops-reconcile", "3", STAGING, restored=None)
    (tenure,) = stage_history(trail.records, MODEL)[STAGING]
    assert tenure.ended_seq == 3
    assert stage_record_problem(STAGING, [tenure], None, None) is None


def test_the_current_holder_is_the_open_tenure(cast: dict[str, str]) -> None:
    trail = Trail()
    assert current_holder(stage_history(trail.records, MODEL).get(PRODUCTION, [])) is None
    trail.add(AuditEventType.PROMOTION, cast["requester"], "2", PRODUCTION)
    trail.add(AuditEventType.PROMOTION, cast["requester"], "3", PRODUCTION, **about(OLD_3))
    holder = current_holder(stage_history(trail.records, MODEL)[PRODUCTION])
    assert holder is not None and holder.is_of("3", OLD_3)
    trail.add(AuditEventType.STAGE_RESTORED, "mlops-reconcile", "3", PRODUCTION, restored=None)
    assert current_holder(stage_history(trail.records, MODEL)[PRODUCTION]) is None


def test_a_rollback_never_undoes_a_rollback(cast: dict[str, str]) -> None:
    trail = Trail()
    for version in ("2", "3", "4"):
        trail.add(AuditEventType.PROMOTION, cast["requester"], version, PRODUCTION)
    tenures = stage_history(trail.records, MODEL)[PRODUCTION]
    assert rollback_undo_problem(tenures, MODEL, PRODUCTION) is None  # 4 came by promotion

    trail.add(AuditEventType.ROLLBACK, "bob", "3", PRODUCTION)  # 4 was bad: back to 3
    undo = rollback_undo_problem(stage_history(trail.records, MODEL)[PRODUCTION], MODEL, PRODUCTION)
    assert undo is not None and "put version 4 back" in undo and "bob rolled" in undo

    trail.add(AuditEventType.PROMOTION, cast["requester"], "5", PRODUCTION)  # promoted again
    assert (
        rollback_undo_problem(stage_history(trail.records, MODEL)[PRODUCTION], MODEL, PRODUCTION)
        is None
    )


def test_approvals_come_from_records_for_this_version_and_stage(cast: dict[str, str]) -> None:
    trail = Trail()
    approval = AuditEventType.APPROVAL_RECORDED
    fields = {"reason": "report reviewed", "source": VERIFIED, "target_stage": PRODUCTION}
    trail.add(approval, cast["approver"], "3", PRODUCTION, approver=cast["approver"], **fields)
    trail.add(approval, cast["approver"], "2", PRODUCTION, approver=cast["approver"], **fields)
    trail.add(
        approval,
        cast["approver"],
        "3",
        STAGING,
        approver=cast["approver"],
        **{**fields, "target_stage": STAGING},
    )
    trail.add(approval, cast["approver"], "3", PRODUCTION, **fields)  # no approver: unreadable
    trail.add(approval, "x", "3", PRODUCTION, approver="x", **{**fields, "source": "forged"})

    approvals = approvals_from_records(trail.records, MODEL, "3", PRODUCTION)

    assert [(a.approver, a.model_version, a.target_stage) for a in approvals] == [
        (cast["approver"], "3", PRODUCTION)
    ]
    assert approvals[0].recorded_at == datetime.fromisoformat(trail.records[0].recorded_at)


def test_production_needs_an_approval_read_back_from_the_trail(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    eligible = candidate(cast["author"], held=[STAGING])
    order = PromotionOrder(reason="quarterly refresh")
    denied = decide(policy, eligible, PRODUCTION, cast["requester"], order, [], NOW)
    assert not denied.allowed
    assert "found 0 valid" in denied.reasons[-1]

    trail = Trail()
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        reason="report reviewed",
        source=VERIFIED,
        target_stage=PRODUCTION,
    )
    approvals = approvals_from_records(trail.records, MODEL, "3", PRODUCTION)
    allowed = decide(policy, eligible, PRODUCTION, cast["requester"], order, approvals, NOW)
    assert allowed.allowed, allowed.reasons
    assert allowed.approvals_record() == [
        {"approver": cast["approver"], "source": VERIFIED, "seq": trail.records[0].seq}
    ]


def test_self_approval_does_not_count(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    own = candidate(cast["approver"], held=[STAGING])
    trail = Trail()
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        source=VERIFIED,
        target_stage=PRODUCTION,
    )
    approvals = approvals_from_records(trail.records, MODEL, "3", PRODUCTION)
    decision = decide(
        policy, own, PRODUCTION, cast["requester"], PromotionOrder(reason="r"), approvals, NOW
    )
    assert not decision.allowed
    assert "authored the training run" in decision.reasons[-1]


@pytest.mark.parametrize(
    ("facts", "stage", "expected"),
    [
        ({"tags": ()}, STAGING, f"is not tagged '{VALIDATED_TAG}'"),
        ({"tags": (VALIDATED_TAG, REJECTED_TAG)}, STAGING, f"is tagged '{REJECTED_TAG}'"),
        ({"current": STAGING}, STAGING, "already holds staging"),
        ({}, PRODUCTION, "has never been in staging"),
        ({"held": [PRODUCTION]}, PRODUCTION, "has never been in staging"),
    ],
)
def test_candidate_problems(
    cast: dict[str, str], facts: dict[str, Any], stage: str, expected: str
) -> None:
    problems = candidate_problems(candidate(cast["author"], **facts), stage)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize("facts", [{"current": STAGING}, {"held": [STAGING]}])
def test_production_accepts_a_version_that_was_in_staging(
    cast: dict[str, str], facts: dict[str, Any]
) -> None:
    assert candidate_problems(candidate(cast["author"], **facts), PRODUCTION) == []


def test_candidate_problems_deny_even_with_valid_approvals(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    rejected = candidate(cast["author"], tags=(VALIDATED_TAG, REJECTED_TAG), held=[STAGING])
    trail = Trail()
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        source=VERIFIED,
        target_stage=PRODUCTION,
    )
    approvals = approvals_from_records(trail.records, MODEL, "3", PRODUCTION)
    decision = decide(
        policy, rejected, PRODUCTION, cast["requester"], PromotionOrder(reason="r"), approvals, NOW
    )
    assert not decision.allowed
    assert any(REJECTED_TAG in reason for reason in decision.reasons)


def countersign(trail: Trail, who: str, version: str = "3", **changes: Any) -> None:
    fields = {
        "countersigner": who,
        "source": VERIFIED,
        "reason": "sepsis outbreak: the staging model is needed now",
        "target_stage": PRODUCTION,
        **changes,
    }
    trail.add(AuditEventType.COUNTERSIGNATURE, who, version, PRODUCTION, **fields)


def test_override_needs_a_countersignature_the_second_person_recorded(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    eligible = candidate(cast["author"], held=[STAGING])
    order = PromotionOrder(reason="sepsis outbreak", override=True)
    # No countersignature in the trail: the requester alone gets nothing.
    alone = decide(policy, eligible, PRODUCTION, cast["requester"], order)
    assert not alone.allowed
    assert any("needs a countersignature recorded by a second person" in r for r in alone.reasons)

    trail = Trail()
    countersign(trail, cast["author"])  # the training author may not countersign
    countersign(trail, cast["requester"])  # nor may the requester
    countersign(trail, cast["overrider"], reason="too short")
    evidence = available_evidence(trail.records, MODEL, "3", PRODUCTION)
    denied = decide(
        policy, eligible, PRODUCTION, cast["requester"], order, (), NOW, evidence.countersignatures
    )
    assert not denied.allowed
    text = " ".join(denied.reasons)
    assert "authored the training run" in text
    assert "their own request" in text
    assert f"at least {policy.override.min_reason_chars} characters" in text

    countersign(trail, cast["overrider"])
    evidence = available_evidence(trail.records, MODEL, "3", PRODUCTION)
    allowed = decide(
        policy, eligible, PRODUCTION, cast["requester"], order, (), NOW, evidence.countersignatures
    )
    assert allowed.allowed, allowed.reasons
    assert allowed.approvals == ()
    assert allowed.override_record() == {
        "countersigner": cast["overrider"],
        "source": VERIFIED,
        "reason": "sepsis outbreak: the staging model is needed now",
        "seq": trail.records[-1].seq,
    }


def test_a_countersigner_typed_by_the_requester_is_gone() -> None:
    with pytest.raises(ValidationError, match="override_approver"):
        PromotionOrder.model_validate({"reason": "r", "override_approver": "erin"})


def test_an_approval_is_consumed_by_the_promotion_it_allowed(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    trail = Trail()
    promote = AuditEventType.PROMOTION
    trail.add(promote, cast["requester"], "3", STAGING)
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        source=VERIFIED,
        target_stage=PRODUCTION,
    )
    approval_seq = trail.records[-1].seq
    evidence = available_evidence(trail.records, MODEL, "3", PRODUCTION)
    assert [a.record_seq for a in evidence.approvals] == [approval_seq]
    trail.add(promote, cast["requester"], "3", PRODUCTION, approvals=[{"seq": approval_seq}])
    # v4 replaces v3 in production (v3 archived); v3 cannot return on the approval it used.
    trail.add(promote, cast["requester"], "4", STAGING)
    trail.add(promote, cast["requester"], "4", PRODUCTION)
    assert available_evidence(trail.records, MODEL, "3", PRODUCTION) == Evidence()
    archived = candidate(cast["author"], held=[STAGING, PRODUCTION])
    again = decide(
        policy,
        archived,
        PRODUCTION,
        cast["requester"],
        PromotionOrder(reason="back again"),
        available_evidence(trail.records, MODEL, "3", PRODUCTION).approvals,
    )
    assert not again.allowed
    assert "found 0 valid" in again.reasons[-1]
    # A new approval counts.
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        source=VERIFIED,
        target_stage=PRODUCTION,
    )
    fresh = available_evidence(trail.records, MODEL, "3", PRODUCTION).approvals
    assert [a.record_seq for a in fresh] == [trail.records[-1].seq]


def test_an_approval_given_before_the_version_left_the_stage_does_not_count(
    cast: dict[str, str],
) -> None:
    trail = Trail()
    promote = AuditEventType.PROMOTION
    trail.add(promote, cast["requester"], "3", STAGING)
    trail.add(promote, cast["requester"], "3", PRODUCTION)  # say, by an override
    trail.add(
        AuditEventType.APPROVAL_RECORDED,
        cast["approver"],
        "3",
        PRODUCTION,
        approver=cast["approver"],
        source=VERIFIED,
        target_stage=PRODUCTION,
    )  # never consumed: v3 held production already
    countersign(trail, cast["overrider"])
    trail.add(promote, cast["requester"], "4", STAGING)
    trail.add(promote, cast["requester"], "4", PRODUCTION)  # v3 leaves production
    assert available_evidence(trail.records, MODEL, "3", PRODUCTION) == Evidence()


def test_the_production_holder_never_moves_elsewhere_by_a_promotion(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    holder = candidate(cast["author"], current=PRODUCTION, held=[STAGING, PRODUCTION])
    problems = candidate_problems(holder, STAGING)
    assert any("would leave production with no model" in p for p in problems), problems
    assert any("mlops rollback --to production" in p for p in problems)
    staging_policy = load_approval_policy(STAGING, CONFIGS)
    requester = staging_policy.roles[staging_policy.stages.staging.requesters[0]][0]
    decision = decide(staging_policy, holder, STAGING, requester, PromotionOrder(reason="demote"))
    assert not decision.allowed
    assert "would leave production with no model" in decision.reasons[0]


def test_rollback_needs_a_requester_role_but_no_new_approval(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    archived = candidate(cast["author"], held=[STAGING, PRODUCTION])
    assert rollback_problems(policy, archived, PRODUCTION, cast["requester"], NOW, VERIFIED) == []
    outsider_problems = rollback_problems(
        policy, archived, PRODUCTION, cast["approver"], NOW, VERIFIED
    )
    assert any("may not request promotion to production" in p for p in outsider_problems)
    rejected = candidate(cast["author"], tags=(VALIDATED_TAG, REJECTED_TAG))
    assert rollback_problems(policy, rejected, PRODUCTION, cast["requester"], NOW, VERIFIED)


def test_rollback_never_takes_the_production_holder_out_of_production(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    # Staging's previous holder was promoted on to production: rolling staging back to it would
    # leave production empty, whatever the staging policy allows.
    holder = candidate(cast["author"], current=PRODUCTION, held=[STAGING, PRODUCTION])
    problems = rollback_problems(policy, holder, STAGING, cast["requester"], NOW, VERIFIED)
    assert any("would leave production with no model" in p for p in problems), problems
    archived = candidate(cast["author"], held=[STAGING, PRODUCTION])
    assert rollback_problems(policy, archived, STAGING, cast["requester"], NOW, VERIFIED) == []


def test_latest_is_the_newest_validated_version() -> None:
    assert resolve_version(LATEST, ["5", "3"]) == "5"
    assert resolve_version(" 4 ", ["5"]) == "4"
    with pytest.raises(PromotionTargetNotFound, match="no validated model version"):
        resolve_version("Latest", [])


def test_alias_mismatches_and_check_findings() -> None:
    holders = {STAGING: None, PRODUCTION: "2"}
    expected = {STAGING: None, PRODUCTION: "7"}
    assert alias_mismatches(expected, {STAGING: None, PRODUCTION: "7"}) == []
    assert stage_mirror_findings(MODEL, holders, expected, {STAGING: None, PRODUCTION: "7"}) == []

    drifted = {STAGING: "6", PRODUCTION: "5"}
    assert alias_mismatches(expected, drifted) == [(STAGING, None, "6"), (PRODUCTION, "7", "5")]
    findings = stage_mirror_findings(MODEL, holders, expected, drifted)
    assert [f.rule for f in findings] == ["mlflow-mirror", "mlflow-mirror"]
    assert "no ZenML version holds staging" in findings[0].message
    assert "delete_registered_model_alias" in findings[0].message
    assert "production holder is version 2 (MLflow version 7)" in findings[1].message
    assert "points at MLflow version 5" in findings[1].message

    assert stage_mirror_findings(MODEL, {STAGING: None, PRODUCTION: None}, {}, None) == []
    missing = stage_mirror_findings(MODEL, holders, expected, None)
    assert len(missing) == 1
    assert "has no such model" in missing[0].message


def test_who_may_give_an_approval(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    version = candidate(cast["author"])
    assert approval_problems(policy, version, cast["approver"], PRODUCTION, NOW, VERIFIED) == []
    own = approval_problems(
        policy, candidate(cast["approver"]), cast["approver"], PRODUCTION, NOW, VERIFIED
    )
    assert any("authored the training run" in problem for problem in own)
    outsider = approval_problems(policy, version, cast["requester"], PRODUCTION, NOW, VERIFIED)
    assert any("approvers need one of" in problem for problem in outsider)
    rejected = candidate(cast["author"], tags=(VALIDATED_TAG, REJECTED_TAG))
    assert approval_problems(policy, rejected, cast["approver"], PRODUCTION, NOW, VERIFIED)
    staging = approval_problems(policy, version, cast["approver"], STAGING, NOW, VERIFIED)
    assert any("staging needs no approval" in problem for problem in staging)


def test_history_at_names_the_holder_and_the_policy_its_promotion_recorded(
    cast: dict[str, str],
) -> None:
    from mlops_platform.governance.history_at import (
        HistoryTimeError,
        effective_policy_sha256,
        parse_moment,
        stages_at,
    )

    policy_hash = effective_policy_sha256(PRODUCTION, CONFIGS)
    trail = Trail()
    promote, rollback = AuditEventType.PROMOTION, AuditEventType.ROLLBACK
    trail.add(promote, cast["requester"], "1", STAGING)  # recorded before policy hashes
    trail.add(promote, cast["requester"], "1", PRODUCTION, policy_sha256=policy_hash)
    trail.add(promote, cast["requester"], "2", PRODUCTION, policy_sha256="b" * 64)
    trail.add(rollback, cast["requester"], "1", PRODUCTION, policy_sha256="c" * 64)
    history = stage_history(trail.records, MODEL)

    def at(minutes: float) -> dict[str, Any]:
        return stages_at(history, trail.records, NOW + timedelta(minutes=minutes))

    assert at(-1) == {STAGING: None, PRODUCTION: None}
    first = at(0.5)
    assert first[PRODUCTION] is None
    assert (first[STAGING]["model_version"], first[STAGING]["policy_sha256"]) == ("1", None)
    assert (at(1)[PRODUCTION]["model_version"], at(1)[PRODUCTION]["policy_sha256"]) == (
        "1",
        policy_hash,
    )
    assert at(1)[STAGING] is None  # v1 left staging for production
    assert at(2.5)[PRODUCTION]["model_version"] == "2"
    assert (at(60)[PRODUCTION]["model_version"], at(60)[PRODUCTION]["started_by"]) == (
        "1",
        rollback,
    )
    assert parse_moment("2025-06-01").tzinfo is not None
    with pytest.raises(HistoryTimeError, match="ISO 8601"):
        parse_moment("yesterday")


def test_the_policy_hash_changes_with_the_effective_config(tmp_path: Path) -> None:
    import shutil

    from mlops_platform.governance.history_at import effective_policy_sha256

    shutil.copytree(CONFIGS, tmp_path / "configs")
    before = effective_policy_sha256(PRODUCTION, tmp_path / "configs")
    assert before == effective_policy_sha256(PRODUCTION, CONFIGS)
    override = tmp_path / "configs" / PRODUCTION / "policy.yaml"
    override.write_text(override.read_text(encoding="utf-8") + "\n# comment only\n")
    assert effective_policy_sha256(PRODUCTION, tmp_path / "configs") == before  # same content
    (tmp_path / "configs" / PRODUCTION / "approvals.yaml").write_text("a_key_a_fork_added: 1\n")
    assert effective_policy_sha256(PRODUCTION, tmp_path / "configs") != before


def test_recorded_measurements_are_compared_with_today_s_quality_limits() -> None:
    """A rollback's policy check (pure): only the measurements a gate record holds, against the
    quality limits of today's policy; a record without measurements, or no record, passes here
    (other checks see to it)."""
    from mlops_platform.governance.policy.models import load_policy
    from mlops_platform.governance.promotion import below_todays_limits

    policy = load_policy("production")
    judged = {"metrics": {"roc_auc": policy.quality.min_roc_auc, "brier": 0.09}}
    record = AuditRecord(7, "t", AuditEventType.GATE_PASSED, "ci", "m", "3", None, judged, "p", "h")
    assert below_todays_limits(record, policy, "production") == []
    tightened = policy.model_copy(
        update={"quality": policy.quality.model_copy(update={"min_roc_auc": 0.99})}
    )
    (why,) = below_todays_limits(record, tightened, "production")
    assert "gate record 7" in why and "roc_auc" in why and ">= 0.99" in why
    empty = AuditRecord(8, "t", AuditEventType.GATE_PASSED, "ci", "m", "3", None, {}, "p", "h")
    assert below_todays_limits(empty, tightened, "production") == []
    assert below_todays_limits(None, tightened, "production") == []

"""Promotion, approval and rollback decisions, and stage history, as pure functions.

The audit trail is the source of truth for two things ZenML does not keep: the approvals given
for a version and stage, and which version held each stage over time (ZenML stores only each
version's current stage). Both are derived here from audit records; `model_stages` does the I/O.

Rules a promotion must pass on top of the approval policy (`approvals.policy`):
- only a version tagged `validated` and not `rejected` (it passed the training gates) moves;
- a version never "moves" to the stage it already holds;
- production takes only a version that has been in staging: it holds staging now, or the audit
  trail shows a staging tenure for it (it may have left staging since, e.g. to production);
- a stage move is governed by every stage it changes: the holder of production never moves
  elsewhere by a promotion, which would leave production empty (a rollback, or promoting another
  version to production, replaces it);
- approvals and countersignatures are single use: the promotion record names the records it
  consumed, and a consumed record, or one given before the version last left the stage, never
  counts again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mlops_platform.governance.approvals.policy import (
    ASSERTED,
    LOCAL,
    PRODUCTION,
    STAGES,
    STAGING,
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    Countersignature,
    PromotionRequest,
    countersign_problems,
    evaluate_override,
    evaluate_promotion,
    may_approve,
    may_request,
    normalize_name,
    same_person,
)
from mlops_platform.names import KEY_METRICS, REJECTED_TAG, VALIDATED_TAG
from mlops_platform.text import require_text
from mlops_platform.trust.audit.chain import (
    VERSION_IDENTITY_KEY,
    AuditError,
    AuditEventType,
    AuditRecord,
    VersionIdentity,
)

LATEST = "latest"
# Approvals are given before anyone requests the promotion; approver != requester is checked
# again, against the real requester, when the promotion is requested.
PENDING_REQUESTER = "(requester not known when the approval is given)"
# Events that change which version holds a stage, in the order the trail recorded them.
# (`stage_restored` gives ZenML's stage back to the recorded holder; it changes the history only
# when that holder is gone and the stage is left empty.)
STAGE_EVENTS: frozenset[str] = frozenset(
    {AuditEventType.PROMOTION, AuditEventType.ROLLBACK, AuditEventType.STAGE_RESTORED}
)
# Each stage is governed by the environment of the same name: its policy, gates and audit store.
STAGE_ENVIRONMENTS: Mapping[str, str] = {STAGING: "staging", PRODUCTION: "production"}


class PromotionDenied(RuntimeError):
    """A promotion, approval or rollback was refused by policy; ``reasons`` says why."""

    def __init__(self, action: str, reasons: Sequence[str]) -> None:
        self.action = action
        self.reasons = tuple(reasons)
        listed = "\n".join(f"  - {reason}" for reason in self.reasons)
        super().__init__(f"{action} denied by policy:\n{listed}")


class PromotionTargetNotFound(LookupError):
    """The model version, or the stage holder an action needs, does not exist."""


def stage_environment(stage: str) -> str:
    """The environment whose policy and audit store govern ``stage``."""
    key = normalize_name(stage)
    if key not in STAGE_ENVIRONMENTS:
        raise PromotionDenied(
            "promotion",
            [f"unknown target stage {stage!r}; models can be promoted only to {', '.join(STAGES)}"],
        )
    return STAGE_ENVIRONMENTS[key]


def policy_environment(stage: str, local_checkout: bool) -> str:
    """The environment whose approval policy governs ``stage``.

    On a local checkout (the stage's audit trail is a file in the local state directory and the
    ZenML client uses its own local database, not a server) one person owns every store anyway,
    so the local policy applies: it is the only one that may accept asserted names. Everywhere
    else the policy of the stage's own environment applies.
    """
    env = stage_environment(stage)
    return LOCAL if local_checkout else env


class PromotionOrder(BaseModel):
    """Why a promotion was asked for, handed to the promotion pipeline as a parameter.

    The requester is not part of it: the promotion step takes the identity the governed run was
    started with, so a pipeline started by someone else cannot claim another requester.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1)
    ticket: str | None = None
    run_url: str | None = None
    # Emergency: use a countersignature another person recorded instead of the approvals.
    override: bool = False

    @field_validator("reason", "ticket")
    @classmethod
    def _typed_text(cls, text: str | None, info: ValidationInfo) -> str | None:
        """A reason or ticket is typed free text: `require_text` (length, hidden characters)."""
        return None if text is None else require_text(text, str(info.field_name))


@dataclass(frozen=True)
class Candidate:
    """What promotion needs to know about one model version."""

    model_name: str
    model_version: str
    tags: frozenset[str]
    trained_by: str
    current_stage: str | None
    stages_held: frozenset[str]  # stages the audit trail shows it held at some time
    trained_by_source: str = ASSERTED  # how the training author was identified
    # Which version this is, beyond its number: records of an earlier version that had the same
    # number (deleted, its number given again) are not about it. None: match by number.
    identity: VersionIdentity | None = None


class TrainingAuthorUnknown(AuditError):
    """The verified audit trail holds no (or no consistent) record of who trained a version."""


# The details key of `training_completed` naming the ZenML model version (its id, not its number).
MODEL_VERSION_ID_KEY = "model_version_id"
# The details key of `training_completed` naming the MLflow registry version of the model.
MLFLOW_REGISTERED_VERSION_KEY = "mlflow_registered_version"
# The details key of `training_completed` naming the operating threshold the gate judged.
OPERATING_THRESHOLD_KEY = "operating_threshold"


class OperatingThresholdError(ValueError):
    """A version would be scored at an operating threshold no gate judged it at (exit 5)."""


def judged_threshold(
    recorded: Mapping[str, Any], configured: float, version: str, bounds: tuple[float, float]
) -> float:
    """The operating threshold version ``version`` is scored and judged at (pure).

    The threshold decides which patients are flagged, so it belongs to the version: the one its
    verified `training_completed` record names (``recorded``, its details), whatever today's
    training config says (``configured``, data science's file). A version recorded before the
    record named it is scored at ``configured`` only inside the policy's range ``bounds``.
    """
    found = recorded.get(OPERATING_THRESHOLD_KEY)
    if isinstance(found, int | float) and not isinstance(found, bool):
        return float(found)
    low, high = bounds
    if not low <= configured <= high:
        raise OperatingThresholdError(
            f"version {version} has no recorded operating threshold (trained before the platform "
            f"recorded it), and the configured evaluation.operating_threshold {configured} is "
            f"outside the policy's range [{low}, {high}] (operating_threshold in "
            "configs/*/policy.yaml); set it inside the range, or train and promote a new version"
        )
    return configured


@dataclass(frozen=True)
class TrainingAuthor:
    """Who trained a version, from the platform's verified `training_completed` record."""

    name: str
    source: str  # how the platform identified them in the training run (trust.identity)
    seq: int  # the record it rests on


def training_author(
    records: Iterable[AuditRecord], model_name: str, model_version: str, version_id: str
) -> TrainingAuthor:
    """The author of ``model_version`` per the `training_completed` records among ``records``
    (verified by the caller). ZenML's ``registration.trained_by`` is never read for a decision:
    any ZenML user can edit it. A record naming another ZenML version id (the same number in
    another ZenML store) does not count.

    Raises `TrainingAuthorUnknown` (exit 8) when no record names the version, or when the
    records disagree on who trained it.
    """
    record = training_record(records, model_name, model_version, version_id)
    identity = record.details.get("identity")
    source = identity.get("source") if isinstance(identity, Mapping) else None
    return TrainingAuthor(record.actor, str(source or ASSERTED), record.seq)


def training_record(
    records: Iterable[AuditRecord], model_name: str, model_version: str, version_id: str
) -> AuditRecord:
    """The verified `training_completed` record of ``model_version`` among ``records``: what a
    decision reads about the version's training (author, data pinned, commit), never ZenML's
    editable ``registration`` metadata. Raises `TrainingAuthorUnknown` (exit 8) as
    `training_author` does."""
    found = [
        r
        for r in records
        if r.event_type == AuditEventType.TRAINING_COMPLETED
        and r.model_name == model_name
        and r.model_version == model_version
        and str(r.details.get(MODEL_VERSION_ID_KEY) or version_id) == version_id
    ]
    subject = f"{model_name} version {model_version}"
    if not found:
        raise TrainingAuthorUnknown(
            f"the verified audit trail has no training_completed record for {subject}, so who "
            "trained it is unknown and separation of duties cannot be checked (ZenML's "
            "registration.trained_by is editable by any ZenML user and is not trusted). Nothing "
            "was decided or moved; promote only versions trained through the platform "
            "(`mlops train`) against this environment's trail, and run `mlops audit verify`"
        )
    names = {normalize_name(r.actor) for r in found}
    if len(names) > 1:
        listed = ", ".join(f"record {r.seq}: {r.actor!r}" for r in found)
        raise TrainingAuthorUnknown(
            f"the audit trail records different training authors for {subject} ({listed}); "
            "nothing was decided or moved: find out which training run published this version"
        )
    return found[-1]


@dataclass(frozen=True)
class PromotionDecision:
    """The pre-flight decision: allowed or not, why, and which approvals or override carry it."""

    allowed: bool
    reasons: tuple[str, ...]
    approvals: tuple[Approval, ...] = ()
    countersignature: Countersignature | None = None
    # Standing `degraded` outcome verdicts a countersigned override went past (recorded).
    despite_degraded: tuple[str, ...] = ()

    def approvals_record(self) -> list[dict[str, Any]]:
        """The approvals this promotion consumes, by audit record (``seq``)."""
        return [
            {"approver": a.approver, "source": a.source, "seq": a.record_seq}
            for a in self.approvals
        ]

    def override_record(self) -> dict[str, Any] | None:
        """The countersignature this promotion consumes, or None without an override."""
        signature = self.countersignature
        if signature is None:
            return None
        return {
            "countersigner": signature.countersigner,
            "source": signature.source,
            "reason": signature.reason,
            "seq": signature.record_seq,
            **(
                {"despite_degraded_outcomes": list(self.despite_degraded)}
                if self.despite_degraded
                else {}
            ),
        }


def eligibility_problems(candidate: Candidate) -> list[str]:
    """Why this version may not hold any stage: not validated, rejected, or of unknown author."""
    subject = f"{candidate.model_name} version {candidate.model_version}"
    problems = []
    if VALIDATED_TAG not in candidate.tags:
        problems.append(
            f"{subject} is not tagged '{VALIDATED_TAG}': only versions that passed the training "
            "gates can be promoted; train a new version"
        )
    if REJECTED_TAG in candidate.tags:
        problems.append(f"{subject} is tagged '{REJECTED_TAG}' by a failed gate and stays out")
    if not candidate.trained_by.strip():
        problems.append(
            f"{subject} records no training author (its training_completed record), so separation "
            "of duties cannot be checked; retrain it through the platform"
        )
    return problems


def production_emptied_problems(candidate: Candidate, target_stage: str) -> list[str]:
    """A move of the production holder to another stage would leave production with no model.

    A stage move is governed by every stage it changes, so promotions and rollbacks both refuse
    it, whatever the target stage's own policy allows.
    """
    target = normalize_name(target_stage)
    if normalize_name(candidate.current_stage or "") != PRODUCTION or target == PRODUCTION:
        return []
    subject = f"{candidate.model_name} version {candidate.model_version}"
    return [
        f"{subject} holds {PRODUCTION}; moving it to {target} would leave {PRODUCTION} "
        f"with no model, and a stage move is governed by every stage it changes "
        f"({PRODUCTION} included). To replace it, run `mlops rollback --to {PRODUCTION}` "
        f"or promote another version to {PRODUCTION}"
    ]


def candidate_problems(candidate: Candidate, target_stage: str) -> list[str]:
    """Why this version may not move to ``target_stage`` whatever the approvals say."""
    subject = f"{candidate.model_name} version {candidate.model_version}"
    target = normalize_name(target_stage)
    problems = eligibility_problems(candidate)
    if candidate.current_stage and normalize_name(candidate.current_stage) == target:
        problems.append(f"{subject} already holds {target}; there is nothing to promote")
    problems.extend(production_emptied_problems(candidate, target))
    if target == PRODUCTION and STAGING not in {
        *candidate.stages_held,
        normalize_name(candidate.current_stage or ""),
    }:
        problems.append(
            f"{subject} has never been in {STAGING}; promote it to {STAGING} first "
            f"(`mlops promote --version {candidate.model_version} --to {STAGING}`)"
        )
    return problems


def promotion_request(
    candidate: Candidate,
    target_stage: str,
    requester: str,
    now: datetime,
    requester_source: str = ASSERTED,
) -> PromotionRequest:
    return PromotionRequest(
        model_name=candidate.model_name,
        model_version=candidate.model_version,
        target_stage=normalize_name(target_stage),
        requester=requester,
        training_author=candidate.trained_by,
        now=now,
        requester_source=requester_source,
        author_source=candidate.trained_by_source,
    )


@dataclass(frozen=True)
class Evidence:
    """The records a promotion may rest on: approvals and countersignatures still available."""

    approvals: tuple[Approval, ...] = ()
    countersignatures: tuple[Countersignature, ...] = ()


def decide_promotion(
    policy: ApprovalPolicy,
    candidate: Candidate,
    target_stage: str,
    requester: str,
    order: PromotionOrder,
    evidence: Evidence,
    now: datetime,
    requester_source: str = ASSERTED,
) -> PromotionDecision:
    """Everything but the gates: the candidate's state, the requester, approvals or override."""
    problems = candidate_problems(candidate, target_stage)
    if not candidate.trained_by.strip() or not requester.strip():
        reasons = problems or ["a promotion needs the requester's name; got a blank name"]
        return PromotionDecision(False, tuple(reasons))
    request = promotion_request(candidate, target_stage, requester, now, requester_source)
    verdict: ApprovalDecision
    if order.override:
        verdict = evaluate_override(policy, request, evidence.countersignatures)
    else:
        verdict = evaluate_promotion(policy, request, evidence.approvals)
    return PromotionDecision(
        allowed=verdict.allowed and not problems,
        reasons=(*problems, *verdict.reasons),
        approvals=() if order.override else verdict.valid_approvals,
        countersignature=verdict.countersignature,
    )


def approval_problems(
    policy: ApprovalPolicy,
    candidate: Candidate,
    approver: str,
    target_stage: str,
    now: datetime,
    source: str = ASSERTED,
) -> list[str]:
    """Why ``approver`` may not approve this version for the stage (empty: they may)."""
    problems = eligibility_problems(candidate)
    if problems:
        return problems
    request = promotion_request(candidate, target_stage, PENDING_REQUESTER, now)
    verdict = may_approve(policy, approver, request, source)
    return [] if verdict.allowed else list(verdict.reasons)


def countersignature_problems(
    policy: ApprovalPolicy,
    candidate: Candidate,
    countersigner: str,
    source: str,
    target_stage: str,
    reason: str,
    now: datetime,
) -> list[str]:
    """Why ``countersigner`` may not countersign an override for this version (empty: they may)."""
    problems = eligibility_problems(candidate)
    if problems:
        return problems
    request = promotion_request(candidate, target_stage, PENDING_REQUESTER, now)
    return countersign_problems(policy, request, countersigner, source, reason, False)


# Events that record evidence a promotion may rest on, and the events that consume it.
EVIDENCE_EVENTS: frozenset[str] = frozenset(
    {
        AuditEventType.APPROVAL_RECORDED,
        AuditEventType.COUNTERSIGNATURE,
        AuditEventType.APPROVAL_WITHDRAWN,
        *STAGE_EVENTS,
    }
)


EvidenceT = TypeVar("EvidenceT", Approval, Countersignature)


def approvals_from_records(
    records: Iterable[AuditRecord],
    model_name: str,
    model_version: str,
    target_stage: str,
    identity: VersionIdentity | None = None,
) -> list[Approval]:
    """The approvals the trail holds for one version and stage; unreadable ones never count, nor
    those given for an earlier version that had the same number (``identity``)."""
    return _evidence_items(
        Approval,
        "approver",
        AuditEventType.APPROVAL_RECORDED,
        records,
        model_name,
        model_version,
        target_stage,
        identity,
    )


def countersignatures_from_records(
    records: Iterable[AuditRecord],
    model_name: str,
    model_version: str,
    target_stage: str,
    identity: VersionIdentity | None = None,
) -> list[Countersignature]:
    """The countersignatures the trail holds for one version and stage."""
    return _evidence_items(
        Countersignature,
        "countersigner",
        AuditEventType.COUNTERSIGNATURE,
        records,
        model_name,
        model_version,
        target_stage,
        identity,
    )


def _evidence_items(
    kind: Callable[..., EvidenceT],
    person_field: str,
    event_type: str,
    records: Iterable[AuditRecord],
    model_name: str,
    model_version: str,
    target_stage: str,
    identity: VersionIdentity | None,
) -> list[EvidenceT]:
    """One approval or countersignature per readable record; a record that does not parse never
    counts."""
    items = []
    found = _evidence(records, event_type, model_name, model_version, target_stage, identity)
    for record, stage in found:
        details = record.details
        try:
            seen = details.get("degraded_outcomes_seen") or []
            extra = (
                {
                    "degraded_seen": tuple(
                        str(v.get("record_hash")) for v in seen if isinstance(v, Mapping)
                    )
                }
                if kind is Countersignature
                else {}
            )
            items.append(
                kind(
                    **{person_field: str(details[person_field])},
                    **extra,
                    model_name=model_name,
                    model_version=model_version,
                    target_stage=stage,
                    reason=str(details.get("reason") or ""),
                    recorded_at=datetime.fromisoformat(record.recorded_at),
                    source=str(details.get("source") or ""),
                    record_seq=record.seq,
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return items


def _evidence(
    records: Iterable[AuditRecord],
    event_type: str,
    model_name: str,
    model_version: str,
    target_stage: str,
    identity: VersionIdentity | None,
) -> list[tuple[AuditRecord, str]]:
    wanted = normalize_name(target_stage)
    found = []
    for record in records:
        if (
            record.event_type != event_type
            or record.model_name != model_name
            or record.model_version != model_version
            or (identity is not None and not identity.recorded_in(record))
        ):
            continue
        stage = str(record.details.get("target_stage") or record.stage or "")
        if normalize_name(stage) == wanted:
            found.append((record, stage))
    return found


def consumed_seqs(records: Iterable[AuditRecord], model_name: str) -> frozenset[int]:
    """Approval and countersignature records already used up by a promotion of ``model_name``."""
    used: set[int] = set()
    for record in records:
        if record.event_type != AuditEventType.PROMOTION or record.model_name != model_name:
            continue
        entries = [*(record.details.get("approvals") or []), record.details.get("override")]
        for entry in entries:
            seq = entry.get("seq") if isinstance(entry, Mapping) else None
            if isinstance(seq, int):
                used.add(seq)
    return frozenset(used)


def withdrawals(records: Iterable[AuditRecord], model_name: str) -> dict[int, int]:
    """Approval and countersignature records of ``model_name`` their own giver withdrew, each to
    the `approval_withdrawn` record that withdrew it (pure). Only the person who recorded an
    approval or countersignature withdraws it: a withdrawal naming anybody else's withdraws
    nothing."""
    records = list(records)
    by_seq = {r.seq: r for r in records}
    gone: dict[int, int] = {}
    for record in records:
        if record.event_type != AuditEventType.APPROVAL_WITHDRAWN:
            continue
        if record.model_name != model_name:
            continue
        for seq in record.details.get("withdrawn") or []:
            given = by_seq.get(seq) if type(seq) is int else None
            if (
                given is not None
                and given.seq < record.seq
                and given.event_type
                in (AuditEventType.APPROVAL_RECORDED, AuditEventType.COUNTERSIGNATURE)
                and same_person(given.actor, record.actor)
            ):
                gone.setdefault(given.seq, record.seq)
    return gone


class NothingToWithdraw(LookupError):
    """The person has no approval or countersignature a promotion could still use."""


def available_evidence(
    records: Sequence[AuditRecord],
    model_name: str,
    model_version: str,
    target_stage: str,
    identity: VersionIdentity | None = None,
) -> Evidence:
    """Approvals and countersignatures a promotion of this version to the stage may still use.

    Left out: those a promotion already consumed, those their giver withdrew, those recorded
    before the version last left the stage (a version that left a stage needs a new approval to
    return), and those given for an earlier version that had the same number (``identity``:
    ZenML gives a deleted version's number to the next one).
    """
    used = consumed_seqs(records, model_name) | set(withdrawals(records, model_name))
    tenures = stage_history(records, model_name).get(normalize_name(target_stage), [])
    left = max(
        (t.ended_seq for t in tenures if t.is_of(model_version, identity) and t.ended_seq),
        default=0,
    )

    def fresh(seq: int | None) -> bool:
        return seq is not None and seq not in used and seq > left

    return Evidence(
        approvals=tuple(
            a
            for a in approvals_from_records(
                records, model_name, model_version, target_stage, identity
            )
            if fresh(a.record_seq)
        ),
        countersignatures=tuple(
            c
            for c in countersignatures_from_records(
                records, model_name, model_version, target_stage, identity
            )
            if fresh(c.record_seq)
        ),
    )


@dataclass(frozen=True)
class Tenure:
    """One period during which ``model_version`` held ``stage`` (``until`` None: it still does)."""

    stage: str
    model_version: str
    since: str
    until: str | None
    started_by: str  # the event that gave it the stage: promotion or rollback
    actor: str
    seq: int
    ended_seq: int | None = None
    identity: Any = None  # the starting record's VERSION_IDENTITY_KEY (None in older records)

    def is_of(self, model_version: str, identity: VersionIdentity | None = None) -> bool:
        """Whether this tenure is ``model_version``'s, and not an earlier version's that had its
        number (when ``identity`` is given)."""
        return self.model_version == model_version and (
            identity is None or identity.matches(self.identity)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "model_version": self.model_version,
            "since": self.since,
            "until": self.until,
            "started_by": self.started_by,
            "actor": self.actor,
            "seq": self.seq,
            "ended_seq": self.ended_seq,
        }


def _mover(record: AuditRecord) -> str:
    """Who moved the stage: the record's actor, or, for a crashed move that reconcile finished,
    the requester its start record names (attack review: history showed `mlops-reconcile`)."""
    identity = record.details.get("identity")
    name = identity.get("name") if isinstance(identity, Mapping) else None
    if record.details.get("reconciled") is True and name:
        return f"{name} (finished by {record.actor})"
    return record.actor


def stage_history(records: Iterable[AuditRecord], model_name: str) -> dict[str, list[Tenure]]:
    """Who held each stage from when to when, replayed from promotion and rollback records.

    A move to a stage ends the previous holder's tenure there (ZenML archives it) and ends the
    moved version's tenure in any other stage (a ZenML version holds one stage at a time).
    """
    history: dict[str, list[Tenure]] = {stage: [] for stage in STAGES}
    for record in sorted(records, key=lambda r: r.seq):
        stage = normalize_name(record.stage or "")
        if (
            record.event_type not in STAGE_EVENTS
            or record.model_name != model_name
            or stage not in history
            or not record.model_version
        ):
            continue
        if record.event_type == AuditEventType.STAGE_RESTORED:
            tenures = history[stage]
            if record.details.get("restored") is None and tenures and tenures[-1].until is None:
                tenures[-1] = replace(tenures[-1], until=record.recorded_at, ended_seq=record.seq)
            continue
        for name, tenures in history.items():
            if (
                tenures
                and tenures[-1].until is None
                and (name == stage or tenures[-1].model_version == record.model_version)
            ):
                tenures[-1] = replace(tenures[-1], until=record.recorded_at, ended_seq=record.seq)
        history[stage].append(
            Tenure(
                stage=stage,
                model_version=record.model_version,
                since=record.recorded_at,
                until=None,
                started_by=record.event_type,
                actor=_mover(record),
                seq=record.seq,
                identity=record.details.get(VERSION_IDENTITY_KEY),
            )
        )
    return history


def stages_held(
    history: Mapping[str, Sequence[Tenure]],
    model_version: str,
    identity: VersionIdentity | None = None,
) -> frozenset[str]:
    """Every stage ``model_version`` (this very version: ``identity``) held at some time."""
    return frozenset(
        stage
        for stage, tenures in history.items()
        if any(t.is_of(model_version, identity) for t in tenures)
    )


def previous_holder(tenures: Sequence[Tenure], current_version: str) -> str | None:
    """The version that held the stage immediately before ``current_version``'s latest tenure.

    None when the history does not show ``current_version`` holding the stage, or nobody held it
    before: a rollback target is read from the record, never guessed.
    """
    found = previous_tenure(tenures, current_version)
    return found.model_version if found is not None else None


def previous_tenure(tenures: Sequence[Tenure], current_version: str) -> Tenure | None:
    """The tenure `previous_holder` names: it records which version that was (its identity)."""
    latest = max(
        (i for i, t in enumerate(tenures) if t.model_version == current_version), default=None
    )
    if latest is None:
        return None
    for tenure in reversed(tenures[:latest]):
        if tenure.model_version != current_version:
            return tenure
    return None


def reused_number_problem(
    tenure: Tenure, identity: VersionIdentity, model_name: str, stage: str
) -> str | None:
    """Why the version now numbered as ``tenure``'s holder is not the model that held the stage
    then (None: it is): that version was deleted and its number given to another."""
    if identity.matches(tenure.identity):
        return None
    recorded = tenure.identity if isinstance(tenure.identity, dict) else {}
    return (
        f"{model_name} version {tenure.model_version} is not the model that held {stage} from "
        f"{tenure.since} (the trail records ZenML version "
        f"{recorded.get('model_version_id') or 'unknown'} with model file SHA-256 "
        f"{recorded.get('model_sha256') or 'unknown'}; the version numbered "
        f"{tenure.model_version} now is {identity.version_id} with "
        f"{identity.model_sha256 or 'no registered model file'}): that version was deleted and "
        "its number given to another model. A rollback restores only the recorded holder; "
        "promote a version to this stage instead"
    )


def current_holder(tenures: Sequence[Tenure]) -> Tenure | None:
    """The open tenure of a stage's history (its recorded holder), None when the stage is empty."""
    return next((t for t in reversed(tenures) if t.until is None), None)


def stage_record_problem(
    stage: str, tenures: Sequence[Tenure], holder: str | None, identity: VersionIdentity | None
) -> str | None:
    """Why ZenML's holder of ``stage`` (number ``holder``, ``identity``) is not the holder the
    trail records (None: it is); ``tenures`` is the stage's history from the verified trail."""
    recorded = current_holder(tenures)
    if recorded is None and holder is None:
        return None
    if recorded is not None and holder is not None and recorded.is_of(holder, identity):
        return None
    other = (
        " (another model, given the number of the version the trail records)"
        if recorded is not None and recorded.model_version == holder
        else ""
    )
    return (
        f"ZenML says version {holder or 'none'}{other} holds {stage}, but the audit trail records "
        f"{f'version {recorded.model_version}' if recorded else 'no version'} as its holder: the "
        "stage was changed outside `mlops promote`/`rollback`, or a promotion crashed"
    )


# Recorded on every rollback: the rule under which it needed no new approval.
ROLLBACK_APPROVAL_RULE = (
    "rollback: no new approval; the restored version was approved for this stage when it was "
    "promoted there, and the rollback restores only the recorded previous holder"
)


def rollback_undo_problem(tenures: Sequence[Tenure], model_name: str, stage: str) -> str | None:
    """Why rolling ``stage`` back now would undo a rollback (None: it would not).

    The current holder got the stage by a rollback, and the holder before it is the version that
    rollback took off: a second rollback would put back, without any approval, the model someone
    had just rolled back (two people rolling back at once undo each other). It needs a promotion
    with its approvals.
    """
    current = current_holder(tenures)
    if current is None or current.started_by != AuditEventType.ROLLBACK:
        return None
    removed = previous_tenure(tenures, current.model_version)
    if removed is None or removed.ended_seq != current.seq:
        return None
    return (
        f"version {current.model_version} of {model_name} holds {stage} because {current.actor} "
        f"rolled {stage} back from version {removed.model_version} ({current.since}); a rollback "
        f"now would put version {removed.model_version} back without approval. If it should "
        f"serve again, promote it (`mlops promote --version {removed.model_version} --to "
        f"{stage}`), with the approvals that needs"
    )


def rollback_problems(
    policy: ApprovalPolicy,
    candidate: Candidate,
    target_stage: str,
    requester: str,
    now: datetime,
    requester_source: str = ASSERTED,
) -> list[str]:
    """Why a rollback to ``candidate`` may not happen: the requester's identity and role, tags,
    and a target that holds production (rolling staging back to it would empty production).

    No new approval is needed (``ROLLBACK_APPROVAL_RULE``), and the rollback is recorded with its
    actor, reason and that rule.
    """
    problems = eligibility_problems(candidate) + production_emptied_problems(
        candidate, target_stage
    )
    if problems:
        return problems
    request = promotion_request(candidate, target_stage, requester, now, requester_source)
    requested = may_request(policy, request)
    return [] if requested.allowed else list(requested.reasons)


def resolve_version(requested: str, validated: Sequence[str]) -> str:
    """``latest`` is the newest validated version (``validated`` lists them, newest first)."""
    if normalize_name(requested) != LATEST:
        return requested.strip()
    if not validated:
        raise PromotionTargetNotFound(
            "no validated model version exists, so 'latest' names nothing; train one with "
            "`mlops train`"
        )
    return validated[0]


def alias_mismatches(
    expected: Mapping[str, str | None], actual: Mapping[str, str | None]
) -> list[tuple[str, str | None, str | None]]:
    """Stages whose MLflow alias does not point where the ZenML holder says (stage, want, got)."""
    return [
        (stage, expected.get(stage), actual.get(stage))
        for stage in STAGES
        if expected.get(stage) != actual.get(stage)
    ]


def recorded_gate_metrics(details: Mapping[str, Any]) -> dict[str, float]:
    """The platform's measurements a verified gate record holds (pure): its ``metrics``, and
    for records written before those were kept, the value of each check named after one
    (``limits``: name -> [value, comparison, limit])."""
    found: dict[str, float] = {}
    limits = details.get("limits")
    for name in KEY_METRICS:
        checked = limits.get(name) if isinstance(limits, Mapping) else None
        value = checked[0] if isinstance(checked, list | tuple) and checked else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value)
    measured = details.get("metrics")
    for name, value in measured.items() if isinstance(measured, Mapping) else ():
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[str(name)] = float(value)
    return found


def below_todays_limits(record: AuditRecord | None, policy: Any, env: str) -> list[str]:
    """Why the measurements of a version's verified gate ``record`` fail today's quality limits
    of ``env`` (``policy``, a `GatePolicy`), or nothing (pure): a version judged under limits
    since tightened. Only measurements the record holds are compared (quality: ROC-AUC, Brier,
    ECE, recall); fairness and the champion and baseline margins need the model scored again
    (`mlops gate`)."""
    from mlops_platform.governance.policy.evaluate import evaluate_quality

    if record is None:
        return []
    measured = recorded_gate_metrics(record.details)
    return [
        f"its gate record {record.seq} measured {check.name} {check.value:.4f}, and today's "
        f"{env} policy needs {check.comparison} {check.limit} (the limit changed since it was "
        "judged; `mlops gate --version N --env ENV` re-judges it)"
        for check in evaluate_quality(measured, policy)
        if check.value is not None and not check.passed
    ]


def recorded_training_facts(
    registration: dict[str, Any], recorded: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str | None, list[str]]:
    """(training data, code, training run id, disagreements) of a version, from its verified
    training record's ``recorded`` details (pure).

    The record holds hashes, commit and run; the metadata's descriptive fields (file location,
    rows, patients) are shown only when its data hashes are the record's. Each metadata value
    that differs from the record is one disagreement."""
    claimed_data = registration.get("data") if isinstance(registration.get("data"), dict) else {}
    claimed_code = registration.get("code") if isinstance(registration.get("code"), dict) else {}
    data = {
        "source": recorded.get("data_source"),
        "sha256": recorded.get("data_sha256"),
        "file_sha256": recorded.get("data_file_sha256"),
    }
    code = {"git_sha": recorded.get("git_sha"), "git_dirty": recorded.get("git_dirty")}
    run_id = recorded.get("pipeline_run_id")
    disagreements = [
        f"{label} is {claimed!r}, the record says {actual!r}"
        for label, claimed, actual in (
            ("registration.data.sha256", claimed_data.get("sha256"), data["sha256"]),
            ("registration.data.file_sha256", claimed_data.get("file_sha256"), data["file_sha256"]),
            ("registration.code.git_sha", claimed_code.get("git_sha"), code["git_sha"]),
            ("registration.code.git_dirty", claimed_code.get("git_dirty"), code["git_dirty"]),
            ("registration.pipeline_run_id", registration.get("pipeline_run_id"), run_id),
        )
        if actual is not None and claimed != actual
    ]
    if not any(d.startswith("registration.data") for d in disagreements):
        described = {
            key: claimed_data[key]
            for key in ("location", "rows", "patients")
            if key in claimed_data
        }
        # The record holds the hashes; these descriptions are ZenML's, and say so.
        data |= {**described, "unverified": sorted(described)} if described else {}
    return data, code, (str(run_id) if run_id else None), disagreements


def standing_degraded(records: Iterable[AuditRecord], model_version: str) -> AuditRecord | None:
    """The `outcomes_checked` record whose `degraded` verdict stands for ``model_version``, or
    None (pure). A degraded verdict is not cleared by a later `ok`
    (`monitoring.verdict.standing_checks`); the version is retrained or replaced."""
    from mlops_platform.monitoring.verdict import Verdict, standing_checks

    checks = [r for r in records if r.event_type == AuditEventType.OUTCOMES_CHECKED]
    standing = standing_checks(checks).get(str(model_version))
    if standing is None or standing.standing.details.get("verdict") != Verdict.DEGRADED.value:
        return None
    return standing.standing


def verdict_reference(record: AuditRecord) -> dict[str, Any]:
    """How a countersignature names the degraded verdict its countersigner saw: the record by
    number and hash (a number alone could be another trail's), with what a reader needs."""
    return {
        "seq": record.seq,
        "record_hash": record.record_hash,
        "as_of": record.details.get("as_of"),
        "labels_sha256": record.details.get("labels_sha256"),
    }


def degraded_outcome_problem(records: Iterable[AuditRecord], model_version: str) -> str | None:
    """Why ``model_version`` may not (again) hold production, or None (pure): its standing
    outcome verdict, from verified `outcomes_checked` records, is `degraded` (`standing_degraded`)."""
    record = standing_degraded(records, model_version)
    if record is None:
        return None
    labels = str(record.details.get("labels_sha256") or "")[:16]
    return (
        f"version {model_version}'s realised outcomes were judged degraded (audit record "
        f"{record.seq}, as of {record.details.get('as_of')}, labels SHA-256 {labels}…), and a "
        "degraded verdict stands: it does not go back to production. "
        f"{record.details.get('recommendation') or 'Retrain or replace it.'}"
    )

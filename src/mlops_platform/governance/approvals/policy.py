"""Who may promote a model to a stage, who may approve it, and when an approval counts.

``ApprovalPolicy`` is read from ``configs/*/approvals.yaml``; the decision functions below take
it with a ``PromotionRequest`` and recorded ``Approval``s, do no I/O, and return an
``ApprovalDecision`` whose reasons a person can read. Everything fails closed: an unknown stage,
an unknown person or a doubtful approval never lets a model through. Production's separation of
duties is not configurable: a policy that weakens it does not load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mlops_platform.config import ConfigError, load_layered

APPROVALS_CONFIG = "approvals"
STAGING = "staging"
PRODUCTION = "production"
STAGES: tuple[str, ...] = (STAGING, PRODUCTION)
# "Anyone", accepted only in the staging stage's role lists and only when written out.
WILDCARD = "*"
APPROVAL_SOURCES: tuple[str, ...] = ("asserted", "github-environment")
# Tolerated clock difference between the machine that recorded an approval and the evaluator.
CLOCK_SKEW = timedelta(minutes=5)

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class ApprovalPolicyError(ConfigError):
    """The approval policy of an environment is incomplete or weakens a mandatory rule."""


def normalize_name(name: str) -> str:
    """The form in which people and stages are compared: trimmed and case-folded."""
    return name.strip().casefold()


def _as_tuple(value: Any) -> Any:
    """YAML gives lists; the frozen models store tuples (strict mode accepts only tuples)."""
    return tuple(value) if isinstance(value, list) else value


_Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


class StagePolicy(BaseModel):
    """The promotion rules of one target stage; role lists may hold ``*`` only in staging."""

    model_config = _STRICT
    requesters: Annotated[_Names, Field(min_length=1)]
    approvers: _Names
    required_approvals: Annotated[int, Field(ge=0, le=10)]
    approval_valid_days: Annotated[int, Field(ge=1, le=90)]
    approver_must_differ_from_requester: bool
    approver_must_differ_from_author: bool


class Stages(BaseModel):
    """One policy per stage a model can be promoted to; other stage names are rejected."""

    model_config = _STRICT
    staging: StagePolicy
    production: StagePolicy


class OverridePolicy(BaseModel):
    """Who may countersign an emergency override, and how long its reason must be."""

    model_config = _STRICT
    roles: Annotated[_Names, Field(min_length=1)]
    min_reason_chars: Annotated[int, Field(ge=10, le=500)]


class ApprovalPolicy(BaseModel):
    """The whole approval policy of one environment; see ``configs/base/approvals.yaml``."""

    model_config = _STRICT
    roles: dict[str, _Names]
    stages: Stages
    override: OverridePolicy

    @model_validator(mode="after")
    def _enforce_mandatory_rules(self) -> ApprovalPolicy:
        problems = [
            *_role_member_problems(self.roles),
            *_stage_problems(self),
            *_role_reference_problems("override.roles", self.override.roles, self.roles, False),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage(self, name: str) -> StagePolicy | None:
        """The rules of stage ``name``, or None for a stage this policy does not know."""
        key = normalize_name(name)
        return getattr(self.stages, key) if key in STAGES else None

    def roles_of(self, person: str) -> tuple[str, ...]:
        """The roles ``person`` holds, in config order."""
        key = normalize_name(person)
        return tuple(
            role
            for role, members in self.roles.items()
            if key in {normalize_name(m) for m in members}
        )

    def people_in(self, roles: Iterable[str]) -> frozenset[str]:
        """Everyone (normalized) holding at least one of ``roles``."""
        return frozenset(
            normalize_name(member) for role in roles for member in self.roles.get(role, ())
        )


def _role_member_problems(roles: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for role, members in roles.items():
        if not role.strip() or role == WILDCARD:
            problems.append(f"role name {role!r} is not allowed; name roles after a job")
        keys = [normalize_name(m) for m in members]
        if any(not key for key in keys):
            problems.append(f"role {role!r} lists a blank name")
        if WILDCARD in keys:
            problems.append(
                f"role {role!r} lists {WILDCARD!r}; the wildcard is only allowed in "
                "stages.staging.requesters or stages.staging.approvers"
            )
        if len(set(keys)) != len(keys):
            problems.append(f"role {role!r} lists a person twice: {list(members)}")
    return problems


def _role_reference_problems(
    where: str, names: tuple[str, ...], roles: dict[str, tuple[str, ...]], wildcard_ok: bool
) -> list[str]:
    problems = []
    if WILDCARD in names and not wildcard_ok:
        problems.append(
            f"{where} may not use {WILDCARD!r}; the wildcard is only allowed in staging"
        )
    unknown = [name for name in names if name != WILDCARD and name not in roles]
    if unknown:
        problems.append(f"{where} names unknown roles {unknown}; known roles are {list(roles)}")
    return problems


def _stage_problems(policy: ApprovalPolicy) -> list[str]:
    problems = []
    for name in STAGES:
        stage: StagePolicy = getattr(policy.stages, name)
        for field in ("requesters", "approvers"):
            problems += _role_reference_problems(
                f"stages.{name}.{field}", getattr(stage, field), policy.roles, name == STAGING
            )
        if stage.required_approvals and WILDCARD not in stage.approvers:
            eligible = len(policy.people_in(stage.approvers))
            if eligible < stage.required_approvals:
                problems.append(
                    f"stages.{name} needs {stage.required_approvals} distinct approvals but "
                    f"roles {list(stage.approvers)} hold only {eligible} people; add people "
                    "to those roles or lower required_approvals"
                )
    production = policy.stages.production
    if production.required_approvals < 1:
        problems.append("stages.production.required_approvals must be at least 1")
    for flag in ("approver_must_differ_from_requester", "approver_must_differ_from_author"):
        if not getattr(production, flag):
            problems.append(
                f"stages.production.{flag} must be true: separation of duties cannot be "
                "switched off for production"
            )
    return problems


def load_approval_policy(env: str, directory: Path | None = None) -> ApprovalPolicy:
    """Load and validate the merged approval policy of ``env``; problems raise the error type."""
    raw = load_layered(APPROVALS_CONFIG, env, directory)
    try:
        return ApprovalPolicy.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(_describe(issue) for issue in error.errors())
        raise ApprovalPolicyError(
            f"The approval policy for environment {env!r} is invalid:\n{problems}\n"
            f"Fix configs/{env}/{APPROVALS_CONFIG}.yaml or configs/base/{APPROVALS_CONFIG}.yaml."
        ) from error


def _describe(issue: Any) -> str:
    location = ".".join(str(part) for part in issue["loc"])
    if not location:
        return f"  - {issue['msg']}"
    return f"  - {location}: {issue['msg']} (got {issue.get('input')!r})"


@dataclass(frozen=True)
class Approval:
    """One person's approval of one model version for one stage, however it was recorded."""

    approver: str
    model_name: str
    model_version: str
    target_stage: str
    reason: str
    recorded_at: datetime
    source: str  # "asserted" (CLI) or "github-environment" (a GitHub environment reviewer)

    def __post_init__(self) -> None:
        if not self.approver.strip():
            raise ValueError("An approval needs the approver's name; got a blank name.")
        if self.source not in APPROVAL_SOURCES:
            raise ValueError(
                f"Approval source {self.source!r} is unknown; use one of {list(APPROVAL_SOURCES)}."
            )
        _require_aware("recorded_at", self.recorded_at)


@dataclass(frozen=True)
class PromotionRequest:
    """A request to move one model version to a stage, with who asks and who trained it."""

    model_name: str
    model_version: str
    target_stage: str
    requester: str
    training_author: str
    now: datetime

    def __post_init__(self) -> None:
        for field in ("requester", "training_author"):
            if not getattr(self, field).strip():
                raise ValueError(
                    f"A promotion request needs {field}; got a blank name. Separation of duties "
                    "cannot be checked without both the requester and the training run's author."
                )
        _require_aware("now", self.now)


def _require_aware(field: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{field}={moment.isoformat()} has no time zone; pass an aware datetime "
            "(e.g. datetime.now(UTC)) so that approval ages are unambiguous."
        )


@dataclass(frozen=True)
class ApprovalDecision:
    """The outcome of one check, with the reasons and how each recorded approval was judged."""

    allowed: bool
    reasons: tuple[str, ...]
    valid_approvals: tuple[Approval, ...] = ()
    rejected_approvals: tuple[tuple[Approval, str], ...] = ()


def may_request(policy: ApprovalPolicy, request: PromotionRequest) -> ApprovalDecision:
    """Whether the requester holds a role allowed to request promotion to the target stage."""
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    who, target = request.requester.strip(), normalize_name(request.target_stage)
    held = _matching_roles(policy, who, stage.requesters)
    if not held:
        return ApprovalDecision(
            False,
            (
                f"{who} may not request promotion to {target}: "
                f"{_role_gap(policy, who, stage.requesters, 'requesters')}",
            ),
        )
    return ApprovalDecision(
        True,
        (f"{who} may request promotion of {_subject(request)} to {target} ({_basis_text(held)})",),
    )


def may_approve(
    policy: ApprovalPolicy, approver: str, request: PromotionRequest
) -> ApprovalDecision:
    """Whether ``approver`` may approve this request: their role and separation of duties."""
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    who, target = approver.strip(), normalize_name(request.target_stage)
    if not who:
        return ApprovalDecision(False, ("an approval needs the approver's name; got a blank name",))
    if stage.required_approvals == 0:
        return ApprovalDecision(
            False,
            (f"{target} needs no approval: an allowed requester promotes to {target} directly",),
        )
    problems = _approver_problems(policy, stage, who, request)
    if problems:
        return ApprovalDecision(False, tuple(f"{who} may not approve: {p}" for p in problems))
    held = _matching_roles(policy, who, stage.approvers)
    return ApprovalDecision(
        True,
        (f"{who} may approve promotion of {_subject(request)} to {target} ({_basis_text(held)})",),
    )


def evaluate_promotion(
    policy: ApprovalPolicy, request: PromotionRequest, approvals: Sequence[Approval]
) -> ApprovalDecision:
    """The full check before a promotion: requester's role plus enough valid, distinct approvals."""
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    requested = may_request(policy, request)
    valid, rejected = _classify(policy, stage, request, approvals)
    target = normalize_name(request.target_stage)
    if stage.required_approvals == 0:
        count_ok, count_reason = True, f"{target} needs no approval"
    else:
        count_ok = len(valid) >= stage.required_approvals
        count_reason = _count_text(target, stage, valid, rejected)
    return ApprovalDecision(
        requested.allowed and count_ok,
        (*requested.reasons, count_reason),
        tuple(valid),
        tuple(rejected),
    )


def evaluate_override(
    policy: ApprovalPolicy, request: PromotionRequest, second_actor: str, reason: str
) -> ApprovalDecision:
    """Whether an emergency override may replace the approvals of this request.

    The requester must still be allowed to request; a second person holding an override role,
    who is neither the requester nor the training run's author, countersigns a written reason.
    """
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    requested = may_request(policy, request)
    second, target = second_actor.strip(), normalize_name(request.target_stage)
    why = reason.strip()
    held = _matching_roles(policy, second, policy.override.roles) if second else ()
    problems = []
    if len(why) < policy.override.min_reason_chars:
        problems.append(
            f"an override needs a written reason of at least {policy.override.min_reason_chars} "
            f"characters; got {len(why)}"
        )
    if not second:
        problems.append("an override needs a second person to countersign; got a blank name")
    elif not held:
        problems.append(
            f"{second} may not countersign an override: "
            f"{_role_gap(policy, second, policy.override.roles, 'countersigners')}"
        )
    if second and _same(second, request.requester):
        problems.append(
            f"{second} may not countersign an override of their own request (separation of duties)"
        )
    if second and _same(second, request.training_author):
        problems.append(
            f"{second} may not countersign an override: {second} authored the training run "
            f"of {_subject(request)} (separation of duties)"
        )
    if problems or not requested.allowed:
        return ApprovalDecision(False, (*requested.reasons, *problems))
    return ApprovalDecision(
        True,
        (
            *requested.reasons,
            f"emergency override of the {target} approval rule for {_subject(request)}, "
            f"countersigned by {second} ({_basis_text(held)}); reason: {why}",
        ),
    )


def _classify(
    policy: ApprovalPolicy,
    stage: StagePolicy,
    request: PromotionRequest,
    approvals: Sequence[Approval],
) -> tuple[list[Approval], list[tuple[Approval, str]]]:
    """Split approvals into those that count (one per person) and the rest, with why."""
    valid: list[Approval] = []
    rejected: list[tuple[Approval, str]] = []
    counted: set[str] = set()
    for approval in approvals:
        who = approval.approver.strip()
        problems = _record_problems(stage, request, approval)
        conflicts = _approver_problems(policy, stage, who, request)
        if conflicts:
            problems.append("does not count because " + " and ".join(conflicts))
        if not problems and normalize_name(who) in counted:
            problems.append("repeats an approval already counted (each person counts once)")
        if problems:
            rejected.append((approval, f"approval by {who} " + ", and ".join(problems)))
        else:
            valid.append(approval)
            counted.add(normalize_name(who))
    return valid, rejected


def _record_problems(
    stage: StagePolicy, request: PromotionRequest, approval: Approval
) -> list[str]:
    """Ways an approval record does not match this request or is out of its validity window."""
    problems = []
    if approval.model_name.strip() != request.model_name.strip():
        problems.append(f"is for model {approval.model_name}, not {request.model_name}")
    if normalize_name(approval.target_stage) != normalize_name(request.target_stage):
        problems.append(f"is for stage {approval.target_stage}, not {request.target_stage}")
    if approval.model_version.strip() != request.model_version.strip():
        problems.append(f"is for version {approval.model_version}, not {request.model_version}")
    age = request.now - approval.recorded_at
    if age < -CLOCK_SKEW:
        problems.append(
            f"is dated in the future ({_when(approval.recorded_at)}, now {_when(request.now)})"
        )
    elif age > timedelta(days=stage.approval_valid_days):
        problems.append(
            f"expired: recorded {_when(approval.recorded_at)}, more than "
            f"{stage.approval_valid_days} days before {_when(request.now)}"
        )
    return problems


def _approver_problems(
    policy: ApprovalPolicy, stage: StagePolicy, who: str, request: PromotionRequest
) -> list[str]:
    """Why ``who`` cannot approve this request: missing role, or separation of duties."""
    problems = []
    if not _matching_roles(policy, who, stage.approvers):
        problems.append(_role_gap(policy, who, stage.approvers, "approvers"))
    if stage.approver_must_differ_from_requester and _same(who, request.requester):
        problems.append(f"{who} requested this promotion (separation of duties)")
    if stage.approver_must_differ_from_author and _same(who, request.training_author):
        problems.append(
            f"{who} authored the training run of {_subject(request)} (separation of duties)"
        )
    return problems


def _matching_roles(
    policy: ApprovalPolicy, person: str, allowed: tuple[str, ...]
) -> tuple[str, ...]:
    """The roles in ``allowed`` that ``person`` holds; ``(WILDCARD,)`` when anyone is allowed."""
    if WILDCARD in allowed:
        return (WILDCARD,)
    held = policy.roles_of(person)
    return tuple(role for role in allowed if role in held)


def _same(first: str, second: str) -> bool:
    return normalize_name(first) == normalize_name(second)


def _unknown_stage(stage: str) -> ApprovalDecision:
    return ApprovalDecision(
        False,
        (f"unknown target stage {stage!r}; models can be promoted only to {', '.join(STAGES)}",),
    )


def _count_text(
    target: str, stage: StagePolicy, valid: list[Approval], rejected: list[tuple[Approval, str]]
) -> str:
    plural = "" if stage.required_approvals == 1 else "s"
    text = (
        f"{target} needs {stage.required_approvals} approval{plural} from "
        f"{_roles_text(stage.approvers)}; found {len(valid)} valid"
    )
    if valid:
        text += f" by {', '.join(a.approver.strip() for a in valid)}"
    if rejected:
        text += f" ({len(rejected)} ignored: {'; '.join(why for _, why in rejected)})"
    return text


def _subject(request: PromotionRequest) -> str:
    return f"{request.model_name} version {request.model_version}"


def _roles_text(roles: tuple[str, ...]) -> str:
    return "anyone" if WILDCARD in roles else f"[{', '.join(roles)}]"


def _role_gap(policy: ApprovalPolicy, person: str, needed: tuple[str, ...], who: str) -> str:
    """``person``'s roles against the roles ``who`` (e.g. "approvers") need."""
    held = policy.roles_of(person)
    holds = f"{person} holds [{', '.join(held)}]" if held else f"{person} holds no role"
    return f"{holds}, but {who} need one of {_roles_text(needed)}"


def _basis_text(held: tuple[str, ...]) -> str:
    if held == (WILDCARD,):
        return f"anyone may: {WILDCARD!r} in the approval policy"
    return f"role {', '.join(held)}"


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")

"""Who may promote a model to a stage, who may approve it, and when an approval counts.

``ApprovalPolicy`` is read from ``configs/*/approvals.yaml``; the decision functions below take
it with a ``PromotionRequest`` and recorded ``Approval``s, do no I/O, and return an
``ApprovalDecision`` whose reasons a person can read. Everything fails closed: an unknown stage,
an unknown person or a doubtful approval never lets a model through. Production's separation of
duties is not configurable: a policy that weakens it does not load.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from confusable_homoglyphs.confusables import confusables_data
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mlops_platform.config import ConfigError, load_layered, validation_issues
from mlops_platform.text import HIDDEN_CATEGORIES, text_problem, visible_length

APPROVALS_CONFIG = "approvals"
STAGING = "staging"
PRODUCTION = "production"
STAGES: tuple[str, ...] = (STAGING, PRODUCTION)
# "Anyone", accepted only in the staging stage's role lists and only when written out.
WILDCARD = "*"
LOCAL = "local"
# Where an identity comes from. "asserted": a typed name or the OS user; "github-actions": the
# GITHUB_ACTOR variable (a variable is not evidence); the others are checked by a provider.
ASSERTED = "asserted"
IDENTITY_SOURCES: tuple[str, ...] = (
    ASSERTED,
    "github-actions",
    "github-environment",
    "zenml-server",
    "github-oidc",
)
# Sources that only a name typed or a variable set by the acting person stands behind: no
# environment but local may accept them (a policy that tries does not load).
UNVERIFIED_SOURCES: frozenset[str] = frozenset({ASSERTED, "github-actions"})
APPROVAL_SOURCES: tuple[str, ...] = IDENTITY_SOURCES
# Unicode categories refused in names, and in typed text (`mlops_platform.text`).
_REFUSED_CATEGORIES = HIDDEN_CATEGORIES
# Tolerated clock difference between the machine that recorded an approval and the evaluator.
CLOCK_SKEW = timedelta(minutes=5)

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class ApprovalPolicyError(ConfigError):
    """The approval policy of an environment is incomplete or weakens a mandatory rule."""


def normalize_name(name: str) -> str:
    """The form in which people and stages are compared: NFKC, case-folded, trimmed.

    NFKC maps compatibility forms (full-width ``ｃａｒｏｌ``, ligatures) onto their plain letters;
    case folding is applied between two NFKC passes, as Unicode's NFKC_Casefold does.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.strip()


def name_problem(name: str, what: str = "name") -> str | None:
    """Why ``name`` cannot stand for a person (blank, control or invisible characters), or None."""
    if not name or not name.strip():
        return f"{what} is blank; name the person responsible (their login)"
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES}
    )
    if hidden:
        return (
            f"{what} {name!r} contains control or invisible characters ({', '.join(hidden)}); "
            "type the name in plain letters"
        )
    return None


@functools.lru_cache(maxsize=4096)
def skeleton(name: str) -> str:
    """The lookalike form of a name: each character replaced by its visual prototype.

    Prototypes come from Unicode's confusables data (the ``confusable_homoglyphs`` package): a
    character and its single-character homoglyphs share one prototype, the lowest code point of
    the group, so Cyrillic ``с`` and Latin ``c`` have the same skeleton.
    """
    return "".join(
        min(
            (char, *(h["c"] for h in confusables_data.get(char, ()) if len(h["c"]) == 1)),
            key=ord,
        )
        for char in normalize_name(name)
    )


def _is_confusable(first: str, second: str) -> bool:
    return skeleton(first) == skeleton(second)


def same_person(first: str, second: str) -> bool:
    """Whether two names stand for one person: equal once normalized, or lookalikes.

    Lookalikes (Unicode confusables such as Cyrillic ``с`` for Latin ``c``) count as the same
    person, so that no separation-of-duties check can be passed by a disguised name.
    """
    a, b = normalize_name(first), normalize_name(second)
    return bool(a) and bool(b) and (a == b or _is_confusable(a, b))


def lookalike_of(name: str, known: Iterable[str]) -> str | None:
    """A known identity that ``name`` imitates: a lookalike, yet a different name; else None."""
    key = normalize_name(name)
    for other in known:
        other_key = normalize_name(other)
        if other_key and key and other_key != key and _is_confusable(key, other_key):
            return other
    return None


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
    # Identity sources accepted for requester, approvers, countersigner and the training author.
    accepted_identity_sources: Annotated[_Names, Field(min_length=1)]
    # The protected branch whose history must hold the commit a version was trained at; None: the
    # commit is not checked (only the local environment may leave production unchecked).
    code_from_branch: (
        Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")] | None
    )

    def accepts(self, source: str) -> bool:
        return source in self.accepted_identity_sources


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
        """The roles ``person`` holds, in config order (a lookalike of a member holds none)."""
        key = normalize_name(person)
        return tuple(
            role
            for role, members in self.roles.items()
            if key in {normalize_name(m) for m in members}
        )

    def members(self) -> tuple[str, ...]:
        """Everyone named in a role, as written."""
        return tuple(member for members in self.roles.values() for member in members)

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
        problems += [
            f"role {role!r}: {problem}"
            for problem in (name_problem(m, "a member") for m in members)
            if problem
        ]
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
        unknown = [s for s in stage.accepted_identity_sources if s not in IDENTITY_SOURCES]
        if unknown:
            problems.append(
                f"stages.{name}.accepted_identity_sources names unknown sources {unknown}; "
                f"known sources are {list(IDENTITY_SOURCES)}"
            )
    members = policy.members()
    for index, member in enumerate(members):
        twin = lookalike_of(member, members[:index])
        if twin is not None:
            problems.append(
                f"role members {twin!r} and {member!r} look alike (Unicode confusables); "
                "two people whose names can be mistaken for each other cannot be told apart"
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
    fix = f"Fix configs/{env}/{APPROVALS_CONFIG}.yaml or configs/base/{APPROVALS_CONFIG}.yaml."
    try:
        policy = ApprovalPolicy.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"  - {line}" for line in validation_issues(error))
        raise ApprovalPolicyError(
            f"The approval policy for environment {env!r} is invalid:\n{problems}\n{fix}"
        ) from error
    if env != LOCAL:
        weak = [
            f"  - stages.{name}.accepted_identity_sources accepts {source!r}, which only the "
            f"acting person stands behind; only the {LOCAL} environment may accept it"
            for name in STAGES
            for source in getattr(policy.stages, name).accepted_identity_sources
            if source in UNVERIFIED_SOURCES
        ]
        if policy.stages.production.code_from_branch is None:
            weak.append(
                "  - stages.production.code_from_branch is null: production must name the "
                f"protected branch its models' code comes from; only the {LOCAL} environment "
                "may leave it unchecked"
            )
        if weak:
            raise ApprovalPolicyError(
                f"The approval policy for environment {env!r} is invalid:\n"
                + "\n".join(weak)
                + f"\n{fix}"
            )
    return policy


@dataclass(frozen=True)
class Approval:
    """One person's approval of one model version for one stage, however it was recorded."""

    approver: str
    model_name: str
    model_version: str
    target_stage: str
    reason: str
    recorded_at: datetime
    source: str  # one of IDENTITY_SOURCES: how the approver's identity was established
    record_seq: int | None = None  # the audit record holding it; a promotion consumes it by seq

    def __post_init__(self) -> None:
        if not self.approver.strip():
            raise ValueError("An approval needs the approver's name; got a blank name.")
        if self.source not in APPROVAL_SOURCES:
            raise ValueError(
                f"Approval source {self.source!r} is unknown; use one of {list(APPROVAL_SOURCES)}."
            )
        _require_aware("recorded_at", self.recorded_at)


@dataclass(frozen=True)
class Countersignature:
    """A second person's countersignature of an emergency override, recorded by that person."""

    countersigner: str
    model_name: str
    model_version: str
    target_stage: str
    reason: str
    recorded_at: datetime
    source: str
    record_seq: int | None = None
    # The standing degraded outcome verdicts (their record hashes) shown to the countersigner
    # when they countersigned: an override goes past those only.
    degraded_seen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.countersigner.strip():
            raise ValueError("A countersignature needs the countersigner's name; got a blank name.")
        if self.source not in IDENTITY_SOURCES:
            raise ValueError(
                f"Identity source {self.source!r} is unknown; use one of {list(IDENTITY_SOURCES)}."
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
    requester_source: str = ASSERTED
    author_source: str = ASSERTED

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
    countersignature: Countersignature | None = None


def identity_problems(
    policy: ApprovalPolicy,
    target_stage: str,
    what: str,
    name: str,
    source: str,
    known: Iterable[str] = (),
) -> list[str]:
    """Why ``name`` (acting as ``what``) cannot be trusted for ``target_stage``; empty if it can.

    Three rules: a name must be printable and not blank; its identity source must be one the
    stage accepts (``accepted_identity_sources``); and it must not be a lookalike of a person the
    policy names or of another party to the decision (``known``).
    """
    problem = name_problem(name, what)
    if problem is not None:
        return [problem]
    stage = policy.stage(target_stage)
    if stage is None:
        return list(_unknown_stage(target_stage).reasons)
    problems = []
    if not stage.accepts(source):
        problems.append(
            f"{what} {name.strip()} is identified by source {source!r}, which "
            f"{normalize_name(target_stage)} does not accept (accepted_identity_sources: "
            f"{list(stage.accepted_identity_sources)}); act with a verified identity"
        )
    twin = lookalike_of(name, (*policy.members(), *known))
    if twin is not None:
        problems.append(
            f"{what} {name.strip()!r} looks like {twin!r} but is a different name (Unicode "
            "confusable); lookalike names are refused"
        )
    return problems


def _requester_problems(policy: ApprovalPolicy, request: PromotionRequest) -> list[str]:
    return identity_problems(
        policy,
        request.target_stage,
        "requester",
        request.requester,
        request.requester_source,
        (request.training_author,),
    )


def _author_problems(policy: ApprovalPolicy, request: PromotionRequest) -> list[str]:
    """The training author's identity must be as trustworthy as the people it is compared with."""
    return [
        f"{problem}; separation of duties cannot rest on it"
        for problem in identity_problems(
            policy,
            request.target_stage,
            "training author",
            request.training_author,
            request.author_source,
        )
    ]


def may_request(policy: ApprovalPolicy, request: PromotionRequest) -> ApprovalDecision:
    """Whether the requester holds a role allowed to request promotion to the target stage."""
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    who, target = request.requester.strip(), normalize_name(request.target_stage)
    identity = _requester_problems(policy, request)
    if identity:
        return ApprovalDecision(False, tuple(identity))
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
    policy: ApprovalPolicy, approver: str, request: PromotionRequest, source: str = ASSERTED
) -> ApprovalDecision:
    """Whether ``approver`` may approve this request: identity, role and separation of duties."""
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
    problems = [
        *identity_problems(policy, target, "approver", who, source, _parties(request)),
        *_author_problems(policy, request),
    ]
    if not problems:
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
    """The full check before a promotion: requester's role plus enough valid, distinct approvals.

    ``approvals`` must hold only approvals still available: the caller leaves out those a
    promotion already consumed (see ``governance.promotion.approvals_from_records``).
    """
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    requested = may_request(policy, request)
    author = _author_problems(policy, request)
    valid, rejected = _classify(policy, stage, request, approvals)
    target = normalize_name(request.target_stage)
    if stage.required_approvals == 0:
        count_ok, count_reason = True, f"{target} needs no approval"
    else:
        count_ok = len(valid) >= stage.required_approvals
        count_reason = _count_text(target, stage, valid, rejected)
    return ApprovalDecision(
        requested.allowed and count_ok and not author,
        (*requested.reasons, *author, count_reason),
        tuple(valid),
        tuple(rejected),
    )


def countersign_problems(
    policy: ApprovalPolicy,
    request: PromotionRequest,
    countersigner: str,
    source: str,
    reason: str,
    requester_known: bool = True,
) -> list[str]:
    """Why ``countersigner`` may not countersign an override of this request (empty: they may).

    The countersigner holds an override role, is neither the requester nor the training run's
    author (lookalikes count as the same person), acts with an identity source the stage
    accepts, and writes a reason long enough to audit. ``requester_known`` is False when the
    countersignature is recorded before anyone requests the promotion; the promotion checks it
    again against the real requester.
    """
    who = countersigner.strip()
    parties = _parties(request) if requester_known else (request.training_author,)
    problems = identity_problems(
        policy, request.target_stage, "countersigner", who, source, parties
    )
    if problems:
        return problems
    problem = text_problem(reason)
    if problem is not None:
        problems.append(f"the countersignature's {problem}")
    elif visible_length(reason) < policy.override.min_reason_chars:
        problems.append(
            f"an override needs a written reason of at least {policy.override.min_reason_chars} "
            f"characters; got {visible_length(reason)} visible"
        )
    if not _matching_roles(policy, who, policy.override.roles):
        problems.append(
            f"{who} may not countersign an override: "
            f"{_role_gap(policy, who, policy.override.roles, 'countersigners')}"
        )
    if requester_known and same_person(who, request.requester):
        problems.append(
            f"{who} may not countersign an override of their own request (separation of duties)"
        )
    if same_person(who, request.training_author):
        problems.append(
            f"{who} may not countersign an override: {who} authored the training run "
            f"of {_subject(request)} (separation of duties)"
        )
    return problems


def evaluate_override(
    policy: ApprovalPolicy, request: PromotionRequest, countersignatures: Sequence[Countersignature]
) -> ApprovalDecision:
    """Whether an emergency override may replace the approvals of this request.

    The requester must still be allowed to request. A second person must have recorded a
    countersignature for this version and stage themselves (``mlops countersign``), within the
    approval window and not consumed by an earlier promotion; a name typed by the requester is
    never a countersignature.
    """
    stage = policy.stage(request.target_stage)
    if stage is None:
        return _unknown_stage(request.target_stage)
    requested = may_request(policy, request)
    author = _author_problems(policy, request)
    target = normalize_name(request.target_stage)
    ignored: list[str] = []
    chosen: Countersignature | None = None
    for signature in countersignatures:
        problems = _matching_problems(stage, request, signature)
        problems += countersign_problems(
            policy, request, signature.countersigner, signature.source, signature.reason
        )
        if problems:
            ignored.append(
                f"countersignature by {signature.countersigner.strip()}: " + "; ".join(problems)
            )
        elif chosen is None:
            chosen = signature
    if chosen is None:
        found = (
            f"{target} override of {_subject(request)} needs a countersignature recorded by a "
            "second person holding one of the roles "
            f"{_roles_text(policy.override.roles)} (`mlops countersign --version "
            f"{request.model_version} --to {target} --reason ...`, run by that person); "
            f"found {len(countersignatures) - len(ignored)} valid"
        )
        reasons = (*requested.reasons, *author, found, *ignored)
        return ApprovalDecision(False, reasons)
    held = _matching_roles(policy, chosen.countersigner, policy.override.roles)
    return ApprovalDecision(
        requested.allowed and not author,
        (
            *requested.reasons,
            *author,
            f"emergency override of the {target} approval rule for {_subject(request)}, "
            f"countersigned by {chosen.countersigner.strip()} ({_basis_text(held)}, source "
            f"{chosen.source}); reason: {chosen.reason.strip()}",
        ),
        countersignature=chosen,
    )


def _parties(request: PromotionRequest) -> tuple[str, ...]:
    return (request.requester, request.training_author)


def _classify(
    policy: ApprovalPolicy,
    stage: StagePolicy,
    request: PromotionRequest,
    approvals: Sequence[Approval],
) -> tuple[list[Approval], list[tuple[Approval, str]]]:
    """Split approvals into those that count (one per person) and the rest, with why."""
    valid: list[Approval] = []
    rejected: list[tuple[Approval, str]] = []
    counted: list[str] = []
    for approval in approvals:
        who = approval.approver.strip()
        problems = _matching_problems(stage, request, approval)
        identity = identity_problems(
            policy, request.target_stage, "approver", who, approval.source, _parties(request)
        )
        conflicts = identity or _approver_problems(policy, stage, who, request)
        if conflicts:
            problems.append("does not count because " + " and ".join(conflicts))
        if not problems and any(same_person(who, other) for other in counted):
            problems.append("repeats an approval already counted (each person counts once)")
        if problems:
            rejected.append((approval, f"approval by {who} " + ", and ".join(problems)))
        else:
            valid.append(approval)
            counted.append(who)
    return valid, rejected


def _matching_problems(
    stage: StagePolicy, request: PromotionRequest, record: Approval | Countersignature
) -> list[str]:
    """Ways a record does not match this request or is out of its validity window."""
    problems = []
    if record.model_name.strip() != request.model_name.strip():
        problems.append(f"is for model {record.model_name}, not {request.model_name}")
    if normalize_name(record.target_stage) != normalize_name(request.target_stage):
        problems.append(f"is for stage {record.target_stage}, not {request.target_stage}")
    if record.model_version.strip() != request.model_version.strip():
        problems.append(f"is for version {record.model_version}, not {request.model_version}")
    age = request.now - record.recorded_at
    if age < -CLOCK_SKEW:
        problems.append(
            f"is dated in the future ({_when(record.recorded_at)}, now {_when(request.now)})"
        )
    elif age > timedelta(days=stage.approval_valid_days):
        problems.append(
            f"expired: recorded {_when(record.recorded_at)}, more than "
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
    if stage.approver_must_differ_from_requester and same_person(who, request.requester):
        problems.append(f"{who} requested this promotion (separation of duties)")
    if stage.approver_must_differ_from_author and same_person(who, request.training_author):
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

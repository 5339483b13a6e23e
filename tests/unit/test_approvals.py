"""Approval policy: who may request and approve promotions, and which approvals count.

People, roles and counts come from the loaded configs, so the tests follow a fork's edits.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_platform.config import load_layered
from mlops_platform.governance.approvals.policy import (
    APPROVALS_CONFIG,
    ASSERTED,
    LOCAL,
    PRODUCTION,
    STAGES,
    STAGING,
    UNVERIFIED_SOURCES,
    WILDCARD,
    Approval,
    ApprovalPolicy,
    ApprovalPolicyError,
    Countersignature,
    PromotionRequest,
    evaluate_override,
    evaluate_promotion,
    load_approval_policy,
    may_approve,
    may_request,
    name_problem,
    normalize_name,
    same_person,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "readmission_classifier"
VERSION = "4"
# An identity source production accepts (a verified one), read from the policy like the people.
VERIFIED = load_approval_policy(PRODUCTION, CONFIGS).stages.production.accepted_identity_sources[0]


def people(policy: ApprovalPolicy, roles: tuple[str, ...]) -> list[str]:
    return [person for role in roles for person in policy.roles[role]]


@pytest.fixture(scope="module")
def policy() -> ApprovalPolicy:
    return load_approval_policy(PRODUCTION, CONFIGS)


@pytest.fixture(scope="module")
def cast(policy: ApprovalPolicy) -> dict[str, str]:
    """A requester, an approver, a training author and an outsider, all distinct."""
    stage = policy.stages.production
    approvers = people(policy, stage.approvers)
    requester = next(p for p in people(policy, stage.requesters) if p not in approvers)
    everyone = [p for members in policy.roles.values() for p in members]
    author = next(p for p in everyone if p not in approvers and p != requester)
    privileged = {*stage.approvers, *stage.requesters, *policy.override.roles}
    outsider = next(p for p in everyone if p != author and not set(policy.roles_of(p)) & privileged)
    overrider = next(
        p for p in people(policy, policy.override.roles) if p not in (requester, author)
    )
    return {
        "requester": requester,
        "approver": approvers[0],
        "author": author,
        "outsider": outsider,
        "overrider": overrider,
    }


def make_request(cast: dict[str, str], **changes: Any) -> PromotionRequest:
    fields: dict[str, Any] = {
        "model_name": MODEL,
        "model_version": VERSION,
        "target_stage": PRODUCTION,
        "requester": cast["requester"],
        "training_author": cast["author"],
        "now": NOW,
        "requester_source": VERIFIED,
        "author_source": VERIFIED,
    }
    return PromotionRequest(**{**fields, **changes})


def make_approval(approver: str, **changes: Any) -> Approval:
    fields: dict[str, Any] = {
        "approver": approver,
        "model_name": MODEL,
        "model_version": VERSION,
        "target_stage": PRODUCTION,
        "reason": "validation report reviewed",
        "recorded_at": NOW - timedelta(hours=1),
        "source": VERIFIED,
    }
    return Approval(**{**fields, **changes})


def make_countersignature(who: str, **changes: Any) -> Countersignature:
    fields: dict[str, Any] = {
        "countersigner": who,
        "model_name": MODEL,
        "model_version": VERSION,
        "target_stage": PRODUCTION,
        "reason": "x" * 100,
        "recorded_at": NOW - timedelta(hours=1),
        "source": VERIFIED,
    }
    return Countersignature(**{**fields, **changes})


def variant(mutate: Any) -> ApprovalPolicy:
    """The production policy after ``mutate`` edits its raw, merged config."""
    raw = load_layered(APPROVALS_CONFIG, PRODUCTION, CONFIGS)
    mutate(raw)
    return ApprovalPolicy.model_validate(raw)


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_every_environment_loads_with_separation_of_duties_in_production(env: str) -> None:
    loaded = load_approval_policy(env, CONFIGS)
    production = loaded.stages.production
    assert production.required_approvals >= 1
    assert production.approver_must_differ_from_requester
    assert production.approver_must_differ_from_author
    assert WILDCARD not in (*production.requesters, *production.approvers)


def test_valid_approval_allows_promotion(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    approvals = [make_approval(cast["approver"])]
    decision = evaluate_promotion(policy, make_request(cast), approvals)
    assert decision.allowed, decision.reasons
    assert decision.valid_approvals == tuple(approvals)
    assert decision.rejected_approvals == ()
    assert any(f"found 1 valid by {cast['approver']}" in reason for reason in decision.reasons)


def test_missing_approval_is_denied(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    decision = evaluate_promotion(policy, make_request(cast), [])
    assert not decision.allowed
    stage = policy.stages.production
    roles = ", ".join(stage.approvers)
    assert f"production needs {stage.required_approvals} approval" in decision.reasons[-1]
    assert f"from [{roles}]; found 0 valid" in decision.reasons[-1]


def test_requester_may_not_approve_own_request(cast: dict[str, str]) -> None:
    """The approver also holds a requesting role here, so only separation of duties stops them."""
    approver = cast["approver"]

    def make_approver_a_requester(raw: dict[str, Any]) -> None:
        role = raw["stages"][PRODUCTION]["requesters"][0]
        raw["roles"][role] = [*raw["roles"][role], approver]

    dual = variant(make_approver_a_requester)
    request = make_request(cast, requester=approver)
    assert may_request(dual, request).allowed

    check = may_approve(dual, approver, request, VERIFIED)
    assert not check.allowed
    assert check.reasons == (
        f"{approver} may not approve: {approver} requested this promotion (separation of duties)",
    )
    decision = evaluate_promotion(dual, request, [make_approval(approver)])
    assert not decision.allowed
    assert decision.valid_approvals == ()
    assert "requested this promotion (separation of duties)" in decision.rejected_approvals[0][1]


def test_training_author_may_not_approve(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    approver = cast["approver"]
    request = make_request(cast, training_author=approver)
    check = may_approve(policy, approver, request, VERIFIED)
    assert not check.allowed
    assert f"{approver} authored the training run" in check.reasons[0]
    assert "separation of duties" in check.reasons[0]
    assert not evaluate_promotion(policy, request, [make_approval(approver)]).allowed


def test_approver_with_role_and_no_conflict_may_approve(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    check = may_approve(policy, cast["approver"], make_request(cast), VERIFIED)
    assert check.allowed, check.reasons


def test_approval_for_another_version_is_ignored(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    approver = cast["approver"]
    stale = make_approval(approver, model_version="3")
    decision = evaluate_promotion(policy, make_request(cast), [stale])
    assert not decision.allowed
    expected = f"approval by {approver} is for version 3, not {VERSION}"
    assert decision.rejected_approvals == ((stale, expected),)
    assert f"found 0 valid (1 ignored: {expected})" in decision.reasons[-1]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model_name", "another_model", "is for model another_model"),
        ("target_stage", STAGING, f"is for stage {STAGING}, not {PRODUCTION}"),
        ("recorded_at", NOW + timedelta(days=1), "is dated in the future"),
    ],
)
def test_approval_for_something_else_is_ignored(
    policy: ApprovalPolicy, cast: dict[str, str], field: str, value: Any, message: str
) -> None:
    approval = make_approval(cast["approver"], **{field: value})
    decision = evaluate_promotion(policy, make_request(cast), [approval])
    assert not decision.allowed
    assert message in decision.rejected_approvals[0][1]


def test_expired_approval_is_ignored(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    window = timedelta(days=policy.stages.production.approval_valid_days)
    on_the_edge = make_approval(cast["approver"], recorded_at=NOW - window)
    expired = make_approval(cast["approver"], recorded_at=NOW - window - timedelta(minutes=1))

    assert evaluate_promotion(policy, make_request(cast), [on_the_edge]).allowed
    decision = evaluate_promotion(policy, make_request(cast), [expired])
    assert not decision.allowed
    assert "expired" in decision.rejected_approvals[0][1]


def test_same_person_twice_counts_once(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    approver = cast["approver"]
    newcomers = [f"reviewer{i}" for i in range(policy.stages.production.required_approvals)]

    def require_one_more(raw: dict[str, Any]) -> None:
        stage = raw["stages"][PRODUCTION]
        role = stage["approvers"][0]
        raw["roles"][role] = [*raw["roles"][role], *newcomers]
        stage["required_approvals"] += 1

    stricter = variant(require_one_more)
    required = stricter.stages.production.required_approvals
    request = make_request(cast)
    repeated = [make_approval(approver), *(make_approval(p) for p in newcomers[:-1])]
    repeated.append(make_approval(approver.upper(), reason="approving again"))
    assert len(repeated) == required

    decision = evaluate_promotion(stricter, request, repeated)
    assert not decision.allowed
    assert decision.valid_approvals == tuple(repeated[:-1])
    assert "each person counts once" in decision.rejected_approvals[0][1]
    assert f"needs {required} approvals" in decision.reasons[-1]

    distinct = [make_approval(approver), *(make_approval(p) for p in newcomers)]
    assert evaluate_promotion(stricter, request, distinct).allowed


def test_role_not_allowed(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    outsider = cast["outsider"]
    request = make_request(cast, requester=outsider)
    asked = may_request(policy, request)
    assert not asked.allowed
    assert asked.reasons[0].startswith(f"{outsider} may not request promotion to production")
    assert ", ".join(policy.stages.production.requesters) in asked.reasons[0]
    # Even a valid approval cannot make up for a requester without a requesting role.
    assert not evaluate_promotion(policy, request, [make_approval(cast["approver"])]).allowed

    check = may_approve(policy, outsider, make_request(cast), VERIFIED)
    assert not check.allowed
    assert "but approvers need one of" in check.reasons[0]


def test_unknown_stage_fails_closed(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    request = make_request(cast, target_stage="prod")
    approval = make_approval(cast["approver"], target_stage="prod")
    decisions = [
        may_request(policy, request),
        may_approve(policy, cast["approver"], request, VERIFIED),
        evaluate_promotion(policy, request, [approval]),
        evaluate_override(policy, request, [make_countersignature(cast["overrider"])]),
    ]
    for decision in decisions:
        assert not decision.allowed
        assert "'prod'" in decision.reasons[0]
        assert all(stage in decision.reasons[0] for stage in STAGES)


def test_staging_needs_no_approval_but_a_listed_requester(cast: dict[str, str]) -> None:
    staging_policy = load_approval_policy(STAGING, CONFIGS)
    stage = staging_policy.stages.staging
    assert stage.required_approvals == 0
    assert WILDCARD not in stage.requesters
    requester = people(staging_policy, stage.requesters)[0]
    request = make_request(cast, target_stage=STAGING, requester=requester)
    assert evaluate_promotion(staging_policy, request, []).allowed
    assert not may_approve(staging_policy, cast["approver"], request, VERIFIED).allowed

    stranger = make_request(cast, target_stage=STAGING, requester="mallory")
    assert not evaluate_promotion(staging_policy, stranger, []).allowed


def test_local_wildcard_opens_staging_only(cast: dict[str, str]) -> None:
    local = load_approval_policy("local", CONFIGS)
    assert WILDCARD in local.stages.staging.requesters
    assert may_request(local, make_request(cast, target_stage=STAGING, requester="mallory")).allowed
    assert not may_request(local, make_request(cast, requester="mallory")).allowed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"stages": {PRODUCTION: {"approver_must_differ_from_author": False}}},
            "separation of duties cannot be switched off for production",
        ),
        (
            {"stages": {PRODUCTION: {"approver_must_differ_from_requester": False}}},
            "separation of duties cannot be switched off for production",
        ),
        ({"stages": {PRODUCTION: {"required_approvals": 0}}}, "at least 1"),
        ({"stages": {PRODUCTION: {"requesters": [WILDCARD]}}}, "only allowed in staging"),
        ({"stages": {PRODUCTION: {"approvers": ["nobody_role"]}}}, "unknown roles"),
        ({"stages": {PRODUCTION: {"enabled": False}}}, "Extra inputs are not permitted"),
        ({"stages": {"prod": {}}}, "Extra inputs are not permitted"),
        ({"roles": {"everyone": [WILDCARD]}}, "wildcard is only allowed"),
        ({"override": {"roles": [WILDCARD]}}, "only allowed in staging"),
    ],
)
def test_weakened_policy_is_rejected_at_load(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    (tmp_path / "base").mkdir()
    shutil.copy(CONFIGS / "base" / f"{APPROVALS_CONFIG}.yaml", tmp_path / "base")
    (tmp_path / PRODUCTION).mkdir()
    (tmp_path / PRODUCTION / f"{APPROVALS_CONFIG}.yaml").write_text(yaml.safe_dump(override))

    with pytest.raises(ApprovalPolicyError, match="production") as raised:
        load_approval_policy(PRODUCTION, tmp_path)
    assert message in str(raised.value)


def test_override_needs_reason_and_second_actor_with_role(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    request = make_request(cast)
    reason = "x" * policy.override.min_reason_chars
    overrider = cast["overrider"]

    granted = evaluate_override(policy, request, [make_countersignature(overrider, reason=reason)])
    assert granted.allowed, granted.reasons
    assert f"countersigned by {overrider}" in granted.reasons[-1]
    assert granted.countersignature is not None

    short = [make_countersignature(overrider, reason=reason[:-1])]
    short_decision = evaluate_override(policy, request, short)
    assert not short_decision.allowed
    assert f"at least {policy.override.min_reason_chars} characters" in short_decision.reasons[-1]

    no_role = evaluate_override(policy, request, [make_countersignature(cast["outsider"])])
    assert not no_role.allowed
    assert ", ".join(policy.override.roles) in no_role.reasons[-1]

    nobody = evaluate_override(policy, request, [])
    assert not nobody.allowed
    assert "mlops countersign" in nobody.reasons[-1]


def test_override_second_actor_must_differ_from_requester_and_author(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    overrider = cast["overrider"]
    signature = [make_countersignature(overrider)]
    own = make_request(cast, requester=overrider)
    own_decision = evaluate_override(policy, own, signature)
    assert not own_decision.allowed
    assert any("their own request" in r for r in own_decision.reasons)

    authored = make_request(cast, training_author=overrider)
    authored_decision = evaluate_override(policy, authored, signature)
    assert not authored_decision.allowed
    assert "authored the training run" in authored_decision.reasons[-1]


def test_countersignature_for_another_version_or_expired_does_not_count(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    request = make_request(cast)
    days = policy.stages.production.approval_valid_days
    stale = [
        make_countersignature(cast["overrider"], model_version="9"),
        make_countersignature(cast["overrider"], recorded_at=NOW - timedelta(days=days + 1)),
    ]
    decision = evaluate_override(policy, request, stale)
    assert not decision.allowed
    text = " ".join(decision.reasons)
    assert "is for version 9" in text
    assert "expired" in text


def test_names_compare_case_insensitively_and_trimmed(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    shouting = make_request(
        cast, requester=f"  {cast['requester'].upper()} ", target_stage=" Production"
    )
    approval = make_approval(f" {cast['approver'].upper()}  ")
    assert evaluate_promotion(policy, shouting, [approval]).allowed

    self_approval = make_request(cast, training_author=cast["approver"].title())
    assert not may_approve(policy, f"  {cast['approver'].upper()}", self_approval, VERIFIED).allowed


def test_naive_datetimes_are_refused(cast: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        make_request(cast, now=datetime(2025, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="no time zone"):
        make_approval(cast["approver"], recorded_at=datetime(2025, 3, 1, 12, 0))


def test_blank_training_author_is_refused(cast: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="training_author"):
        make_request(cast, training_author="  ")


# --- Identity: names compared safely, and which identity sources a stage accepts.


def test_full_width_lookalike_of_an_approver_is_that_approver(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    approver = cast["approver"]
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in approver)
    assert full_width != approver
    assert normalize_name(full_width) == normalize_name(approver)
    # A training run recorded under the full-width name: the approver cannot approve it.
    own = make_request(cast, training_author=full_width)
    decision = may_approve(policy, approver, own, VERIFIED)
    assert not decision.allowed
    assert any("authored the training run" in r for r in decision.reasons)
    counted = evaluate_promotion(policy, own, [make_approval(approver)])
    assert not counted.allowed
    assert "authored the training run" in counted.reasons[-1]


def test_cyrillic_lookalike_is_refused(policy: ApprovalPolicy, cast: dict[str, str]) -> None:
    approver = cast["approver"]
    latin_to_cyrillic = str.maketrans("aceopxy", "\u0430\u0441\u0435\u043e\u0440\u0445\u0443")
    disguised = approver.translate(latin_to_cyrillic)
    assert disguised != approver, "the approver's name needs a letter with a Cyrillic twin"
    assert normalize_name(disguised) != normalize_name(approver)
    assert same_person(disguised, approver)
    # As the training author: the real approver may not approve (it is their lookalike), and the
    # promotion names the lookalike rule.
    authored = make_request(cast, training_author=disguised)
    assert not may_approve(policy, approver, authored, VERIFIED).allowed
    decision = evaluate_promotion(policy, authored, [make_approval(approver)])
    assert not decision.allowed
    assert any("looks like" in r and "lookalike names are refused" in r for r in decision.reasons)
    # As an approver, requester or countersigner: refused by the same rule.
    posing = may_approve(policy, disguised, make_request(cast), VERIFIED)
    assert not posing.allowed
    assert "lookalike names are refused" in posing.reasons[0]
    assert not may_request(policy, make_request(cast, requester=disguised)).allowed


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is blank"),
        ("   ", "is blank"),
        ("car\u200bol", "U+200B"),
        ("carol\n", "U+000A"),
        ("\u202eloraс", "U+202E"),
    ],
)
def test_blank_and_invisible_names_are_refused(name: str, message: str) -> None:
    problem = name_problem(name, "approver")
    assert problem is not None and message in problem


def test_blank_requester_or_approver_is_refused(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    assert not may_approve(policy, "", make_request(cast), VERIFIED).allowed
    with pytest.raises(ValueError, match="requester"):
        make_request(cast, requester=" ")
    with pytest.raises(ValueError, match="approver's name"):
        make_approval(" \t")
    with pytest.raises(ValueError, match="countersigner's name"):
        make_countersignature(" ")


def test_asserted_identities_count_only_where_the_stage_accepts_them(
    policy: ApprovalPolicy, cast: dict[str, str]
) -> None:
    production = policy.stages.production
    assert ASSERTED not in production.accepted_identity_sources
    assert ASSERTED not in policy.stages.staging.accepted_identity_sources
    # One person typing both names: the approval and the request are only asserted.
    typed = make_request(cast, requester_source=ASSERTED)
    decision = evaluate_promotion(policy, typed, [make_approval(cast["approver"], source=ASSERTED)])
    assert not decision.allowed
    text = " ".join(decision.reasons)
    assert "source 'asserted'" in text and "accepted_identity_sources" in text
    refused = may_approve(policy, cast["approver"], make_request(cast), ASSERTED)
    assert not refused.allowed and "accepted_identity_sources" in refused.reasons[0]
    author = evaluate_promotion(
        policy, make_request(cast, author_source=ASSERTED), [make_approval(cast["approver"])]
    )
    assert not author.allowed
    assert any(
        "training author" in r and "separation of duties cannot rest" in r for r in author.reasons
    )
    signed = evaluate_override(
        policy, make_request(cast), [make_countersignature(cast["overrider"], source=ASSERTED)]
    )
    assert not signed.allowed and "accepted_identity_sources" in " ".join(signed.reasons)

    local = load_approval_policy(LOCAL, CONFIGS)
    assert ASSERTED in local.stages.production.accepted_identity_sources
    local_typed = make_request(cast, requester_source=ASSERTED, author_source=ASSERTED)
    assert evaluate_promotion(
        local, local_typed, [make_approval(cast["approver"], source=ASSERTED)]
    ).allowed


@pytest.mark.parametrize("env", [STAGING, PRODUCTION])
@pytest.mark.parametrize("source", sorted(UNVERIFIED_SOURCES))
def test_only_local_may_accept_unverified_sources(tmp_path: Path, env: str, source: str) -> None:
    (tmp_path / "base").mkdir()
    shutil.copy(CONFIGS / "base" / f"{APPROVALS_CONFIG}.yaml", tmp_path / "base")
    (tmp_path / env).mkdir()
    weak = {"stages": {STAGING: {"accepted_identity_sources": [source, "zenml-server"]}}}
    (tmp_path / env / f"{APPROVALS_CONFIG}.yaml").write_text(yaml.safe_dump(weak))
    with pytest.raises(ApprovalPolicyError, match="only the local environment may accept"):
        load_approval_policy(env, tmp_path)
    (tmp_path / LOCAL).mkdir()
    (tmp_path / LOCAL / f"{APPROVALS_CONFIG}.yaml").write_text(yaml.safe_dump(weak))
    assert source in load_approval_policy(LOCAL, tmp_path).stages.staging.accepted_identity_sources


def test_lookalike_role_members_do_not_load(tmp_path: Path) -> None:
    def add_twin(raw: dict[str, Any]) -> None:
        first = raw["roles"]["model_risk_officer"][0]
        twin = first.translate(
            str.maketrans("aceopxy", "\u0430\u0441\u0435\u043e\u0440\u0445\u0443")
        )
        raw["roles"]["data_scientist"].append(twin)

    with pytest.raises(ValueError, match="look alike"):
        variant(add_twin)


@pytest.mark.parametrize("reason", ["\x1b[0m" * 6, "\u200b" * 25, "INC-9:" + "\u200b" * 30])
def test_override_reason_of_hidden_characters_is_not_long_enough(
    policy: ApprovalPolicy, cast: dict[str, str], reason: str
) -> None:
    """A countersignature's reason counts what a reader sees: escape sequences and zero-width
    spaces past `min_reason_chars` in length are no written reason (an older record holding one
    does not count either)."""
    request = make_request(cast)
    signature = make_countersignature(cast["overrider"], reason=reason)

    decision = evaluate_override(policy, request, [signature])

    assert not decision.allowed
    assert "control or invisible characters" in decision.reasons[-1]

"""ZenML, MLflow and audit-trail I/O behind promotion, approval, rollback and stage history.

The decisions are the pure functions of `mlops_platform.governance.promotion`; this module reads the facts
they need (model versions, approvals and stage history from the audit trail) and carries out
what they allow (the ZenML stage move and its MLflow alias mirror). ZenML is the source of truth
for stages; MLflow aliases follow it so that teams looking at MLflow see the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.models import ModelVersionResponse
from zenml.utils.pagination_utils import depaginate_stream

from mlops_platform.config import repository_config_dir
from mlops_platform.governance.approvals.policy import (
    ASSERTED,
    PRODUCTION,
    STAGES,
    ApprovalPolicy,
    Countersignature,
    load_approval_policy,
    normalize_name,
    same_person,
)
from mlops_platform.governance.code_origin import (
    branch_contains,
    commit_origin_problems,
    signed_branch_tip,
)
from mlops_platform.governance.promotion import (
    EVIDENCE_EVENTS,
    LATEST,
    MLFLOW_REGISTERED_VERSION_KEY,
    MODEL_VERSION_ID_KEY,
    OPERATING_THRESHOLD_KEY,
    STAGE_EVENTS,
    Candidate,
    Evidence,
    PromotionDecision,
    PromotionDenied,
    PromotionOrder,
    PromotionTargetNotFound,
    Tenure,
    TrainingAuthor,
    TrainingAuthorUnknown,
    alias_mismatches,
    approval_problems,
    available_evidence,
    countersignature_problems,
    decide_promotion,
    degraded_outcome_problem,
    judged_threshold,
    policy_environment,
    previous_tenure,
    resolve_version,
    reused_number_problem,
    rollback_problems,
    rollback_undo_problem,
    stage_environment,
    stage_history,
    stage_record_problem,
    stages_held,
    standing_degraded,
    training_author,
    training_record,
    verdict_reference,
)
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG
from mlops_platform.text import require_text
from mlops_platform.trust.artifacts import verify_registered_model
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.audit.chain import VersionIdentity
from mlops_platform.trust.events import (
    audit_trail,
    check_trail_anchors,
    one_decision,
    record_version_event,
    version_identity,
)
from mlops_platform.trust.identity import Actor, identity_details
from mlops_platform.trust.keys import uses_local_stores
from mlops_platform.workspace import PROJECT_ROOT

logger = logging.getLogger(__name__)


def _tags(version: ModelVersionResponse) -> frozenset[str]:
    return frozenset(tag.name for tag in version.tags)


def _validated_versions(client: Client, model_name: str) -> list[str]:
    """Numbers of the versions tagged validated and not rejected, newest first."""
    versions = depaginate_stream(
        client.list_model_versions, model=model_name, sort_by="desc:number"
    )
    return [v.name for v in versions if VALIDATED_TAG in _tags(v) and REJECTED_TAG not in _tags(v)]


class VersionNumberError(ValueError):
    """A version given on the command line is neither a whole number from 1 nor ``latest``."""


def version_number(text: str, requested: str | None = None) -> str:
    """``text`` as a version number ("01" is "1"); `VersionNumberError` (exit 3) for anything
    that is not a whole number from 1 written in ASCII digits. ``requested``: what the person
    typed, where ``latest`` was also accepted (`find_version`)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        accepted = "a number (1, 2, ...)" + (f" or '{LATEST}'" if requested is not None else "")
        raise VersionNumberError(
            f"a model version is {accepted}; got "
            f"{requested if requested is not None else text!r}. List versions with "
            "`mlops versions`."
        )
    return str(int(text))


def find_version(model_name: str, requested: str) -> ModelVersionResponse:
    """Model version ``requested``: a number, or ``latest`` (the newest validated one)."""
    client = Client()
    try:
        latest = normalize_name(requested) == LATEST
        number = resolve_version(
            requested, _validated_versions(client, model_name) if latest else []
        )
        return client.get_model_version(model_name, int(version_number(number, requested)))
    except KeyError as error:
        raise PromotionTargetNotFound(
            f"model {model_name} has no version {requested!r}; list versions with "
            f"`mlops versions` and pass a number or '{LATEST}'"
        ) from error


def metadata_author(version: ModelVersionResponse) -> str | None:
    """``registration.trained_by`` in ZenML metadata: shown to people and compared with the trail
    by `mlops check`, never used for a decision (any ZenML user can edit it)."""
    registration = version.run_metadata.get("registration")
    found = registration.get("trained_by") if isinstance(registration, dict) else None
    return str(found) if found else None


def trail_environments(stages: Iterable[str] = STAGES) -> list[str]:
    """One environment per distinct audit trail of ``stages`` (a local checkout may share one)."""
    by_url: dict[str, str] = {}
    for stage in stages:
        by_url.setdefault(audit_url(stage), stage_environment(stage))
    return list(by_url.values())


def training_records(
    model_name: str, model_version: str, version_id: str | None = None
) -> list[AuditRecord]:
    """The verified `training_completed` records of one version, from every stage's trail; with
    ``version_id``, a record naming another ZenML version id (another store) is left out."""
    return [
        record
        for env in trail_environments(STAGES)
        for record in _records(env, model_name, [AuditEventType.TRAINING_COMPLETED])
        if str(record.model_version) == str(model_version)
        and str(record.details.get(MODEL_VERSION_ID_KEY) or version_id) == str(version_id)
    ]


def recorded_training(version: ModelVersionResponse) -> AuditRecord:
    """The verified `training_completed` record of ``version`` (`promotion.training_record`)."""
    name, number, version_id = version.model.name, version.name, str(version.id)
    return training_record(training_records(name, number, version_id), name, number, version_id)


def version_threshold(
    version: ModelVersionResponse,
    configured: float,
    env: str,
    *,
    say: bool = True,
    recorded: Mapping[str, Any] | None = None,
) -> float:
    """The operating threshold ``version`` is scored and judged at in ``env`` (`judged_threshold`:
    its verified training record's), saying so (``say``) when the training config names another.
    ``recorded``: the record's details when the caller has read them already."""
    from mlops_platform.governance.policy.models import load_policy

    bounds = load_policy(env).operating_threshold
    details = recorded_training(version).details if recorded is None else recorded
    threshold = judged_threshold(details, configured, version.name, (bounds.min, bounds.max))
    if say and OPERATING_THRESHOLD_KEY not in details:
        logger.warning(
            "Version %s was trained before its operating threshold was recorded; it is scored at "
            "the training config's %s (inside the policy's range %s-%s), which its gate may not "
            "have judged. Retrain and promote it to score at a recorded threshold.",
            version.name,
            threshold,
            bounds.min,
            bounds.max,
        )
    if say and threshold != configured:
        logger.warning(
            "Version %s was judged and approved at operating threshold %s; it is scored at it, "
            "not at %s (evaluation.operating_threshold in the training config). A new threshold "
            "takes effect with a version trained at it and promoted.",
            version.name,
            threshold,
            configured,
        )
    return threshold


_Contract = TypeVar("_Contract", bound=BaseModel)


def at_version_threshold(
    contract: _Contract,
    version: ModelVersionResponse,
    env: str,
    *,
    say: bool = True,
    recorded: Mapping[str, Any] | None = None,
) -> _Contract:
    """``contract`` (a model or batch contract) with the operating threshold ``version`` is
    judged and scored at (`version_threshold`) in place of the one the pipeline passed."""
    configured = float(contract.operating_threshold)  # type: ignore[attr-defined]
    threshold = version_threshold(version, configured, env, say=say, recorded=recorded)
    return contract.model_copy(update={"operating_threshold": threshold})


def training_author_of(version: ModelVersionResponse) -> TrainingAuthor:
    """Who trained ``version``, from the verified trails of the stages it can be promoted to
    (raises `TrainingAuthorUnknown`, exit 8, when they hold no record of it)."""
    name, number, version_id = version.model.name, version.name, str(version.id)
    return training_author(training_records(name, number, version_id), name, number, version_id)


def actor_details(actor: Actor) -> dict[str, Any]:
    return identity_details(actor.name, actor.source, {**actor.evidence, "run_url": actor.run_url})


def local_checkout(stage: str) -> bool:
    """True on a laptop checkout (`trust.keys.uses_local_stores`): the local policy applies."""
    return uses_local_stores(load_platform_settings(stage_environment(stage)))


def approval_policy(stage: str) -> ApprovalPolicy:
    """The approval policy that governs ``stage`` here (see `promotion.policy_environment`)."""
    local = local_checkout(stage)
    # Off a laptop checkout the stage's rules come from the repository's own configs:
    # MLOPS_CONFIG_DIR cannot swap the roles and approvals a promotion is judged by.
    directory = None if local else repository_config_dir()
    return load_approval_policy(policy_environment(stage, local), directory)


def registered_mlflow_version(version: ModelVersionResponse) -> str | None:
    """The MLflow registry version that `register_model` created for this ZenML version, as its
    verified `training_completed` record names it. Versions registered before the record named
    it fall back to ZenML's ``registration`` metadata (editable by any ZenML user)."""
    try:
        details = recorded_training(version).details
    except TrainingAuthorUnknown:
        details = {}
    if MLFLOW_REGISTERED_VERSION_KEY in details:
        recorded = details[MLFLOW_REGISTERED_VERSION_KEY]
        return str(recorded) if recorded else None
    registration = version.run_metadata.get("registration") or {}
    mlflow_info = registration.get("mlflow") if isinstance(registration, dict) else None
    found = mlflow_info.get("registered_version") if isinstance(mlflow_info, dict) else None
    return str(found) if found else None


def candidate(version: ModelVersionResponse, history: Mapping[str, list[Tenure]]) -> Candidate:
    stage = version.stage if version.stage in STAGES else None
    tags = _tags(version)
    try:
        author = training_author_of(version)
    except TrainingAuthorUnknown:
        if VALIDATED_TAG in tags and REJECTED_TAG not in tags:
            raise  # only register_model tags `validated`, and it records the author: exit 8
        # Never published (rejected, or not validated): refused for that, no author needed.
        author = TrainingAuthor("", ASSERTED, 0)
    identity = version_identity(version)
    return Candidate(
        model_name=version.model.name,
        model_version=version.name,
        tags=tags,
        trained_by=author.name,
        current_stage=stage,
        stages_held=stages_held(history, version.name, identity),
        trained_by_source=author.source,
        identity=identity,
    )


def audit_url(stage: str) -> str:
    return load_platform_settings(stage_environment(stage)).audit.url


def decision_time(stage: str) -> datetime:
    """Now, for decisions about ``stage`` (approval ages, windows): the clock its trail stamps
    records with, refused (`ClockBehindTrail`, exit 5) when it reads before the newest record."""
    trail = audit_trail(stage_environment(stage), write=False)
    try:
        return trail.now()
    finally:
        trail.close()


def _records(env: str, model_name: str, event_types: Iterable[str]) -> list[AuditRecord]:
    """Records a decision rests on: only after the trail verified (raises `AuditChainBroken`)."""
    trail = audit_trail(env, write=False)
    try:
        records = trail.records(model_name=model_name, event_types=event_types, verified=True)
        # The MLflow anchor moves after every event about the model: a trail cut below it
        # (a consumed approval's promotion deleted, say) stops the decision here too. Read
        # after the records, so a cut before them shows as a new head.
        check_trail_anchors(trail, env, model_name)
        return records
    finally:
        trail.close()


def read_history(model_name: str, stages: Iterable[str] = STAGES) -> dict[str, list[Tenure]]:
    """Each stage's holders over time, from the verified audit trail of the stage's environment."""
    by_url: dict[str, tuple[str, list[str]]] = {}
    for stage in stages:
        by_url.setdefault(audit_url(stage), (stage_environment(stage), []))[1].append(stage)
    history: dict[str, list[Tenure]] = {}
    for env, url_stages in by_url.values():
        replayed = stage_history(_records(env, model_name, STAGE_EVENTS), model_name)
        history.update({stage: replayed[stage] for stage in url_stages})
    return history


def stage_records(model_name: str, stages: Iterable[str] = STAGES) -> list[AuditRecord]:
    """The promotion and rollback records of `model_name`, from the verified trails of the stages'
    environments (read as `read_history` reads them)."""
    records: list[AuditRecord] = []
    for env in trail_environments(stages):
        records += _records(env, model_name, STAGE_EVENTS)
    return records


def read_evidence(
    model_name: str, model_version: str, stage: str, identity: VersionIdentity | None = None
) -> Evidence:
    """Approvals and countersignatures still available, read from the stage's audit trail (for
    this very version: ``identity``)."""
    records = _records(stage_environment(stage), model_name, EVIDENCE_EVENTS)
    return available_evidence(records, model_name, model_version, stage, identity)


def code_origin_problems(
    policy: ApprovalPolicy,
    version: ModelVersionResponse,
    target_stage: str,
    requester_source: str = ASSERTED,
    requester_evidence: Mapping[str, Any] | None = None,
) -> list[str]:
    """The protected-branch rule (`code_origin`) for the stage's policy; [] when it names none.

    The commit comes from the version's verified training record, never from ZenML metadata;
    the branch's tip from the requester's verified GitHub token when there is one.
    """
    stage = policy.stage(target_stage)
    branch = stage.code_from_branch if stage is not None else None
    if branch is None:
        return []
    tip, tip_problem = signed_branch_tip(requester_source, requester_evidence, branch)
    if tip_problem is not None:
        return [tip_problem]
    subject = f"{version.model.name} version {version.name}"
    found = {
        (str(r.details.get("git_sha") or ""), r.details.get("git_dirty"))
        for r in training_records(version.model.name, version.name, str(version.id))
    }
    if len(found) > 1:
        return [
            f"{subject} has {len(found)} training records that disagree on its commit "
            f"({sorted(c[:12] for c, _ in found)}); run `mlops audit verify` and investigate"
        ]
    commit, dirty = next(iter(found), ("", None))
    contained, evidence = (
        branch_contains(commit, branch, PROJECT_ROOT, tip) if commit else (None, "")
    )
    return commit_origin_problems(
        subject, commit or None, dirty if isinstance(dirty, bool) else None, branch,
        contained, evidence,
    )  # fmt: skip


def check_promotion(
    version: ModelVersionResponse,
    target_stage: str,
    requester: str,
    order: PromotionOrder,
    now: datetime,
    requester_source: str = ASSERTED,
    requester_evidence: Mapping[str, Any] | None = None,
) -> PromotionDecision:
    """The approval-policy decision, on approvals and stage history read from the audit trail,
    and the protected-branch rule on the version's recorded commit."""
    with one_decision():  # its reads compare the trail with the anchors once per head
        return _check_promotion(
            version, target_stage, requester, order, now, requester_source, requester_evidence
        )


def _check_promotion(
    version: ModelVersionResponse,
    target_stage: str,
    requester: str,
    order: PromotionOrder,
    now: datetime,
    requester_source: str,
    requester_evidence: Mapping[str, Any] | None,
) -> PromotionDecision:
    policy = approval_policy(target_stage)
    facts = candidate(version, read_history(version.model.name))
    evidence = read_evidence(version.model.name, version.name, target_stage, facts.identity)
    outcomes = _outcome_records(version.model.name) if target_stage == PRODUCTION else []
    standing = standing_degraded(outcomes, version.name)
    blind: tuple[Countersignature, ...] = ()
    if standing is not None:
        # An override goes past only the degraded verdict its countersigner was shown (attack
        # review: a countersignature given before the verdict existed went past it, so the
        # requester alone decided to): the others do not count for this promotion.
        blind = tuple(
            c for c in evidence.countersignatures if standing.record_hash not in c.degraded_seen
        )
        seen = tuple(c for c in evidence.countersignatures if c not in blind)
        evidence = replace(evidence, countersignatures=seen)
    decision = decide_promotion(
        policy,
        facts,
        target_stage,
        requester,
        order,
        evidence,
        now,
        requester_source,
    )
    problems = code_origin_problems(
        policy, version, target_stage, requester_source, requester_evidence
    )
    problem = degraded_outcome_problem(outcomes, version.name)
    degraded = [problem] if problem else []
    if degraded and decision.allowed and decision.countersignature is not None:
        # Anyone may record an outcome verdict from a labels file of their choosing: one
        # person's `degraded` must not keep a version out for good. A countersigned override
        # (two people, recorded) goes past it, and the promotion's records name the verdict.
        decision = replace(decision, despite_degraded=tuple(degraded))
    elif degraded and blind and standing is not None:
        records = ", ".join(str(c.record_seq) for c in blind)
        problems += [
            f"{degraded[0]} The countersignature of audit record {records} does not name that "
            f"verdict (record {standing.seq}): it was given before the verdict was recorded, and "
            "an override goes past only the verdict its countersigner was shown. The "
            "countersigner countersigns again (`mlops countersign`, which names the verdict), "
            "then `mlops promote --override`."
        ]
    else:
        problems += [
            f"{problem} If the verdict is wrong (its labels), a countersigned override "
            "(`mlops countersign`, then `mlops promote --override`) goes past it, recorded."
            for problem in degraded
        ]
    if not problems:
        return decision
    return replace(decision, allowed=False, reasons=(*decision.reasons, *problems))


def _outcome_records(model_name: str) -> list[AuditRecord]:
    return [
        record
        for env in trail_environments(STAGES)
        for record in _records(env, model_name, [AuditEventType.OUTCOMES_CHECKED])
    ]


def outcome_problems(version: ModelVersionResponse) -> list[str]:
    """Why ``version`` may not hold production on its realised outcomes (a standing `degraded`
    verdict in the verified trails), or nothing."""
    problem = degraded_outcome_problem(_outcome_records(version.model.name), version.name)
    return [problem] if problem else []


def standing_degraded_verdict(version: ModelVersionResponse) -> AuditRecord | None:
    """The verified `outcomes_checked` record whose degraded verdict stands for ``version``."""
    return standing_degraded(_outcome_records(version.model.name), version.name)


def policy_problems(version: ModelVersionResponse, stage: str) -> list[str]:
    """Why ``version`` may not hold ``stage`` under today's quality limits of the stage's
    environment, from its newest verified passed gate for that environment (else its newest
    passed gate anywhere: its training gate), or nothing (`promotion.below_todays_limits`)."""
    from mlops_platform.governance.policy.evaluate import unapproved_data_problem
    from mlops_platform.governance.policy.models import load_policy
    from mlops_platform.governance.promotion import below_todays_limits

    env = stage_environment(stage)
    identity = version_identity(version)
    passed = [
        record
        for trail_env in trail_environments(STAGES)
        for record in _records(trail_env, version.model.name, [AuditEventType.GATE_PASSED])
        if record.model_version == version.name and identity.recorded_in(record)
    ]
    judged_here = [r for r in passed if str(r.details.get("environment") or "") == env]
    newest = max(judged_here or passed, key=lambda r: r.seq, default=None)
    policy = load_policy(env)
    # The approved data files are policy too: a version trained on a file today's list lacks
    # does not come back by a rollback either (the gate refuses it in a promotion).
    trained_on = recorded_training(version).details.get("data_file_sha256") or None
    unapproved = unapproved_data_problem(
        env,
        policy.evaluation_data.approved_file_sha256,
        {f"the file version {version.name} was trained on (its verified record)": trained_on},
    )
    return below_todays_limits(newest, policy, env) + ([unapproved] if unapproved else [])


def deny(
    action: str,
    actor: str,
    version: ModelVersionResponse,
    stage: str,
    reasons: Iterable[str],
    details: Mapping[str, Any] | None = None,
    source: str = ASSERTED,
) -> PromotionDenied:
    """Record a refusal in the stage's audit trail; returns the error for the caller to raise."""
    denied = PromotionDenied(action, list(reasons))
    record_version_event(
        stage_environment(stage),
        AuditEventType.PROMOTION_DENIED,
        actor,
        version,
        stage=stage,
        details={
            "action": action,
            "reasons": list(denied.reasons),
            "identity": identity_details(actor, source),
            **(details or {}),
        },
    )
    return denied


def stage_holder(model_name: str, stage: str) -> ModelVersionResponse | None:
    try:
        return Client().get_model_version(model_name, ModelStages(stage))
    except KeyError:
        return None


class StageChangedOutsideError(RuntimeError):
    """ZenML's stage holder changed outside the platform while a move held the lock."""


def move_stage(version: ModelVersionResponse, stage: str, *, expected: str | None) -> str | None:
    """Give ``version`` the stage; ZenML archives the previous holder, whose name is returned.

    ``expected`` is the holder the move was decided against (None: no holder); a different
    holder found now stops it before anything moves: the stage was changed outside the platform.
    """
    previous = stage_holder(version.model.name, stage)
    found = previous.name if previous is not None and previous.id != version.id else None
    if found != expected:
        raise StageChangedOutsideError(
            f"ZenML's {stage} holder is {f'version {found}' if found else 'no version'}, but "
            f"this move was decided against {f'version {expected}' if expected else 'no holder'}: "
            "the stage was changed outside the platform. Nothing moved; run `mlops audit "
            "reconcile` and `mlops check`, then try again."
        )
    Client().update_model_version(version.model.id, version.id, stage=stage, force=True)
    return found


def stage_problems(
    model_name: str,
    stages: Iterable[str],
    history: Mapping[str, list[Tenure]] | None = None,
) -> dict[str, str]:
    """Each of ``stages`` whose ZenML holder is not the one the verified trail records, with why
    (`stage_record_problem`). Decisions stop on these: ZenML's stage is writable by any ZenML
    user, the trail is not."""
    stages = list(stages)
    history = read_history(model_name, stages) if history is None else history
    problems = {}
    for stage in stages:
        holder = stage_holder(model_name, stage)
        problem = stage_record_problem(
            stage,
            history.get(stage, []),
            holder.name if holder is not None else None,
            version_identity(holder) if holder is not None else None,
        )
        if problem is not None:
            problems[stage] = problem
    return problems


def require_recorded_stage(model_name: str, stage: str) -> None:
    """Stop (`StageChangedOutsideError`, exit 9) when ZenML's holder of ``stage`` is not the one
    the trail records: a promotion or rollback would judge against, replace or restore the
    wrong model, and its record would hide the change."""
    problem = stage_problems(model_name, [stage]).get(stage)
    if problem is not None:
        raise StageChangedOutsideError(
            f"{problem}. Nothing was decided or moved. Run `mlops audit reconcile --env "
            f"{stage_environment(stage)}` to give the stage back to the recorded holder (it is "
            "recorded), find out who changed it (`mlops check`), then try again."
        )


def stage_holders(model_name: str) -> dict[str, ModelVersionResponse | None]:
    return {stage: stage_holder(model_name, stage) for stage in STAGES}


def expected_aliases(
    holders: Mapping[str, ModelVersionResponse | None],
) -> dict[str, str | None]:
    """Per stage, the MLflow registry version its MLflow alias must point at (ZenML's holder)."""
    return {
        stage: registered_mlflow_version(holder) if holder is not None else None
        for stage, holder in holders.items()
    }


def mlflow_aliases(tracking_uri: str, model_name: str) -> dict[str, str | None] | None:
    """Per stage, the MLflow version its alias points at; None if MLflow lacks the model."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        registered = MlflowClient(tracking_uri).get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    aliases = dict(registered.aliases or {})
    return {stage: str(aliases[stage]) if stage in aliases else None for stage in STAGES}


def sync_mlflow_aliases(tracking_uri: str, model_name: str) -> dict[str, str | None]:
    """Point each stage's MLflow alias at ZenML's holder (or remove it); returns the aliases."""
    from mlflow.tracking import MlflowClient

    actual = mlflow_aliases(tracking_uri, model_name)
    if actual is None:
        logger.warning(
            "MLflow at %s has no registered model %s; stage aliases are not mirrored.",
            tracking_uri,
            model_name,
        )
        return {}
    expected = expected_aliases(stage_holders(model_name))
    client = MlflowClient(tracking_uri)
    for stage, wanted, _ in alias_mismatches(expected, actual):
        if wanted is None:
            client.delete_registered_model_alias(model_name, stage)
        else:
            client.set_registered_model_alias(model_name, stage, wanted)
    return expected


def plan_rollback(
    model_name: str, stage: str, requester: str, now: datetime, requester_source: str = ASSERTED
) -> tuple[ModelVersionResponse, ModelVersionResponse]:
    """(current holder, version to restore): the holder before the current one, per the trail."""
    current = stage_holder(model_name, stage)
    if current is None:
        raise PromotionTargetNotFound(
            f"no version of {model_name} holds {stage}, so there is nothing to roll back"
        )
    history = read_history(model_name)
    tenure = previous_tenure(history[stage], current.name)
    if tenure is None:
        raise PromotionTargetNotFound(
            f"the audit trail shows no version holding {stage} before version {current.name} "
            f"of {model_name}; a rollback restores a recorded holder and never guesses. "
            "See `mlops history`"
        )
    target = find_version(model_name, tenure.model_version)
    facts = candidate(target, history)
    reused = reused_number_problem(
        tenure, facts.identity or version_identity(target), model_name, stage
    ) or rollback_undo_problem(history[stage], model_name, stage)
    problems = (
        [reused]
        if reused
        else rollback_problems(
            approval_policy(stage), facts, stage, requester, now, requester_source
        )
    )
    if problems:
        raise deny("rollback", requester, target, stage, problems, source=requester_source)
    # The restored version's file must still be the one signed at registration (fails closed).
    verify_registered_model(target, stage_environment(stage))
    return current, target


@dataclass(frozen=True)
class Approver:
    """Someone approving: the acting identity, or a GitHub environment reviewer."""

    name: str
    source: str  # one of IDENTITY_SOURCES
    comment: str = ""


def record_approvals(
    version: ModelVersionResponse,
    stage: str,
    approvers: Sequence[Approver],
    reason: str,
    recorded_by: Actor,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Record each approval its approver may give, and each refusal; returns (given, refused).
    A typed ``reason`` that may not be recorded raises `InvalidTextError` first."""
    require_text(reason)
    env = stage_environment(stage)
    policy = approval_policy(stage)
    facts = candidate(version, {})
    given: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for approver in approvers:
        details = {
            "approver": approver.name,
            "reason": approver.comment or reason,
            "source": approver.source,
            "run_url": recorded_by.run_url,
            "target_stage": stage,
            "recorded_by": recorded_by.name,
            # The acting person approving: their own identity and its evidence; a reviewer
            # read from GitHub: the reviewer's name, with the job that read it as evidence.
            "identity": actor_details(recorded_by)
            if (approver.name, approver.source) == (recorded_by.name, recorded_by.source)
            else identity_details(
                approver.name, approver.source, {"recorded_by": actor_details(recorded_by)}
            ),
        }
        problems = approval_problems(policy, facts, approver.name, stage, now, approver.source)
        if problems:
            deny("approval", approver.name, version, stage, problems, details, approver.source)
            refused.append({**details, "reasons": problems})
            continue
        record_version_event(
            env,
            AuditEventType.APPROVAL_RECORDED,
            approver.name,
            version,
            stage=stage,
            details=details,
        )
        given.append(details)
    return given, refused


def record_countersignature(
    version: ModelVersionResponse, stage: str, signer: Actor, reason: str, now: datetime
) -> dict[str, Any]:
    """Record ``signer``'s countersignature of an override, if they may give it.

    Raises ``PromotionDenied`` (recorded) when they may not. Only the person countersigning
    records it, under their own identity; the promotion that uses it consumes it. A ``reason``
    that may not be recorded raises `InvalidTextError` first.
    """
    require_text(reason)
    problems = countersignature_problems(
        approval_policy(stage),
        candidate(version, {}),
        signer.name,
        signer.source,
        stage,
        reason,
        now,
    )
    details = {
        "countersigner": signer.name,
        "source": signer.source,
        "reason": reason,
        "target_stage": stage,
        "run_url": signer.run_url,
        "identity": actor_details(signer),
    }
    standing = standing_degraded_verdict(version) if stage == PRODUCTION else None
    if standing is not None:
        # What the countersigner agrees to go past, named (and shown to them): an override
        # goes past this verdict only, never one recorded after it.
        details["degraded_outcomes_seen"] = [verdict_reference(standing)]
    if problems:
        raise deny(
            "countersignature", signer.name, version, stage, problems, details, signer.source
        )
    record = record_version_event(
        stage_environment(stage),
        AuditEventType.COUNTERSIGNATURE,
        signer.name,
        version,
        stage=stage,
        details=details,
    )
    return {**details, "seq": record.seq}


def withdraw_approvals(
    version: ModelVersionResponse, stage: str, person: Actor, reason: str
) -> dict[str, Any]:
    """Withdraw ``person``'s own approvals and countersignatures of ``version`` for ``stage``
    that a promotion could still use (an `approval_withdrawn` record naming them; from then on
    no promotion counts them, and `mlops check` names one that did).

    Under the promotion lock of (environment, model): a promotion deciding at the same time
    either consumed them first (nothing left to withdraw) or finds them withdrawn. Raises
    `NothingToWithdraw` (exit 6, nothing recorded) when there is none, `InvalidTextError`
    (exit 3) for a ``reason`` that may not be recorded.
    """
    from mlops_platform.governance.promotion import NothingToWithdraw
    from mlops_platform.governance.transaction import (
        MOVE_EVENTS,
        lock_holder,
        lock_name,
        unfinished,
    )

    require_text(reason)

    env = stage_environment(stage)
    model_name = version.model.name
    trail = audit_trail(env, write=False)
    try:
        with trail.lock(lock_name(env, model_name), holder=lock_holder(env, model_name)):
            with one_decision():
                evidence = read_evidence(model_name, version.name, stage, version_identity(version))
            mine = [
                *(a.record_seq for a in evidence.approvals if same_person(a.approver, person.name)),
                *(
                    c.record_seq
                    for c in evidence.countersignatures
                    if same_person(c.countersigner, person.name)
                ),
            ]
            # A move that started with them and crashed may still be finished by reconcile
            # (attack review: withdrawn after the crash, then rolled forward on them, and every
            # report said "withdrawn"): it is closed first.
            for open_one in unfinished(_records(env, model_name, list(MOVE_EVENTS))):
                entries = [
                    *(open_one.started.details.get("approvals") or []),
                    open_one.started.details.get("override"),
                ]
                held = {e.get("seq") for e in entries if isinstance(e, Mapping)} & set(mine)
                if held:
                    raise PromotionDenied(
                        "withdrawal",
                        [
                            f"the {open_one.kind} of version {open_one.model_version} that "
                            f"started at audit record {open_one.started.seq} rests on audit "
                            f"record(s) {sorted(held)} and never finished (it crashed): run "
                            f"`mlops audit reconcile --env {env}` first, then withdraw what it "
                            "did not use. Nothing was recorded."
                        ],
                    )
            if not mine:
                raise NothingToWithdraw(
                    f"{person.name} has no approval or countersignature of {model_name} version "
                    f"{version.name} for {stage} that a promotion could still use (used up by a "
                    "promotion, withdrawn already, given before the version last left the stage, "
                    "or never given): nothing to withdraw, nothing recorded. `mlops history` and "
                    "`mlops audit verify` show what the trail holds."
                )
            details = {
                "withdrawn": sorted(seq for seq in mine if seq is not None),
                "reason": reason,
                "target_stage": stage,
                "run_url": person.run_url,
                "identity": actor_details(person),
            }
            record = record_version_event(
                env,
                AuditEventType.APPROVAL_WITHDRAWN,
                person.name,
                version,
                stage=stage,
                details=details,
            )
    finally:
        trail.close()
    return {**details, "seq": record.seq}

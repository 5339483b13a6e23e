"""A promotion as one transaction across ZenML, MLflow and the audit trail, and its reconciliation.

ZenML, MLflow and the trail are three stores with no shared transaction, so a promotion is made
recoverable instead of atomic:

1. Take the lock of (environment, model) (`AuditTrail.lock`: a PostgreSQL advisory lock, or a
   lock row with a lease on SQLite). Everything below runs under it, so two promotions of one
   model never interleave and each is judged against the holder it really replaces.
2. Resolve any promotion a crash left unfinished (`reconcile`).
3. Decide on verified records (`check_promotion`). If the stage changed after this run's gate
   compared the candidate with the old holder, judge the candidate again against the holder it
   really replaces, on what the run's own gate step judged (`validate_model.judge_run_again`;
   recorded as a gate event) and go on only if that passes. Then require, in the verified
   trail, a passing gate record of this run against that holder (`recorded_gate_problem`).
4. Record ``promotion_started`` (with the holder being replaced and the approvals), before any
   store changes; then move ZenML's stage (stopped if its holder is no longer the one decided
   against), mirror the MLflow aliases, record ``promotion``.

A crash between 4's steps leaves a ``promotion_started`` record without an end. `reconcile`
(`mlops audit reconcile`, the next promotion, `mlops check` reports it) looks at ZenML: if the
move's own version holds the stage, given to it while the crashed move held the lock, and no
degraded outcome verdict came since it started, it rolls forward (aliases mirrored,
``promotion`` recorded); otherwise it rolls back (aliases mirrored, ``promotion_aborted``
recorded, and `mlops audit reconcile` gives the stage back to the recorded holder): a stage set
with ZenML after a crash is never finished into a recorded move (`roll_forward_problem`). Either
way the stuck run is marked failed. Only the moves of the environment's own stages are closed:
staging and production may share one trail, each under its own lock.

A rollback (`rollback`) is the same transaction under the same lock, with ``rollback_started``
and ``rollback`` (or ``rollback_aborted`` from reconcile) records.

`unfinished` is pure; the rest is I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_platform.governance.approvals.policy import PRODUCTION
from mlops_platform.governance.promotion import PromotionDenied
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY
from mlops_platform.trust.audit.store import LOCK_CLOCK_SLACK, LOCK_LEASE_SECONDS

# Test-only failpoints: a test adds a phase name and the promotion raises `Crash` right there.
PHASES = ("started", "stage_moved", "aliases_synced")
FAILPOINTS: set[str] = set()
RECONCILER = "mlops-reconcile"


class Crash(BaseException):
    """Raised at an armed failpoint; BaseException so that no `except Exception` swallows it."""


def failpoint(phase: str) -> None:
    if phase in FAILPOINTS:
        raise Crash(f"failpoint after {phase}")


# Each kind of stage move: its started event, its end event and the end reconcile records when
# ZenML's stage never moved.
MOVES: dict[str, tuple[AuditEventType, AuditEventType, AuditEventType]] = {
    "promotion": (
        AuditEventType.PROMOTION_STARTED,
        AuditEventType.PROMOTION,
        AuditEventType.PROMOTION_ABORTED,
    ),
    "rollback": (
        AuditEventType.ROLLBACK_STARTED,
        AuditEventType.ROLLBACK,
        AuditEventType.ROLLBACK_ABORTED,
    ),
}
MOVE_EVENTS: tuple[AuditEventType, ...] = tuple(e for events in MOVES.values() for e in events)
GATE_EVENTS: tuple[AuditEventType, ...] = (AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED)
_STARTS = {started: kind for kind, (started, _, _) in MOVES.items()}
_ENDS = {end: kind for kind, (_, *ends) in MOVES.items() for end in ends}


@dataclass(frozen=True)
class Unfinished:
    """A ``promotion_started`` or ``rollback_started`` record that no end record closes."""

    started: AuditRecord

    @property
    def kind(self) -> str:
        return _STARTS[AuditEventType(self.started.event_type)]

    @property
    def stage(self) -> str:
        return str(self.started.stage)

    @property
    def model_version(self) -> str:
        return str(self.started.model_version)

    @property
    def run_id(self) -> str | None:
        value = self.started.details.get("pipeline_run_id")
        return str(value) if value else None


def unfinished(records: Iterable[AuditRecord]) -> list[Unfinished]:
    """Started promotions and rollbacks without an end, oldest first (pure)."""
    started: dict[int, AuditRecord] = {}
    for record in records:
        if record.event_type in _STARTS:
            started[record.seq] = record
        elif record.event_type in _ENDS:
            opened = started.get(int(record.details.get("started_seq") or 0))
            # An end closes only a started move of its own kind.
            if opened is not None and _STARTS[opened.event_type] == _ENDS[record.event_type]:
                del started[opened.seq]
    return [Unfinished(record) for _, record in sorted(started.items())]


def roll_forward_problem(
    open_one: Unfinished,
    holder: tuple[str, str, datetime] | None,
    degraded: AuditRecord | None,
    lease_seconds: float = LOCK_LEASE_SECONDS,
    slack_seconds: float = LOCK_CLOCK_SLACK,
) -> str | None:
    """Why the crashed move ``open_one`` may not be finished as recorded (pure): None when the
    move itself gave the stage to its version. ``holder``: ZenML's holder of the stage now (its
    number, its ZenML id, when ZenML last changed it), or None; ``degraded``: the outcome record
    whose degraded verdict stands for the version now, if any.

    The move gave the stage only if its version (by ZenML id, when the start names one) holds it
    and ZenML changed that version while the move held the lock: from its start record to the
    end of the lock's lease (with the clock slack the lock allows). A stage set later was set
    with ZenML by someone (attack review: a promotion killed after its start record, a degraded
    verdict recorded, the stage set with ZenML's client, and reconcile recorded the promotion).
    A degraded verdict recorded since the move started stops it too: the decision never saw it.
    """
    kind, stage, number = open_one.kind, open_one.stage, open_one.model_version
    if holder is None or holder[0] != number:
        return f"ZenML's {stage} stage never moved to version {number}: the {kind} is rolled back"
    identity = open_one.started.details.get(VERSION_IDENTITY_KEY)
    wanted = identity.get("model_version_id") if isinstance(identity, Mapping) else None
    if wanted and str(wanted) != holder[1]:
        return (
            f"ZenML's {stage} holder is another model with number {number} (ZenML id "
            f"{holder[1]}, the {kind} started for {wanted}): the {kind} is rolled back"
        )
    started = datetime.fromisoformat(open_one.started.recorded_at)
    changed = holder[2] if holder[2].tzinfo else holder[2].replace(tzinfo=UTC)
    earliest = started - timedelta(seconds=slack_seconds)
    latest = started + timedelta(seconds=lease_seconds + slack_seconds)
    if not earliest <= changed <= latest:
        return (
            f"ZenML gave {stage} to version {number} at {changed.isoformat(timespec='seconds')}, "
            f"not while the {kind} that started at {open_one.started.recorded_at} (record "
            f"{open_one.started.seq}) held the lock (its lease is {lease_seconds:g} s): the stage "
            f"was set outside the platform, so the {kind} is rolled back; find out who set it"
        )
    if degraded is not None and datetime.fromisoformat(degraded.recorded_at) > started:
        return (
            f"a degraded outcome verdict of version {number} (record {degraded.seq}) was "
            f"recorded after the {kind} started, and its decision never saw it: the {kind} is "
            "rolled back"
        )
    return None


def lock_name(env: str, model_name: str) -> str:
    return f"promotion:{env}:{model_name}"


def lock_holder(env: str, model_name: str) -> str:
    """Who else holds `lock_name`, as a waiter that gave up says it."""
    return f"another promotion of {model_name} in {env}"


@dataclass(frozen=True)
class PromotionRequest:
    """What the promotion step hands over: the decision inputs and the run's evidence."""

    target_stage: str
    actor: str
    gate_decision: Mapping[str, Any]
    common: Mapping[str, Any]  # reason, ticket, run_url, pipeline_run_id, identity
    mlflow_uri: str | None
    actor_source: str = "asserted"  # how the actor was identified (trust.identity)


class RejudgedGateFailed(PromotionDenied):
    """The candidate failed the gate when judged again against the holder it would replace."""


def champion_moved(gate_decision: Mapping[str, Any], holder: str | None) -> bool:
    """Whether the gate compared the candidate with another holder than ``holder`` (pure)."""
    return "champion_version" in gate_decision and (
        (gate_decision.get("champion_version") or None) != holder
    )


def _gate_problems(gate_decision: Mapping[str, Any], env: str, holder: str | None) -> list[str]:
    if gate_decision.get("environment") != env:
        return [
            f"the gate judged the model under the {gate_decision.get('environment')!r} policy, "
            f"but this stage is governed by {env!r}"
        ]
    if not gate_decision.get("passed"):
        failed = [c.get("name") for c in gate_decision.get("checks") or [] if not c.get("passed")]
        against = gate_decision.get("champion_version")
        return [
            "the model gate did not pass"
            + (f" (failed: {', '.join(map(str, failed))})" if failed else "")
            + (
                f" when judged again against {f'version {against}' if against else 'no holder'}, "
                "which holds the stage since this run's gate ran"
                if gate_decision.get("rejudged")
                else ""
            )
        ]
    if champion_moved(gate_decision, holder):
        champion = gate_decision.get("champion_version")
        return [
            f"the gate compared this version with {champion or 'no holder'}, but "
            f"{f'version {holder}' if holder else 'no version'} holds the stage now (the stage "
            "changed meanwhile); promote again so that the gate judges it against the real holder"
        ]
    return []


def recorded_gate_problem(
    records: Iterable[AuditRecord], version: str, run_id: str | None, holder: str | None
) -> str | None:
    """Why the verified trail does not show this run's gate passing ``version`` against
    ``holder`` (None: it does; pure).

    The newest gate record of the version from pipeline run ``run_id`` must be ``gate_passed``
    and name ``holder`` as the champion it compared with, so that a decision handed to the
    transaction by other code than the platform gate moves nothing.
    """
    gates = [
        r
        for r in records
        if r.event_type in (AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED)
        and str(r.model_version) == version
        and run_id
        and str(r.details.get("pipeline_run_id") or "") == run_id
    ]
    if not gates:
        return (
            f"the audit trail holds no gate record of version {version} from pipeline run "
            f"{run_id or '(none)'}: only a decision the platform gate recorded can promote"
        )
    newest = max(gates, key=lambda r: r.seq)
    if newest.event_type != AuditEventType.GATE_PASSED:
        return f"the newest gate record of this run (record {newest.seq}) is {newest.event_type}"
    recorded = newest.details.get("champion_version") or None
    if recorded != holder:
        return (
            f"the newest gate record of this run (record {newest.seq}) compared version "
            f"{version} with {recorded or 'no holder'}, not with the holder it replaces "
            f"({holder or 'none'})"
        )
    return None


def _rejudge(
    version: Any, env: str, request: PromotionRequest, holder: str | None
) -> Mapping[str, Any]:
    """The gate decision that counts for this promotion: the run's own, or, when the stage
    changed after the run's gate, the platform gate's judgement against ``holder`` on the run's
    own gate inputs (`validate_model.judge_run_again`), recorded as a gate event (``rejudged``) and in the
    version's ZenML metadata."""
    from zenml import log_metadata

    from mlops_platform.trust.events import record_version_event

    gate = request.gate_decision
    if not champion_moved(gate, holder):
        return gate
    if gate.get("environment") != env or not gate.get("passed"):
        return gate  # refused on the run's own gate; nothing to judge again
    from mlops_platform.steps import validate_model

    run_id = request.common.get("pipeline_run_id")
    rejudged = {
        **validate_model.judge_run_again(version, env, request.target_stage, dict(gate), run_id),
        "rejudged": True,
    }
    passed = bool(rejudged.get("passed"))
    record_version_event(
        env,
        AuditEventType.GATE_PASSED if passed else AuditEventType.GATE_FAILED,
        request.actor,
        version,
        details={
            "rejudged": True,
            "failed_checks": [c["name"] for c in rejudged.get("checks", []) if not c["passed"]],
            "champion_version": rejudged.get("champion_version"),
            "earlier_champion_version": gate.get("champion_version"),
            "pipeline_run_id": run_id,
            "evaluation_sha256": (rejudged.get("evaluation") or {}).get("sha256"),
            "model_sha256": rejudged.get("model_sha256"),
            "limits": {
                str(c["name"]): [
                    validate_model._finite(c.get("value")),
                    c.get("comparison"),
                    validate_model._finite(c.get("limit")),
                ]
                for c in rejudged.get("checks", [])
            },
            "metrics": validate_model.recorded_figures(rejudged.get("metrics") or {}),
        },
    )
    log_metadata(
        metadata={
            "gate_decision": rejudged,
            f"gate_decision_{env}": rejudged,
            **({"champion": rejudged["champion"]} if "champion" in rejudged else {}),
        },
        model_name=version.model.name,
        model_version=version.name,
    )
    return rejudged


def promote(version: Any, order: Any, request: PromotionRequest) -> dict[str, Any]:
    """Run the promotion transaction for a ZenML model version; returns the promotion details."""
    from mlops_platform.governance.history_at import POLICY_HASH_KEY, effective_policy_sha256
    from mlops_platform.governance.model_stages import (
        _records,
        check_promotion,
        deny,
        move_stage,
        require_recorded_stage,
        stage_holder,
        sync_mlflow_aliases,
    )
    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.steps.validate_model import GateRecordMismatch
    from mlops_platform.trust.events import audit_trail, one_decision, record_version_event

    stage = request.target_stage
    env = stage_environment(stage)
    model_name = version.model.name
    trail = audit_trail(env, write=False)
    try:
        # The locked part is one decision: one comparison with the anchors per trail head.
        with (
            trail.lock(
                lock_name(env, model_name), holder=lock_holder(env, model_name)
            ) as lock_wait,
            one_decision(),
        ):
            reconcile(env, model_name, request.mlflow_uri)
            started_at = time.perf_counter()
            identity = request.common.get("identity") or {}
            require_recorded_stage(model_name, stage)
            decision = check_promotion(
                version, stage, request.actor, order, trail.now(), request.actor_source,
                identity.get("evidence") if isinstance(identity, Mapping) else None,
            )  # fmt: skip
            verification = time.perf_counter() - started_at
            holder = stage_holder(model_name, stage)
            replaced = holder.name if holder is not None and holder.id != version.id else None
            try:
                gate = _rejudge(version, env, request, replaced) if decision.allowed else None
            except GateRecordMismatch as error:
                deny(
                    "promotion", request.actor, version, stage, [str(error)],
                    dict(request.common), request.actor_source,
                )  # fmt: skip
                raise
            # A version that already holds the stage (a concurrent promotion of it won) is
            # refused for that; its gate's champion is not another reason.
            already = holder is not None and holder.id == version.id and not decision.allowed
            problems = (
                [] if already else _gate_problems(gate or request.gate_decision, env, replaced)
            )
            if not problems and decision.allowed:
                recorded = recorded_gate_problem(
                    _records(env, model_name, GATE_EVENTS),
                    version.name,
                    request.common.get("pipeline_run_id"),
                    replaced,
                )
                problems = [recorded] if recorded else []
            if problems or not decision.allowed:
                failed_rejudgement = bool(gate and gate.get("rejudged") and not gate.get("passed"))
                denied = deny(
                    "promotion",
                    request.actor,
                    version,
                    stage,
                    [*problems, *decision.reasons],
                    dict(request.common),
                    request.actor_source,
                )
                if failed_rejudgement:
                    raise RejudgedGateFailed(denied.action, denied.reasons)
                raise denied
            override = decision.override_record()
            if override is not None:
                record_version_event(
                    env,
                    AuditEventType.OVERRIDE,
                    request.actor,
                    version,
                    stage=stage,
                    details={
                        **request.common,
                        "override": override,
                        "decision": list(decision.reasons),
                    },
                )
            planned = {
                **request.common,
                "target_stage": stage,
                "previous_holder": replaced,
                "approvals": decision.approvals_record(),
                "override": override,
                POLICY_HASH_KEY: effective_policy_sha256(env),
                # Judged again against the holder it replaces (another promotion moved it).
                "gate_rejudged": gate is not request.gate_decision,
            }
            started = record_version_event(
                env,
                AuditEventType.PROMOTION_STARTED,
                request.actor,
                version,
                stage=stage,
                details=planned,
            )
            failpoint("started")
            previous = move_stage(version, stage, expected=replaced)
            failpoint("stage_moved")
            aliases = (
                sync_mlflow_aliases(request.mlflow_uri, model_name) if request.mlflow_uri else {}
            )
            failpoint("aliases_synced")
            details = {
                **planned,
                "previous_holder": previous,
                "archived": previous is not None,
                "mlflow_aliases": aliases,
                "started_seq": started.seq,
                "lock_wait_seconds": round(lock_wait, 3),
                "verification_seconds": round(verification, 3),
            }
            record_version_event(  # also moves the MLflow anchor (trust.events)
                env, AuditEventType.PROMOTION, request.actor, version, stage=stage, details=details
            )
    finally:
        trail.close()
    return {**details, "gate": dict(gate or request.gate_decision)}


def rollback(
    model_name: str,
    stage: str,
    actor: Any,
    reason: str,
    loadability: Callable[[Any], str | None],
    evidence: Mapping[str, Any],
    *,
    despite_degraded: bool = False,
    despite_policy: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Give ``stage`` back to its previous holder as one transaction; returns (target, details).

    Under the promotion lock of (environment, model): unfinished moves are reconciled, the
    previous holder is read from the verified trail (`plan_rollback`), its model must load and
    score (``loadability`` returns why not, or None), then ``rollback_started`` is recorded before
    ZenML or MLflow change and ``rollback`` after, as a promotion does.

    A previous holder of production whose realised outcomes stand `degraded` is refused unless
    ``despite_degraded``; then the records name the degraded check the rollback went past.
    Likewise a previous holder whose recorded gate measurements fail today's quality limits of
    the stage's environment (the policy was tightened since it was judged) unless
    ``despite_policy``.
    """
    from mlops_platform.governance.approvals.policy import PRODUCTION
    from mlops_platform.governance.history_at import POLICY_HASH_KEY, effective_policy_sha256
    from mlops_platform.governance.model_stages import (
        actor_details,
        deny,
        move_stage,
        outcome_problems,
        plan_rollback,
        policy_problems,
        require_recorded_stage,
        sync_mlflow_aliases,
    )
    from mlops_platform.governance.promotion import ROLLBACK_APPROVAL_RULE, stage_environment
    from mlops_platform.runtime import tracking
    from mlops_platform.trust.events import audit_trail, one_decision, record_version_event

    env = stage_environment(stage)
    uri = tracking.stack_tracking_uri()
    trail = audit_trail(env, write=False)
    try:
        # The locked part is one decision: one comparison with the anchors per trail head.
        with (
            trail.lock(
                lock_name(env, model_name), holder=lock_holder(env, model_name)
            ) as lock_wait,
            one_decision(),
        ):
            reconcile(env, model_name, uri)
            require_recorded_stage(model_name, stage)
            current, target = plan_rollback(
                model_name, stage, actor.name, trail.now(), actor.source
            )
            degraded = outcome_problems(target) if stage == PRODUCTION else []
            problems = [p for p in [loadability(target)] if p is not None]
            if degraded and not despite_degraded:
                problems += [
                    *degraded,
                    "If every other version is worse, `mlops rollback --despite-degraded` "
                    "restores it anyway, and the records name this check",
                ]
            below = policy_problems(target, stage)
            if below and not despite_policy:
                problems += [
                    *below,
                    "If it must serve anyway, `mlops rollback --despite-policy` restores it, "
                    "and the records name these checks",
                ]
            if problems:
                raise deny(
                    "rollback", actor.name, target, stage, problems, {"reason": reason},
                    actor.source,
                )  # fmt: skip
            planned = {
                "reason": reason,
                "target_stage": stage,
                "replaced": current.name,
                "run_url": actor.run_url,
                "approval_rule": ROLLBACK_APPROVAL_RULE,
                "identity": actor_details(actor),
                POLICY_HASH_KEY: effective_policy_sha256(env),
                **evidence,
                **({"despite_degraded_outcomes": degraded} if degraded else {}),
                **({"despite_policy": below} if below else {}),
            }
            started = record_version_event(
                env, AuditEventType.ROLLBACK_STARTED, actor.name, target, stage=stage,
                details=planned,
            )  # fmt: skip
            failpoint("started")
            archived = move_stage(target, stage, expected=current.name)
            failpoint("stage_moved")
            aliases = sync_mlflow_aliases(uri, model_name) if uri else {}
            failpoint("aliases_synced")
            details = {
                **planned,
                "archived": archived is not None,
                "mlflow_aliases": aliases,
                "started_seq": started.seq,
                "lock_wait_seconds": round(lock_wait, 3),
            }
            record_version_event(  # also moves the MLflow anchor (trust.events)
                env, AuditEventType.ROLLBACK, actor.name, target, stage=stage, details=details
            )
    finally:
        trail.close()
    return target, details


def reconcile(env: str, model_name: str, mlflow_uri: str | None) -> list[dict[str, Any]]:
    """Close every unfinished promotion of ``model_name`` in ``env``; returns what was done.

    Call it under the promotion lock (the next promotion does), or through
    `reconcile_locked` (`mlops audit reconcile`).
    """
    from zenml.client import Client

    from mlops_platform.governance.model_stages import (
        _outcome_records,
        _records,
        stage_holder,
        sync_mlflow_aliases,
    )
    from mlops_platform.governance.promotion import stage_environment, standing_degraded
    from mlops_platform.trust.events import record_event

    outcomes = []
    for open_one in unfinished(_records(env, model_name, list(MOVE_EVENTS))):
        if stage_environment(open_one.stage) != env:
            continue  # another environment's move in a shared trail: its own lock, its own reconcile
        _, done, aborted = MOVES[open_one.kind]
        found = stage_holder(model_name, open_one.stage)
        holder = (found.name, str(found.id), found.updated) if found is not None else None
        degraded = (
            standing_degraded(_outcome_records(model_name), open_one.model_version)
            if open_one.stage == PRODUCTION and holder is not None
            else None
        )
        problem = roll_forward_problem(
            open_one, holder, degraded, LOCK_LEASE_SECONDS, LOCK_CLOCK_SLACK
        )
        moved = problem is None
        aliases = sync_mlflow_aliases(mlflow_uri, model_name) if mlflow_uri else {}
        run_marked = _mark_run_failed(Client(), open_one.run_id)
        details = {
            **{k: v for k, v in open_one.started.details.items() if k != "environment"},
            "started_seq": open_one.started.seq,
            "reconciled": True,
            "mlflow_aliases": aliases,
            "run_marked_failed": run_marked,
        }
        if moved:
            replaced = details.get("previous_holder", details.get("replaced"))
            details["archived"] = replaced is not None
            event = done
        else:
            details["outcome"] = problem
            event = aborted
        record_event(  # also moves the MLflow anchor (trust.events)
            env,
            event,
            RECONCILER,
            model_name=model_name,
            model_version=open_one.model_version,
            stage=open_one.stage,
            details=details,
        )
        outcomes.append(
            {
                "started_seq": open_one.started.seq,
                "model_version": open_one.model_version,
                "stage": open_one.stage,
                "kind": open_one.kind,
                "outcome": "rolled forward" if moved else "rolled back",
                "run_marked_failed": run_marked,
            }
        )
    return outcomes


def restore_recorded_stages(
    env: str, model_name: str, mlflow_uri: str | None, actor: Callable[[], Any]
) -> list[dict[str, Any]]:
    """Give each stage of ``env`` whose ZenML holder is not the one the verified trail records
    back to the recorded holder (or to no version, when the trail records none), and record
    ``stage_restored`` with what was found and who asked (``actor()``, resolved only when there
    is something to restore); returns what was done. Call it under the promotion lock, after
    `reconcile` (`mlops audit reconcile` does).

    The recorded holder is found by the ZenML id the trail records, and its model file must
    verify against its signed pin and be the file the trail records, else nothing moves (exit
    8). Only when no ZenML version has that id any more (deleted outside the platform) is the
    stage left empty, and the record says so: a model nobody promoted never keeps a stage.
    """
    from zenml.client import Client

    from mlops_platform.governance.approvals.policy import STAGES
    from mlops_platform.governance.model_stages import (
        actor_details,
        read_history,
        stage_holder,
        stage_problems,
        sync_mlflow_aliases,
    )
    from mlops_platform.governance.promotion import current_holder, stage_environment
    from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY
    from mlops_platform.trust.events import record_event, version_identity

    stages = [s for s in STAGES if stage_environment(s) == env]
    history = read_history(model_name, stages)
    done = []
    for stage, problem in stage_problems(model_name, stages, history).items():
        who = actor()
        found = stage_holder(model_name, stage)
        recorded = current_holder(history[stage])
        target = _recorded_holder(model_name, recorded, stage) if recorded is not None else None
        client = Client()
        if target is not None:
            client.update_model_version(target.model.id, target.id, stage=stage, force=True)
        elif found is not None:
            client.update_model_version(found.model.id, found.id, stage="archived", force=True)
        aliases = sync_mlflow_aliases(mlflow_uri, model_name) if mlflow_uri else {}
        details = {
            "target_stage": stage,
            "found": found.name if found is not None else None,
            "recorded": recorded.model_version if recorded is not None else None,
            "restored": target.name if target is not None else None,
            "problem": problem,
            "mlflow_aliases": aliases,
            "identity": actor_details(who),
        }
        if recorded is not None and target is None:
            details["outcome"] = (
                f"the recorded holder, version {recorded.model_version}, no longer exists in "
                f"ZenML (deleted outside the platform): {stage} is left empty; promote a version "
                "to it"
            )
        # The record is about the version given the stage back, else the one taken off it, else
        # the recorded holder that is gone (a stage with a problem has one of the three).
        moved = target if target is not None else found
        subject = moved.name if moved is not None else getattr(recorded, "model_version", None)
        # Which version, beyond its number (the gone holder's, as its tenure recorded it).
        identity = (
            version_identity(moved).as_dict()
            if moved is not None
            else getattr(recorded, "identity", None)
        )
        if isinstance(identity, Mapping) and identity:
            details[VERSION_IDENTITY_KEY] = dict(identity)
        record_event(  # also moves the MLflow anchor (trust.events)
            env,
            AuditEventType.STAGE_RESTORED,
            who.name,
            model_name=model_name,
            model_version=str(subject),
            stage=stage,
            details=details,
        )
        done.append(details)
    return done


def _recorded_holder(model_name: str, tenure: Any, stage: str) -> Any:
    """The ZenML version ``tenure`` records, its model file verified (raises
    `ModelFileIntegrityError`, exit 8, otherwise); None when no version has its id any more.
    Without a recorded identity (records older than identities) it is found by number."""
    from uuid import UUID

    from zenml.client import Client

    from mlops_platform.governance.model_stages import find_version
    from mlops_platform.governance.promotion import PromotionTargetNotFound, stage_environment
    from mlops_platform.trust.artifacts import ModelFileIntegrityError, verify_registered_model

    recorded = tenure.identity if isinstance(tenure.identity, dict) else {}
    version_id = recorded.get("model_version_id")
    try:
        version = (
            Client().get_model_version(model_name, UUID(str(version_id)))
            if version_id
            else find_version(model_name, tenure.model_version)
        )
    except (KeyError, ValueError, PromotionTargetNotFound):
        return None
    verified = verify_registered_model(version, stage_environment(stage))
    sha = recorded.get("model_sha256")
    if sha and verified.pin.sha256 != sha:
        raise ModelFileIntegrityError(
            f"version {version.name} of {model_name} is recorded as holding {stage} with model "
            f"file SHA-256 {sha}, but its signed pin names {verified.pin.sha256}; nothing was "
            "moved. Find out who changed its registration record"
        )
    return version


def reconcile_locked(
    env: str, model_name: str, mlflow_uri: str | None, actor: Callable[[], Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`reconcile`, then `restore_recorded_stages`, under the promotion lock (`mlops audit
    reconcile`); returns what each did."""
    from mlops_platform.trust.events import audit_trail

    trail = audit_trail(env, write=False)
    try:
        with trail.lock(lock_name(env, model_name), holder=lock_holder(env, model_name)):
            outcomes = reconcile(env, model_name, mlflow_uri)
            return outcomes, restore_recorded_stages(env, model_name, mlflow_uri, actor)
    finally:
        trail.close()


def unfinished_promotions(env: str, model_name: str) -> list[Unfinished]:
    """For `mlops check`: started promotions and rollbacks without an end (verified read)."""
    from mlops_platform.governance.model_stages import _records

    return unfinished(_records(env, model_name, list(MOVE_EVENTS)))


def _mark_run_failed(client: Any, run_id: str | None) -> bool:
    """Mark a promotion run that never finished as failed; False if there is nothing to mark."""
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate

    if not run_id:
        return False
    try:
        run = client.get_pipeline_run(run_id)
    except KeyError:
        return False
    if run.status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
        return run.status == ExecutionStatus.FAILED
    client.zen_store.update_run(run.id, PipelineRunUpdate(status=ExecutionStatus.FAILED))
    return True

"""`mlops promote`, `mlops approve`, `mlops countersign`, `mlops rollback` and `mlops history`.

Every decision is made by `mlops_platform.governance.promotion` on facts read by
`mlops_platform.governance.model_stages`; these commands parse options, launch the promotion
pipeline and print the outcome. Exit codes:
0 done, 4 (GATE_FAILED) a gate that fails during a promotion, 5 (DENIED) refused by policy,
6 (NOT_FOUND) no such version or nothing to roll back to, 1 for errors.

Identity (mlops_platform.trust.identity). Who acts is resolved for the environment that governs the
target stage: staging and production accept only verified identities (the account the ZenML client
is logged in to on a trusted ZenML server, or a GitHub Actions job's OIDC token); `--actor` is
honoured only where the environment accepts asserted names (local), and elsewhere must match the
verified identity. `mlops approve --from-github-environment production` records the reviewers
GitHub reports for this run's deployment only when the job's verified OIDC token shows that it runs
in that environment of the configured repository (`GITHUB_*` variables are never evidence).
Each stage's `accepted_identity_sources` in configs/*/approvals.yaml then says which sources
count there (see docs/SECURITY.md). Who may edit the configs is a CODEOWNERS rule (docs/PROMOTION.md).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlops_cli.common import JsonOption, console_logs_on_stderr, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from zenml.models import ModelVersionResponse

    from mlops_platform.governance.model_stages import Approver
    from mlops_platform.governance.promotion import PromotionOrder
    from mlops_platform.runtime.runner import GovernedRunFailed
    from mlops_platform.trust.identity import Actor

# Patients of the synthetic frame a restored model must score before a rollback goes ahead.
SMOKE_PATIENTS = 50
SMOKE_SEED = 20240601


class Stage(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


VersionOption = Annotated[
    str, typer.Option("--version", help="Model version number, or 'latest' (newest validated).")
]
ToOption = Annotated[Stage, typer.Option("--to", help="Target stage.")]
ActorOption = Annotated[
    str | None,
    typer.Option(
        help="Who acts, where the environment accepts typed names (local). Elsewhere the "
        "verified identity acts (ZenML server account or CI job token); a different name is refused."
    ),
]
ReasonOption = Annotated[str, typer.Option(help="Why; recorded in the audit trail.")]


@reports_errors
def promote(
    version: VersionOption,
    to: ToOption,
    reason: ReasonOption,
    actor: ActorOption = None,
    ticket: Annotated[str | None, typer.Option(help="Change ticket, recorded.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Current data to re-judge on. Default: READMISSION_DATA, else download."),
    ] = None,
    override: Annotated[
        bool,
        typer.Option(
            "--override",
            help="Emergency only: instead of approvals, use the countersignature a second person "
            "recorded with `mlops countersign` (consumed by this promotion).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-run the target environment's gates on VERSION, then move it to the stage.

    The gates always run; an override (countersigned by a second person, recorded) replaces
    only the approvals.

    Example: mlops --as bob promote --version 3 --to production --reason "Q3 refresh"
    """
    check_typed_text(reason=reason, ticket=ticket)
    who = _who(actor, to.value)
    order = _order(reason, ticket, who, override)
    with console_logs_on_stderr(as_json):
        result = run_promotion(version, to.value, who, order, data)
    _finish(result, "promoted", as_json, lambda: _print_promotion(result))


@reports_errors
def approve(
    version: VersionOption,
    to: ToOption,
    reason: ReasonOption,
    actor: ActorOption = None,
    from_github_environment: Annotated[
        str | None,
        typer.Option(
            help="In GitHub Actions: record the reviewers who approved this run's deployment "
            "to this GitHub environment (read from the GitHub API with GITHUB_TOKEN)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record an approval of VERSION for a stage, if the approver may give it.

    Verified: with --from-github-environment the approvers are the reviewers GitHub itself
    authenticated for this workflow run's environment (source "github-environment"). Only
    asserted: a name given with --actor (source "asserted"). Either way the approver must hold
    an approver role and must not have trained the version (separation of duties).

    Example: mlops --as carol approve --version 3 --to production --reason "report reviewed"
    """
    check_typed_text(reason=reason)
    with console_logs_on_stderr(as_json):
        result = record_approvals(version, to.value, reason, actor, from_github_environment)
    _finish(result, "approved", as_json, lambda: _print_approvals(result))


@reports_errors
def countersign(
    version: VersionOption,
    to: ToOption,
    reason: Annotated[
        str, typer.Option(help="Why the approvals may be skipped; recorded, and long enough.")
    ],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Countersign an emergency override of VERSION's approvals for a stage, as yourself.

    The countersigner runs this command with their own identity, before the requester promotes
    with --override. They must hold an override role and be neither the requester nor the
    training run's author; the countersignature is used up by the promotion it allows.

    Example: mlops --as erin countersign --version 3 --to production --reason "INC-9: ..."
    """
    check_typed_text(reason=reason)
    with console_logs_on_stderr(as_json):
        result = record_countersignature(version, to.value, reason, _who(actor, to.value))
    emit(result, as_json, lambda: _print_countersignature(result))


@reports_errors
def withdraw(
    version: VersionOption,
    to: ToOption,
    reason: ReasonOption,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw your own approvals and countersignatures of VERSION for a stage, as yourself.

    Only the person who gave an approval or countersignature withdraws it, and only while no
    promotion has used it; from then on no promotion counts it (a new one is needed), and the
    withdrawal is recorded (`approval_withdrawn`). Nothing to withdraw: exit 6.

    Example: mlops --as carol withdraw --version 3 --to production --reason "report had errors"
    """
    check_typed_text(reason=reason)
    with console_logs_on_stderr(as_json):
        result = withdraw_approvals(version, to.value, reason, _who(actor, to.value))
    emit(result, as_json, lambda: _print_withdrawal(result))


@reports_errors
def rollback(
    to: ToOption,
    reason: ReasonOption,
    actor: ActorOption = None,
    despite_degraded: Annotated[
        bool,
        typer.Option(
            "--despite-degraded",
            help="Restore a previous production holder whose realised outcomes stand degraded "
            "(refused without it); the rollback's records name that outcome check.",
        ),
    ] = False,
    despite_policy: Annotated[
        bool,
        typer.Option(
            "--despite-policy",
            help="Restore a previous holder whose recorded gate measurements fail today's "
            "quality limits, or trained on a data file today's approved list lacks (refused "
            "without it); the rollback's records name those checks.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Give the stage back to the version that held it before the current holder.

    The previous holder is read from the audit trail, never guessed; its model must still load
    and score, and its recorded gate measurements must meet today's quality limits (or
    --despite-policy, recorded). No new approval is needed: that version was approved for this
    stage when it was promoted there. The requester must be allowed to request the stage, and
    the rollback is recorded with actor and reason.

    Example: mlops --as bob rollback --to production --reason "INC-42: alert volume doubled"
    """
    check_typed_text(reason=reason)
    with console_logs_on_stderr(as_json):
        result = run_rollback(
            to.value, _who(actor, to.value), reason, despite_degraded, despite_policy
        )
    emit(result, as_json, lambda: _print_rollback(result))


@reports_errors
def history(
    stage: Annotated[Stage | None, typer.Option(help="Only this stage.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Only the holder of each stage at this moment (ISO 8601, UTC unless an offset "
            "is given), with the hash of the policy its promotion recorded.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which version held each stage, from when to when, replayed from the audit trail.

    Example: mlops history --at 2026-03-01T12:00:00Z --json
    """
    from mlops_platform.governance.approvals.policy import STAGES
    from mlops_platform.governance.model_stages import read_history
    from readmission.names import MODEL_NAME

    stages = [stage.value] if stage else list(STAGES)
    if at is not None:
        _history_at(MODEL_NAME, stages, at, as_json)
        return
    tenures = read_history(MODEL_NAME, stages)
    payload = {
        "model_name": MODEL_NAME,
        "stages": {name: [t.as_dict() for t in tenures[name]] for name in stages},
    }
    emit(payload, as_json, lambda: _print_history(payload))


def check_typed_text(**texts: str | None) -> None:
    """Refuse typed free text that may not be recorded (over `MAX_TEXT_CHARS`, control or
    invisible characters: `text_problem`) with exit 3, before anything is read or written."""
    from mlops_platform.text import require_text

    for what, text in texts.items():
        if text is not None:
            require_text(text, what)


def _who(actor: str | None, stage: str) -> Actor:
    """The acting person, as the environment governing ``stage`` accepts it (else refused, 5)."""
    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.trust.identity import resolve_actor

    return resolve_actor(stage_environment(stage), actor)


def _order(reason: str, ticket: str | None, who: Actor, override: bool) -> PromotionOrder:
    from pydantic import ValidationError

    from mlops_platform.config import validation_issues
    from mlops_platform.governance.promotion import PromotionOrder

    try:
        return PromotionOrder(reason=reason, ticket=ticket, run_url=who.run_url, override=override)
    except ValidationError as error:
        problems = "; ".join(validation_issues(error))
        raise CliError(f"invalid promotion request: {problems}", ExitCode.USAGE) from error


def _finish(result: dict[str, Any], done: str, as_json: bool, human: Any) -> None:
    """Print the outcome; a refusal is also one error line and the DENIED exit code."""
    if result[done]:
        emit(result, as_json, human)
        return
    if as_json:
        emit(result, True, human)
    reasons = "\n".join(f"  - {reason}" for reason in result["reasons"])
    gate = bool(result.get("failed_checks"))
    raise CliError(
        f"{result['action']} of {result['model_name']} version {result['model_version']} to "
        f"{result['target_stage']} {'stopped by the gate' if gate else 'denied by policy'}:"
        f"\n{reasons}",
        ExitCode.GATE_FAILED if gate else ExitCode.DENIED,
    )


def run_promotion(
    requested: str, stage: str, who: Actor, order: PromotionOrder, data: Path | None
) -> dict[str, Any]:
    """Check the approval policy, then run the promotion pipeline; returns the decision."""
    from mlops_cli import commands
    from mlops_platform.governance.promotion import stage_environment

    env = stage_environment(stage)
    config = commands.training_config(env, data)
    commands.check_training_data(config)

    from zenml import Model
    from zenml.client import Client

    from mlops_platform.governance import model_stages
    from mlops_platform.runtime.runner import GovernedRunFailed, run_governed
    from mlops_platform.steps.promote_model import PROMOTION_ARTIFACT
    from mlops_platform.trust.events import one_decision
    from readmission.names import MODEL_NAME
    from readmission.pipelines.promotion import readmission_promotion

    commands.ensure_stack()
    version = model_stages.find_version(MODEL_NAME, requested)
    with one_decision():  # the policy check before any run, one comparison per trail head
        # The transaction checks both again under the lock.
        model_stages.require_recorded_stage(MODEL_NAME, stage)
        decision = model_stages.check_promotion(
            version,
            stage,
            who.name,
            order,
            model_stages.decision_time(stage),
            who.source,
            dict(who.evidence),
        )
    base = {
        "action": "promotion",
        "model_name": MODEL_NAME,
        "model_version": version.name,
        "target_stage": stage,
        "environment": env,
        "requester": who.name,
        "requester_source": who.source,
        **order.model_dump(),
    }
    if not decision.allowed:
        model_stages.deny(
            "promotion", who.name, version, stage, decision.reasons, order.model_dump(), who.source
        )
        return {**base, "promoted": False, "reasons": list(decision.reasons)}
    if env != "local" and config.data.path is None:
        # The gate outside local judges only on a data file (and this one on the pinned file):
        # refused here, before a run tries to download and fails inside the pipeline.
        pinned = model_stages.recorded_training(version).details.get("data_file_sha256")
        raise CliError(
            f"the {env} promotion gate judges version {version.name} on a data file, and none "
            "was given: pass --data FILE (or set READMISSION_DATA)"
            + (f", the file it was trained on (SHA-256 {pinned})" if pinned else "")
            + ". Nothing was run.",
            ExitCode.BAD_INPUT,
        )
    pipeline = readmission_promotion.with_options(
        model=Model(name=MODEL_NAME, version=version.name)
    )
    parameters = {
        "data": config.data,
        "split": config.split,
        "evaluation": config.evaluation,
        "target_stage": stage,
        "request": order,
    }
    tags = {"model_version": version.name, "target_stage": stage}
    try:
        run = run_governed(pipeline, env, who, parameters, run_tags=tags)
    except GovernedRunFailed as error:
        denied = _denial_of_run(error, version, stage, who, order)
        if denied is None:
            raise
        return {**base, **denied, "promoted": False}
    step = Client().get_pipeline_run(run.id).steps["promote_model"]
    record = step.outputs[PROMOTION_ARTIFACT][0].load()
    return {
        **base,
        **record,
        "promoted": True,
        "reasons": list(decision.reasons),
        "run_id": str(run.id),
        "run_name": run.name,
    }


def _denial_of_run(
    error: GovernedRunFailed,
    version: ModelVersionResponse,
    stage: str,
    who: Actor,
    order: PromotionOrder,
) -> dict[str, Any] | None:
    """A promotion run stopped by the gate or by the promotion step's own policy check.

    A gate that fails here denies this promotion only: the version is not tagged rejected,
    since it may still be fit for a less demanding stage.
    """
    from mlops_platform.governance import model_stages
    from mlops_platform.governance.policy.evaluate import GateFailedError
    from mlops_platform.governance.promotion import PromotionDenied
    from mlops_platform.governance.transaction import RejudgedGateFailed

    failed = error.error_class()
    if failed is not None and issubclass(failed, PromotionDenied):
        # The promotion step recorded its refusal itself.
        reasons = [_bullet_text(line) for line in error.error_message.splitlines()[1:]]
        denied = {"reasons": reasons or [error.error_message], "run_name": error.run_name}
        if issubclass(failed, RejudgedGateFailed):  # the gate, judged again under the lock
            gate = _gate_of(version)
            denied |= {"failed_checks": _failed_checks(gate), "gate": gate}
        return denied
    if failed is None or not issubclass(failed, GateFailedError):
        return None
    gate = _gate_of(version)
    failed_checks = _failed_checks(gate)
    # The message's first line is its heading ("Model gate failed ... (1 of 15 checks):"); the
    # reasons are the failed checks under it.
    lines = [line for line in error.error_message.splitlines() if line.strip()]
    reasons = [_bullet_text(line) for line in lines[1:]] or lines[:1]
    details = {**order.model_dump(), "failed_checks": failed_checks, "pipeline_run": error.run_name}
    model_stages.deny("promotion", who.name, version, stage, reasons, details, who.source)
    return {
        "reasons": reasons,
        "failed_checks": failed_checks,
        "run_name": error.run_name,
        "gate": gate,
    }


def _gate_of(version: ModelVersionResponse) -> dict[str, Any]:
    from zenml.client import Client

    found = Client().get_model_version(version.model.id, version.id).run_metadata
    return dict(found.get("gate_decision") or {})


def _failed_checks(gate: dict[str, Any]) -> list[str]:
    return [c["name"] for c in gate.get("checks", []) if not c.get("passed")]


def _bullet_text(line: str) -> str:
    """A reason without the list bullet of the message it was cut from (printed with its own)."""
    return line.strip().removeprefix("- ").strip()


def record_approvals(
    requested: str,
    stage: str,
    reason: str,
    actor: str | None,
    github_environment: str | None,
) -> dict[str, Any]:
    """Record each approval its approver may give; refusals are recorded as denials."""
    from mlops_cli import commands
    from mlops_platform.governance import model_stages
    from readmission.names import MODEL_NAME

    who = _who(actor, stage)
    commands.ensure_stack()
    version = model_stages.find_version(MODEL_NAME, requested)
    approvers = _approvers(who, github_environment, stage)
    given, refused = model_stages.record_approvals(
        version, stage, approvers, reason, who, model_stages.decision_time(stage)
    )
    if not approvers:
        reasons = [f"no reviewer approved GitHub environment {github_environment!r} for this run"]
        model_stages.deny(
            "approval", who.name, version, stage, reasons, {"source": "github"}, who.source
        )
        refused.append({"approver": None, "reasons": reasons})
    return {
        "action": "approval",
        "model_name": MODEL_NAME,
        "model_version": version.name,
        "target_stage": stage,
        "approved": bool(given),
        "approvals": given,
        "denied": refused,
        "reasons": [reason for entry in refused for reason in entry["reasons"]],
    }


def _approvers(who: Actor, github_environment: str | None, stage: str) -> list[Approver]:
    """The acting person, or the reviewers GitHub reports for this job's proven environment."""
    from mlops_platform.governance.approvals.github import GITHUB_SOURCE, reviewers_for_job
    from mlops_platform.governance.model_stages import Approver
    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.infra.settings import load_platform_settings

    if github_environment is None:
        return [Approver(who.name, who.source)]
    oidc = load_platform_settings(stage_environment(stage)).identity.github_oidc
    if oidc is None:
        raise CliError(
            f"--from-github-environment needs identity.github_oidc in the {stage} platform "
            "config (issuer, audience, repository); it is not configured.",
            ExitCode.CONFIG,
        )
    reviewers = reviewers_for_job(github_environment, who, oidc)
    return [Approver(r.login, GITHUB_SOURCE, r.comment) for r in reviewers]


def record_countersignature(requested: str, stage: str, reason: str, who: Actor) -> dict[str, Any]:
    """Record the acting person's countersignature of an override; a refusal raises (exit 5)."""
    from mlops_cli import commands
    from mlops_platform.governance import model_stages
    from readmission.names import MODEL_NAME

    commands.ensure_stack()
    version = model_stages.find_version(MODEL_NAME, requested)
    recorded = model_stages.record_countersignature(
        version, stage, who, reason, model_stages.decision_time(stage)
    )
    return {
        "action": "countersignature",
        "model_name": MODEL_NAME,
        "model_version": version.name,
        **recorded,
    }


def withdraw_approvals(requested: str, stage: str, reason: str, who: Actor) -> dict[str, Any]:
    """Withdraw the acting person's own unused approvals and countersignatures (exit 6: none)."""
    from mlops_cli import commands
    from mlops_platform.governance import model_stages
    from readmission.names import MODEL_NAME

    commands.ensure_stack()
    version = model_stages.find_version(MODEL_NAME, requested)
    withdrawn = model_stages.withdraw_approvals(version, stage, who, reason)
    return {
        "action": "withdrawal",
        "model_name": MODEL_NAME,
        "model_version": version.name,
        "actor": who.name,
        **withdrawn,
    }


def run_rollback(
    stage: str,
    who: Actor,
    reason: str,
    despite_degraded: bool = False,
    despite_policy: bool = False,
) -> dict[str, Any]:
    """Restore the previous holder of ``stage`` after checking its model still loads and scores."""
    from mlops_cli import commands
    from mlops_platform.governance import transaction
    from mlops_platform.governance.promotion import stage_environment
    from readmission.names import MODEL_NAME

    commands.ensure_stack()
    evidence = {
        "loadability": f"signed file loaded with skops and scored {SMOKE_PATIENTS} synthetic "
        "patients"
    }
    env = stage_environment(stage)
    target, details = transaction.rollback(
        MODEL_NAME, stage, who, reason, lambda version: loadability_problem(version, env), evidence,
        despite_degraded=despite_degraded, despite_policy=despite_policy,
    )  # fmt: skip
    return {"model_name": MODEL_NAME, "model_version": target.name, "actor": who.name, **details}


def loadability_problem(version: ModelVersionResponse, env: str) -> str | None:
    """Why the version's model cannot serve in ``env``, or None: its signed file loads (the one
    its pin names, checked as every load of a registered model is) and scores.

    A file that fails its pin, its allow-list or its golden sample raises (exit 8): that is a
    broken record, not a model to pass over."""
    import numpy as np

    from mlops_platform.trust import golden
    from mlops_platform.trust.artifacts import (
        ModelCodeMissing,
        ModelFileIntegrityError,
        UntrustedModelError,
        load_verified_model,
    )
    from readmission.core.model import predict_risk
    from readmission.core.synthetic import generate_encounters
    from readmission.names import Artifact

    subject = f"version {version.name}'s model"
    frame = generate_encounters(SMOKE_PATIENTS, SMOKE_SEED)
    try:
        model = load_verified_model(version, Artifact.MODEL, env)
    except (ModelFileIntegrityError, UntrustedModelError, ModelCodeMissing):
        raise
    except Exception as error:
        return f"{subject} no longer loads: {type(error).__name__}: {error}"
    golden.verify_version(version, model)  # raises GoldenSampleMismatch (exit 8)
    try:
        risk = predict_risk(model, frame)
    except Exception as error:
        return f"{subject} no longer scores: {type(error).__name__}: {error}"
    if len(risk) != len(frame) or not np.all((risk >= 0) & (risk <= 1)):
        return f"{subject} returned risks outside [0, 1] or of the wrong length on test rows"
    return None


def _print_promotion(result: dict[str, Any]) -> None:
    previous = result.get("previous_holder")
    out.print(
        f"Version [bold]{result['model_version']}[/] of {result['model_name']} now holds "
        f"[bold]{result['target_stage']}[/] (run {result['run_name']})."
        + (f" Version {previous} was archived." if previous else "")
    )
    for reason in result["reasons"]:
        out.print(f"  ✓ {escape(reason)}", highlight=False)


def _print_approvals(result: dict[str, Any]) -> None:
    for approval in result["approvals"]:
        out.print(
            f"Approval of version {result['model_version']} for {result['target_stage']} by "
            f"[bold]{escape(approval['approver'])}[/] recorded ({approval['source']}).",
            highlight=False,
        )
    for refusal in result["denied"]:
        out.print(f"[red]✗[/] {escape('; '.join(refusal['reasons']))}", highlight=False)


def _print_countersignature(result: dict[str, Any]) -> None:
    out.print(
        f"Countersignature of an override for version {result['model_version']} to "
        f"{result['target_stage']} by [bold]{escape(result['countersigner'])}[/] recorded "
        f"({result['source']}, audit record {result['seq']}). The requester may now promote "
        "with --override; the countersignature is used up by that promotion.",
        highlight=False,
    )
    for verdict in result.get("degraded_outcomes_seen") or []:
        out.print(
            f"It goes past version {result['model_version']}'s standing degraded outcome verdict "
            f"(audit record {verdict['seq']}, as of {verdict.get('as_of')}, labels SHA-256 "
            f"{str(verdict.get('labels_sha256') or '')[:16]}…), and only that one: a verdict "
            "recorded later needs a new countersignature.",
            highlight=False,
        )


def _print_withdrawal(result: dict[str, Any]) -> None:
    records = ", ".join(str(seq) for seq in result["withdrawn"])
    out.print(
        f"Withdrawn by [bold]{escape(result['actor'])}[/]: audit record(s) {records} no longer "
        f"count for version {result['model_version']} to {result['target_stage']} (recorded as "
        f"audit record {result['seq']}). A promotion needs a new approval or countersignature.",
        highlight=False,
    )


def _print_rollback(result: dict[str, Any]) -> None:
    out.print(
        f"Version [bold]{result['model_version']}[/] of {result['model_name']} holds "
        f"[bold]{result['target_stage']}[/] again; version {result['replaced']} was archived."
    )


def _history_at(model_name: str, stages: list[str], at: str, as_json: bool) -> None:
    from mlops_platform.governance.history_at import HistoryTimeError, parse_moment, stages_at
    from mlops_platform.governance.model_stages import read_history, stage_records

    try:
        moment = parse_moment(at)
    except HistoryTimeError as error:
        raise CliError(str(error), ExitCode.BAD_INPUT) from error
    holders = stages_at(read_history(model_name, stages), stage_records(model_name, stages), moment)
    payload = {"model_name": model_name, "at": moment.isoformat(), "stages": holders}

    def human() -> None:
        for name, holder in holders.items():
            if holder is None:
                out.print(f"{name}: no version at {moment.isoformat()}", highlight=False)
                continue
            policy = holder["policy_sha256"] or "not recorded (event predates policy hashes)"
            out.print(
                f"{name}: version {holder['model_version']} (since {holder['since'][:19]}, by "
                f"{holder['started_by']} of {holder['actor']}, seq {holder['seq']}); policy "
                f"sha256 {policy}",
                highlight=False,
            )

    emit(payload, as_json, human)


def _print_history(payload: dict[str, Any]) -> None:
    for stage, tenures in payload["stages"].items():
        table = Table(title=f"{payload['model_name']}: {stage}")
        for column in ("version", "since", "until", "by", "actor", "seq"):
            table.add_column(column)
        for tenure in tenures:
            table.add_row(
                *(
                    escape(value)
                    for value in (
                        tenure["model_version"],
                        tenure["since"][:19],
                        (tenure["until"] or "now")[:19],
                        tenure["started_by"],
                        tenure["actor"],
                        str(tenure["seq"]),
                    )
                )
            )
        out.print(table)

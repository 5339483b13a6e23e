"""`mlops deploy`: reconcile a stage with its deployment manifest (deploy/<stage>.yaml).

The manifest is the desired state; the registry is the actual one. When they agree nothing
happens (exit 0). When they differ the difference is printed and applied through the same
approval policy and gates as `mlops promote`, using the promotion commands' own functions: with
--from-github-environment the reviewers GitHub verified are recorded as approvals first. A refusal
exits with DENIED (5), like `mlops promote`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_cli.common import JsonOption, console_logs_on_stderr, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode
from mlops_cli.promotion import ActorOption


@reports_errors
def deploy(
    manifest: Annotated[
        Path, typer.Option(help="Deployment manifest, e.g. deploy/production.yaml.")
    ],
    reason: Annotated[
        str | None, typer.Option(help="Why; default: the manifest's change.reason.")
    ] = None,
    actor: ActorOption = None,
    from_github_environment: Annotated[
        str | None,
        typer.Option(
            help="In GitHub Actions: first record the reviewers who approved this run's "
            "deployment to this GitHub environment (as `mlops approve` does)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Current data to re-judge on. Default: READMISSION_DATA, else download."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the plan.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a stage serve what its manifest says, through the usual approvals and gates.

    Idempotent: a no-op when the stage already serves the manifest's version.

    Example: mlops deploy --manifest deploy/staging.yaml
    """
    with console_logs_on_stderr(as_json):
        result = reconcile(manifest, reason, actor, from_github_environment, data, dry_run)
    if result["applied"] or not result["needed"] or dry_run:
        emit(result, as_json, lambda: _print(result))
        return
    if as_json:
        emit(result, True, lambda: None)
    reasons = "\n".join(f"  - {reason}" for reason in result["reasons"])
    gate = bool((result.get("promotion") or {}).get("failed_checks"))
    raise CliError(
        f"deployment of {result['model_name']} version {result['desired_version']} to "
        f"{result['stage']} {'stopped by the gate' if gate else 'denied by policy'}:\n{reasons}",
        ExitCode.GATE_FAILED if gate else ExitCode.DENIED,
    )


def reconcile(
    path: Path,
    reason: str | None,
    actor: str | None,
    github_environment: str | None,
    data: Path | None,
    dry_run: bool,
) -> dict[str, Any]:
    """Plan, and unless in place or a dry run, approve (GitHub reviewers) and promote."""
    from pydantic import ValidationError

    from mlops_cli import commands
    from mlops_cli.promotion import check_typed_text, record_approvals, run_promotion
    from mlops_platform.config import validation_issues
    from mlops_platform.governance import model_stages
    from mlops_platform.governance.promotion import PromotionOrder, stage_environment
    from mlops_platform.infra.deployment import (
        load_manifest,
        manifest_model_problem,
        plan_deployment,
    )
    from mlops_platform.trust.identity import resolve_actor
    from readmission.names import MODEL_NAME

    manifest = load_manifest(path)
    check_typed_text(reason=reason or manifest.change.reason, ticket=manifest.change.ticket)
    commands.ensure_stack()
    if manifest.model.model_sha256 is not None:
        named = model_stages.find_version(MODEL_NAME, manifest.model.version)
        # The file its verified training record signed, never ZenML's editable registration.
        signed = model_stages.recorded_training(named).details.get("model_sha256")
        problem = manifest_model_problem(manifest, signed)
        if problem:
            raise CliError(problem, ExitCode.DENIED)
    holder = model_stages.stage_holder(MODEL_NAME, manifest.stage)
    # "Already serves" only for the holder the verified trail records (exit 9 for one moved or
    # emptied outside `mlops promote`: ZenML's stage is writable by any ZenML user).
    model_stages.require_recorded_stage(MODEL_NAME, manifest.stage)
    plan = plan_deployment(manifest, MODEL_NAME, holder.name if holder else None)
    result: dict[str, Any] = {
        "manifest": str(path),
        **plan.as_dict(),
        "needed": not plan.in_place,
        "dry_run": dry_run,
        "applied": False,
        "reasons": [],
    }
    if plan.in_place or dry_run:
        return result
    who = resolve_actor(stage_environment(manifest.stage), actor)
    try:
        order = PromotionOrder(
            reason=reason or manifest.change.reason,
            ticket=manifest.change.ticket,
            run_url=who.run_url,
        )
    except ValidationError as error:
        problems = "; ".join(validation_issues(error))
        raise CliError(f"invalid deployment request: {problems}", ExitCode.USAGE) from error
    if github_environment is not None:
        approvals = record_approvals(
            plan.desired_version, plan.stage, order.reason, actor, github_environment
        )
        result["approvals"] = approvals
        if not approvals["approved"]:
            return {**result, "reasons": approvals["reasons"]}
    promotion = run_promotion(plan.desired_version, plan.stage, who, order, data)
    return {
        **result,
        "applied": bool(promotion["promoted"]),
        "reasons": promotion["reasons"],
        "promotion": promotion,
    }


def _print(result: dict[str, Any]) -> None:
    stage, desired = result["stage"], result["desired_version"]
    if not result["needed"]:
        out.print(f"{stage} already serves version {desired} ({result['manifest']}); no change.")
        return
    out.print(f"{stage}: version {result['current_version'] or '(none)'} -> {desired}")
    if result["dry_run"]:
        out.print("Dry run: nothing was changed.")
    elif result["applied"]:
        out.print(f"Version [bold]{desired}[/] now serves {stage}.")

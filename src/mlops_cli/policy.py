"""`mlops policy show` and `mlops gate`: read the gate policy and re-judge a version, moving nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlops_cli.common import Env, EnvOption, JsonOption, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode

app = typer.Typer(help="Inspect the model gate policy.", no_args_is_help=True)


@app.command("show")
@reports_errors
def show(env: EnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Print the effective gate thresholds of ENV, the file each value comes from, and the
    policy's SHA-256 that gate, promotion and rollback records name (policy_sha256).

    Example: mlops policy show --env production
    """
    from mlops_platform.governance.history_at import effective_policy_sha256
    from mlops_platform.governance.policy.layers import effective_thresholds

    thresholds = effective_thresholds(env.value)
    # The hash every gate, promotion and rollback record of ENV carries (`policy_sha256`): a
    # reviewer matches a record with the policy of a commit by running this at that commit.
    digest = effective_policy_sha256(env.value)
    payload = {
        "environment": env.value,
        "policy_sha256": digest,
        "thresholds": [vars(t) for t in thresholds],
    }

    def human() -> None:
        table = Table(title=f"Gate policy of {env.value}")
        for column in ("threshold", "value", "from"):
            table.add_column(column)
        for threshold in thresholds:
            table.add_row(threshold.key, escape(str(threshold.value)), threshold.source)
        out.print(table)
        out.print(
            f"policy_sha256 {digest} (gate and approval policy of {env.value}, as records "
            "name it; `git checkout <commit>` and run this again to match an older record)",
            highlight=False,
        )

    emit(payload, as_json, human)


@reports_errors
def gate(
    version: Annotated[str, typer.Option("--version", help="Model version number, or latest.")],
    env: EnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Re-judge a stored model version under today's policy of ENV; nothing moves, nothing is recorded.

    Scores the version's own model on the platform holdout its training set aside; compares with
    today's holder of the stage ENV promotes to. Exit 4 if the version would fail today.

    Example: mlops gate --version 3 --env production
    """
    from mlops_cli.commands import training_config
    from mlops_platform.governance.model_stages import find_version
    from mlops_platform.names import REJECTED_TAG
    from mlops_platform.steps.validate_model import decision_record, rejudge_stored
    from readmission.names import MODEL_NAME
    from readmission.pipelines.evaluation_data import readmission_contract

    found = find_version(MODEL_NAME, version)
    if "registration" not in (found.run_metadata or {}):
        # A version the training gate rejected (or whose run failed) was never registered: it
        # has no signed model file to judge, and that is not a tampered record.
        rejected = REJECTED_TAG in {t.name for t in found.tags}
        raise CliError(
            f"version {found.name} of {MODEL_NAME} was "
            + ("rejected by its training gate" if rejected else "never registered")
            + ", so it has no signed model file to re-judge; `mlops history` shows why. Train "
            "a new version.",
            ExitCode.NOT_FOUND,
        )
    threshold = training_config(env.value, None).evaluation.operating_threshold
    try:
        decision, metrics, champion = rejudge_stored(
            found, env.value, readmission_contract(threshold)
        )
    except KeyError as error:
        raise CliError(
            f"version {found.name} of {MODEL_NAME} has no stored platform holdout to re-judge "
            f"on ({error}); only versions trained with the platform holdout can be re-judged: "
            "retrain it.",
            ExitCode.NOT_FOUND,
        ) from error
    payload: dict[str, Any] = {
        "model_name": MODEL_NAME,
        "model_version": found.name,
        "stage": found.stage,
        "environment": env.value,
        "decision": decision_record(decision),
        "metrics": metrics,
        "champion": champion,
        "moved": False,
    }
    emit(payload, as_json, lambda: print_decision(payload))
    if not decision.passed:
        raise CliError(
            f"version {found.name} would not pass the {env.value} gate today "
            f"({len(decision.failures())} failed check(s)); nothing was moved.",
            ExitCode.GATE_FAILED,
        )


def print_decision(payload: dict[str, Any]) -> None:
    decision = payload["decision"]
    verdict = "[green]passes[/]" if decision["passed"] else "[red]fails[/]"
    stage = f"holds {payload['stage']}" if payload["stage"] else "holds no stage"
    out.print(
        f"Version [bold]{payload['model_version']}[/] ({stage}) {verdict} the "
        f"{payload['environment']} gate under today's policy. Nothing was moved."
    )
    print_checks(decision["checks"])


def print_checks(checks: list[dict[str, Any]], console: Console = out) -> None:
    table = Table()
    for column in ("check", "value", "limit", "result", "detail"):
        table.add_column(column)
    for check in checks:
        value, limit = check["value"], check["limit"]
        table.add_row(
            check["name"],
            "-" if value is None else f"{value:.4g}",
            "-" if limit is None else f"{check['comparison']} {limit:.4g}",
            "[green]pass[/]" if check["passed"] else "[red]FAIL[/]",
            escape(str(check["detail"])),
        )
    console.print(table)

"""`mlops`: the one entry point used by people, the Makefile, the workflows, the notebook and the tests.

Commands are thin: they parse options, call library functions and turn known errors into one line on
stderr with a distinct exit code (see `mlops_cli.errors.ExitCode`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from mlops_cli import (
    audit,
    dashboard,
    demo,
    deploy,
    errors,
    inference,
    model,
    monitor,
    policy,
    promotion,
    report,
    serve,
    server,
    versions,
)
from mlops_cli.common import (
    Env,
    EnvOption,
    JsonOption,
    console_logs_on_stderr,
    emit,
    out,
    reports_errors,
)
from mlops_cli.errors import CliError, ExitCode, exit_code_table
from mlops_cli.stack import stack_app
from mlops_platform import workspace
from mlops_platform.infra import store_health
from mlops_platform.runtime.console import DEBUG_ENV


class _RootGroup(TyperGroup):
    """The root command, keeping the arguments it was given (`_given_args`): a failure of the
    root's own options (`--as`) answers in JSON when the command asked for JSON."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta[_GIVEN_ARGS] = list(args)
        return super().parse_args(ctx, args)


_GIVEN_ARGS = "mlops.given_args"

app = typer.Typer(
    name="mlops",
    cls=_RootGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback(
    help="Governed MLOps for the 30-day readmission model (ZenML + MLflow).",
    epilog="\b\nExit codes:\n" + exit_code_table(),
)
def main_options(
    ctx: typer.Context,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show tracebacks and ZenML's step-failure logs (same as MLOPS_DEBUG=1).",
        ),
    ] = False,
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Act as NAME: authenticate to the project ZenML server (`mlops server start`) "
            "with NAME's own API key; refused unless the server names that key's account NAME. "
            "Staging and production record the server's answer as verified.",
        ),
    ] = None,
) -> None:
    if verbose:
        os.environ[DEBUG_ENV] = "1"
    # Stopping, status or cleaning up (the server, the dashboard, a service) and help read no
    # store; starting one serves this state's stores, so it is checked like any command.
    given = ctx.meta.get(_GIVEN_ARGS, [])
    group = ctx.invoked_subcommand
    after = given[given.index(group) + 1 :] if group in given else []
    starting = after[:1] == ["start"]
    quiet = (group in {"server", "dashboard", "serve"} and not starting) or bool(
        {"--help", "-h"} & set(given)
    )
    if not quiet:
        _refuse_unusable_state(ctx)
    from mlops_platform.infra.server import ServerError, stop_acting, use_account

    if as_name is None:
        stop_acting()  # an earlier in-process command's `--as` (the demo) does not carry over
        return

    try:
        use_account(as_name)
    except ServerError as error:
        _refuse(ctx, str(error), ExitCode.CONFIG)


def _refuse_unusable_state(ctx: typer.Context) -> None:
    """Refuse before ZenML or MLflow opens (and so creates) anything: a ZenML server that
    cannot be reached, a named state directory that does not exist, a damaged store file,
    stores outside a moved or copied state directory, a missing MLflow store the audit trail
    shows existed."""
    server_problem = store_health.unreachable_zenml_server()
    if server_problem is not None:
        url = os.environ["ZENML_STORE_URL"].strip()
        _refuse(ctx, errors.unreachable_server_message(url, server_problem), ExitCode.CONFIG)
    named = os.environ.get("MLOPS_STATE_DIR")
    creates = ctx.invoked_subcommand in {"setup", "stack", "demo"}
    if named and not creates and not workspace.state_dir().is_dir():
        _refuse(ctx, errors.missing_state_dir_message(named), ExitCode.CONFIG)
    damaged = store_health.damaged_local_stores()
    if damaged:
        _refuse(ctx, errors.damaged_stores_message(damaged), ExitCode.AUDIT_BROKEN)
    outside = store_health.stores_outside_state()
    if outside:
        message = errors.stores_outside_state_message(workspace.state_dir(), outside)
        _refuse(ctx, message, ExitCode.CONFIG)
    # `mlops setup` opens no MLflow store (it registers the stack that names it).
    mlflow_store = (
        None if ctx.invoked_subcommand == "setup" else store_health.missing_mlflow_store()
    )
    if mlflow_store is not None:
        _refuse(ctx, errors.missing_mlflow_message(mlflow_store), ExitCode.AUDIT_BROKEN)


def _refuse(ctx: typer.Context, message: str, code: ExitCode) -> None:
    """A failure of the root's own checks: one message, and with --json the JSON object every
    command's failure prints (`common.reports_errors`)."""
    from mlops_cli.common import err

    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if "--json" in ctx.meta.get(_GIVEN_ARGS, []):
        sys.stdout.write(json.dumps({"error": message, "exit_code": int(code)}) + "\n")
    raise typer.Exit(int(code))


@app.command()
@reports_errors
def setup(env: EnvOption = Env.LOCAL) -> None:
    """Register and activate the stack for ENV from configs/stacks/ENV.yaml (idempotent).

    Locally it also creates the local signing key pair under the state directory, once, and the
    local audit trail (`mlops audit init --env local`).
    """
    from mlops_cli import commands

    name = commands.setup_stack(env.value)
    out.print(f"Stack [bold]{name}[/] is registered and active (state in {workspace.state_dir()}).")
    if env is Env.LOCAL:
        key = commands.setup_local_keys()
        out.print(f"Local signing key [bold]{key}[/] (in {workspace.state_dir() / 'keys'}).")
        trail = commands.setup_local_trail()
        out.print(f"Local audit trail ready ({trail}).", highlight=False)


@app.command()
@reports_errors
def train(
    env: EnvOption = Env.LOCAL,
    data: Annotated[
        Path | None,
        typer.Option(help="CSV, CSV.gz or UCI zip. Default: READMISSION_DATA, else download."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who starts the run (default: you).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one setting for this run, SECTION.KEY=VALUE (repeatable); "
            "the keys and defaults are in configs/base/training.yaml.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train, validate and register a model version.

    Example: mlops train --env local --data ../shared/data/uci-diabetes-130/diabetic_data_dev.csv.gz

    Example: mlops train --set model.learning_rate=0.1 --set split.seed=7
    """
    from mlops_cli import commands

    with console_logs_on_stderr(as_json):
        summary = commands.train(env.value, data, actor, set_ or [])
    emit(summary, as_json, lambda: commands.print_training_summary(out, summary))


@app.command()
@reports_errors
def check(as_json: JsonOption = False) -> None:
    """Governance check run by CI: required platform steps in every model pipeline, and every
    environment's policy complete and loadable."""
    from mlops_cli import commands

    findings = commands.governance_findings()
    payload = {"passed": not findings, "findings": [vars(f) for f in findings]}
    emit(payload, as_json, lambda: commands.print_findings(out, findings))
    if findings:
        raise CliError(
            f"{len(findings)} governance rule(s) broken; fix them before merging.",
            ExitCode.CHECK_FAILED,
        )


app.add_typer(stack_app)
app.add_typer(policy.app, name="policy")
app.command("gate")(policy.gate)
app.command("versions")(versions.versions)
app.command("compare")(versions.compare)
app.command("deploy")(deploy.deploy)
app.command("promote")(promotion.promote)
app.command("approve")(promotion.approve)
app.command("countersign")(promotion.countersign)
app.command("withdraw")(promotion.withdraw)
app.command("rollback")(promotion.rollback)
app.command("history")(promotion.history)
app.add_typer(audit.app, name="audit")
app.add_typer(model.app, name="model")
app.command("infer")(inference.infer)
app.command("lineage")(inference.lineage)
app.add_typer(monitor.app, name="monitor")
app.add_typer(serve.app, name="serve")
app.command("report")(report.report)
app.add_typer(dashboard.app, name="dashboard")
app.add_typer(server.app, name="server")
app.command("demo")(demo.demo)


def main() -> None:
    """Console-script entry: isolate local state before ZenML is imported, then run the app."""
    workspace.activate()
    app()

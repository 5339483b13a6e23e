"""`mlops serve start|stop|status`: the production model as a ZenML pipeline deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_cli.common import (
    Env,
    EnvOption,
    JsonOption,
    console_logs_on_stderr,
    emit,
    out,
    reports_errors,
)
from mlops_platform.workspace import state_dir

app = typer.Typer(help="Serve the production model over HTTP (a ZenML pipeline deployment).")
DEFAULT_LOG = "prediction-log"


@app.command("start")
@reports_errors
def start(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="Also score every request with the staging holder (logged only)."
        ),
    ] = False,
    log_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir", help=f"Prediction log directory. Default: $MLOPS_STATE_DIR/{DEFAULT_LOG}."
        ),
    ] = None,
    env: EnvOption = Env.LOCAL,
    actor: Annotated[
        str | None, typer.Option(help="Who starts the service (default: you).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve the version that holds production; refuses (exit 6) when none does.

    POST {"encounters": [{<the 50 UCI columns>}, ...]} to the `endpoint` printed (…/score).

    Example: mlops serve start --shadow --json
    """
    with console_logs_on_stderr(as_json):
        status = start_service(env.value, port, shadow, log_dir, actor)
    emit(status, as_json, lambda: _print(status))


@app.command("stop")
@reports_errors
def stop(env: EnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Stop the service; the prediction log is flushed before the process exits.

    With no service running, records the end of any service the trail records as started and
    never stopped (killed or crashed; `mlops check` names it), as the acting person; exit 6 when
    there is none either.

    Example: mlops serve stop
    """
    from mlops_platform.serving.deploy import ServiceNotFoundError, stop_service
    from mlops_platform.serving.ended import record_ends
    from mlops_platform.trust.identity import resolve_actor

    with console_logs_on_stderr(as_json):
        try:
            status = stop_service(env.value)
        except ServiceNotFoundError:
            ended = record_ends(env.value, resolve_actor(env.value))
            if not ended:
                raise
            status = {"status": "not running", "ended": ended}
        else:
            # A deployment row left by a killed process (attack review: the first stop deleted
            # it and recorded nothing): its start is closed now too; a live process is never.
            if ended := record_ends(env.value, resolve_actor(env.value)):
                status = {**status, "ended": ended}
    if status.get("status") == "not running":
        emit(status, as_json, lambda: _print_ended(status["ended"]))
        return
    emit(status, as_json, lambda: _print(status))


def _print_ended(ended: list[dict[str, Any]]) -> None:
    for end in ended:
        out.print(
            f"No service runs. The service started at audit record {end['started_seq']} never "
            f"recorded its stop (killed or crashed); its end is recorded (record {end['seq']}). "
            f"Log parts it wrote in {end['log_dir']} were never recorded and are not used.",
            highlight=False,
        )


@app.command("status")
@reports_errors
def status(env: EnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Where the service listens (`endpoint`) and whether it runs; exit 6 when none runs.

    Example: mlops serve status --json
    """
    from mlops_platform.serving.deploy import service_status

    with console_logs_on_stderr(as_json):
        found = service_status(env.value)
    emit(found, as_json, lambda: _print(found))


@app.command("compare")
@reports_errors
def compare(
    log_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir",
            help="Only this prediction log (one a stopped service recorded). Default: every "
            "log a stopped service of the environment recorded.",
        ),
    ] = None,
    env: EnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Shadow against served scores, per shadow (staging) version: band agreement, mean
    difference and rank correlation, for the promotion review of that version.

    Reads only the log parts whose SHA-256 a stopped service recorded in the verified audit
    trail (as the governance report does); a recorded part that changed is refused (exit 8).

    Example: mlops serve compare --json
    """
    from mlops_platform.monitoring.predictions import stopped_services
    from mlops_platform.reporting.governance_report import recorded_shadow_comparisons

    with console_logs_on_stderr(as_json):
        comparisons, note = recorded_shadow_comparisons(stopped_services(env.value), log_dir)
    if not comparisons and not note:
        # Day-one review: run beside a running service, it printed nothing that said why.
        note = (
            "No stopped service with --shadow recorded shadow scores yet: a service records its "
            "log parts when it stops (`mlops serve stop`), and only those are compared."
        )
    result = {"shadow_versions": comparisons, "note": note}
    emit(result, as_json, lambda: _print_comparisons(comparisons, note))


def _print_comparisons(comparisons: dict[str, dict[str, Any]], note: str) -> None:
    if not comparisons:
        out.print("No recorded shadow scores to compare.")
    for version, result in comparisons.items():
        out.print(
            f"[bold]shadow version {version}[/bold] against served "
            f"{', '.join(result['served_versions'])}: {result['n_encounters']} encounters, "
            f"{result['requests']} requests"
        )
        out.print(
            f"  band agreement {result['agreement']:.3f}  mean difference "
            f"{result['mean_difference']:+.4f}  rank correlation {result['rank_correlation']:.3f}"
        )
    if note:
        out.print(note)


def start_service(
    env: str, port: int | None, shadow: bool, log_dir: Path | None, actor: str | None
) -> dict[str, Any]:
    from mlops_cli.commands import ensure_stack, setup_stack, training_config
    from mlops_platform.serving.deploy import start_service as deploy
    from mlops_platform.trust.identity import resolve_actor
    from readmission.names import MODEL_NAME
    from readmission.pipelines.realtime import readmission_realtime, realtime_contract

    who = resolve_actor(env, actor)  # the environment's identity rules, never a typed name
    evaluation = training_config(env, None).evaluation
    if env == "local":
        setup_stack("local")  # idempotent: adds the deployer to a stack set up before it existed
    else:
        ensure_stack()
    return deploy(
        readmission_realtime,
        realtime_contract(evaluation.operating_threshold),
        env=env,
        actor=who,
        model_name=MODEL_NAME,
        log_dir=log_dir or state_dir() / DEFAULT_LOG,
        port=port,
        shadow=shadow,
    )


def _print(status: dict[str, Any]) -> None:
    out.print(f"[bold]{status['deployment']}[/bold]: {status['status']}")
    if status.get("endpoint"):
        out.print(f"  endpoint  {status['endpoint']}")
        out.print(f"  docs      {status['docs']}")

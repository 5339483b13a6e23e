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

    Example: mlops serve stop
    """
    from mlops_platform.serving.deploy import stop_service

    with console_logs_on_stderr(as_json):
        status = stop_service(env.value)
    emit(status, as_json, lambda: _print(status))


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
            "--log-dir", help=f"Prediction log directory. Default: $MLOPS_STATE_DIR/{DEFAULT_LOG}."
        ),
    ] = None,
    env: EnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Shadow against served scores from the prediction log: band agreement, mean difference and
    rank correlation, for the promotion review of the staging version.

    Example: mlops serve compare --json
    """
    from mlops_cli.commands import training_config
    from mlops_platform.serving.log import read_log
    from mlops_platform.serving.shadow import compare_log
    from readmission.core.uci import ENCOUNTER_ID
    from readmission.pipelines.batch_inference import RISK_COLUMN

    log = read_log(log_dir or state_dir() / DEFAULT_LOG).to_pandas()
    threshold = training_config(env.value, None).evaluation.operating_threshold
    result = compare_log(log, ENCOUNTER_ID, RISK_COLUMN, threshold)
    emit(result, as_json, lambda: out.print(result))


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

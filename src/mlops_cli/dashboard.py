"""`mlops dashboard start|stop`: the local ZenML dashboard and the MLflow UI (used by `make dashboard`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_cli.common import JsonOption, emit, out, reports_errors
from mlops_platform import workspace

app = typer.Typer(
    name="dashboard",
    help="Local dashboards on 127.0.0.1: ZenML (runs, artifacts, reports) and the MLflow UI.",
    no_args_is_help=True,
)


def _pid_file() -> Path:
    return workspace.state_dir() / "mlflow-ui.pid"


@app.command("start")
@reports_errors
def start(
    port: Annotated[int, typer.Option(help="ZenML server port.")] = 8237,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port.")] = 5000,
    as_json: JsonOption = False,
) -> None:
    """Start the ZenML server with its dashboard and the MLflow UI; print where to look.

    Example: mlops dashboard start
    """
    from mlops_platform.infra import dashboard, server

    dashboard.record_ports(workspace.state_dir(), port, mlflow_port)
    project = server.read_record() if server.status()["running"] else None
    if project is not None:
        # The project server (`mlops server start`): the dashboard of the same accounts and runs.
        zenml_url = project.url
        dashboard.skip_onboarding(zenml_url, server.admin_token(zenml_url))
    else:
        zenml_url = dashboard.start_zenml_server(port)
    mlflow_url = dashboard.start_mlflow_ui(
        workspace.mlflow_tracking_uri(), _pid_file(), mlflow_port
    )
    hints = dashboard.where_to_look(zenml_url, mlflow_url)
    if project is not None:
        hints.append(
            f"ZenML login: user {server.ADMIN}, password `admin_password` in "
            f"{server.server_dir() / server.SECRETS} (the project server has authentication on)."
        )
    payload = {"zenml_url": zenml_url, "mlflow_url": mlflow_url, "where_to_look": hints}
    emit(
        payload,
        as_json,
        lambda: [out.print(line, highlight=False, soft_wrap=True) for line in hints],
    )


@app.command("stop")
@reports_errors
def stop() -> None:
    """Stop the ZenML server and the MLflow UI started by `mlops dashboard start` (same
    MLOPS_STATE_DIR), and check that their ports are closed."""
    from mlops_platform.infra import dashboard

    result = dashboard.stop_all(workspace.state_dir(), _pid_file())
    ports = result["ports"]
    out.print(
        f"Dashboards of {workspace.state_dir()} stopped: nothing listens on "
        f"{dashboard.HOST}:{ports['zenml']} (ZenML) or {dashboard.HOST}:{ports['mlflow']} (MLflow)."
    )

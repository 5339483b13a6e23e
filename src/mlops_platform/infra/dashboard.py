"""Local dashboards: the ZenML server with its bundled dashboard, and the MLflow UI, on loopback.

The ZenML server is started with `zenml login --local` against the client config in the
environment (the project's own config after `workspace.activate()`); it serves the same SQLite
store the CLI writes. A fresh dashboard first asks for account details; `skip_onboarding` marks
the survey done through the REST API so a demo (or a headless browser) lands on the runs page.
The MLflow UI runs in its own process group, recorded in a pid file so `stop_mlflow_ui` ends it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

ZENML_PORT: Final = 8237
MLFLOW_PORT: Final = 5000
HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 180.0
RUNS_PAGE: Final = "/projects/default/runs"
WHERE_TO_LOOK: Final = (
    "ZenML runs: {zenml}{runs}  (open a training run, step validate_model, artifact "
    "model_report, tab Visualization: the model report).",
    "MLflow UI: {mlflow}/#/models  (model versions, rejected ones tagged 'rejected', and the "
    "staging/production aliases; the open-source ZenML Models page is a ZenML Pro feature and "
    "lists no models).",
    "Governance report for auditors: mlops report --out .mlops/report",
)


class DashboardError(RuntimeError):
    """A dashboard process did not start or stop as expected."""


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False, env=os.environ
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise DashboardError(
            f"{what} failed (exit {done.returncode}): {' | '.join(tail)}. "
            "Run the command by hand to see the full output."
        )


def start_zenml_server(port: int = ZENML_PORT) -> str:
    """Start the local ZenML server (and dashboard) on loopback; return its URL."""
    _run(
        [_bin("zenml"), "login", "--local", "--port", str(port)],
        f"`zenml login --local --port {port}`",
    )
    url = f"http://{HOST}:{port}"
    skip_onboarding(url)
    return url


def stop_zenml_server() -> None:
    _run([_bin("zenml"), "logout", "--local"], "`zenml logout --local`")


def _request(url: str, data: bytes | None, headers: dict[str, str], method: str) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def api_token(url: str) -> str:
    """A token for the default user of a local (NO_AUTH) server."""
    form = urllib.parse.urlencode({"username": "default", "password": ""}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return str(_request(f"{url}/api/v1/login", form, headers, "POST")["access_token"])


def api_get(url: str, path: str, token: str) -> Any:
    return _request(f"{url}/api/v1{path}", None, {"Authorization": f"Bearer {token}"}, "GET")


def skip_onboarding(url: str, token: str | None = None) -> None:
    """Mark the dashboard's first-visit survey as done (email_opted_in only works here)."""
    body = {
        "email_opted_in": False,
        "user_metadata": {"finished_onboarding_survey": True, "awareness_channels": ["other"]},
    }
    bearer = token or api_token(url)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    _request(f"{url}/api/v1/current-user", json.dumps(body).encode(), headers, "PUT")


def start_mlflow_ui(tracking_uri: str, pid_file: Path, port: int = MLFLOW_PORT) -> str:
    """Start `mlflow ui` in the background (own process group), wait for its port, return its URL."""
    url = f"http://{HOST}:{port}"
    if pid_file.exists() and port_open(port):
        return url
    if port_open(port):
        raise DashboardError(
            f"Port {port} on {HOST} is taken by another program; stop it or free the port."
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log = pid_file.with_suffix(".log").open("ab")
    process = subprocess.Popen(
        [
            _bin("mlflow"),
            "ui",
            "--backend-store-uri",
            tracking_uri,
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(process.pid), encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_mlflow_ui(pid_file)
            raise DashboardError(
                f"The MLflow UI did not start on port {port}; see {pid_file.with_suffix('.log')}."
            )
        time.sleep(0.5)
    return url


def stop_mlflow_ui(pid_file: Path) -> bool:
    """End the MLflow UI process group recorded in `pid_file`; False if none was running."""
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text(encoding="utf-8").strip())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def where_to_look(zenml_url: str, mlflow_url: str) -> list[str]:
    return [
        line.format(zenml=zenml_url, mlflow=mlflow_url, runs=RUNS_PAGE) for line in WHERE_TO_LOOK
    ]


PORTS_FILE: Final = "dashboard-ports.json"
STOP_TIMEOUT_S: Final = 30.0


def record_ports(state_dir: Path, zenml_port: int, mlflow_port: int) -> None:
    """Remember which ports `start` used, so `stop` can check they are really closed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / PORTS_FILE).write_text(
        json.dumps({"zenml": zenml_port, "mlflow": mlflow_port}), encoding="utf-8"
    )


def recorded_ports(state_dir: Path) -> dict[str, int]:
    path = state_dir / PORTS_FILE
    if not path.is_file():
        return {"zenml": ZENML_PORT, "mlflow": MLFLOW_PORT}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {"zenml": int(raw["zenml"]), "mlflow": int(raw["mlflow"])}


def stop_all(state_dir: Path, pid_file: Path) -> dict[str, Any]:
    """Stop both UIs of `state_dir`, then check their ports really closed; raise if one did not."""
    ports = recorded_ports(state_dir)
    stop_zenml_server()
    mlflow_was_running = stop_mlflow_ui(pid_file)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(port_open(p) for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    listening = {name: port for name, port in ports.items() if port_open(port)}
    if listening:
        where = ", ".join(f"{name} on {HOST}:{port}" for name, port in listening.items())
        raise DashboardError(
            f"Still listening after stop: {where} (state directory {state_dir}). It was started "
            "with another MLOPS_STATE_DIR, or by another program: run `make dashboard-stop` with "
            "the MLOPS_STATE_DIR it was started with, or stop that program."
        )
    (state_dir / PORTS_FILE).unlink(missing_ok=True)
    return {"ports": ports, "closed": True, "mlflow_was_running": mlflow_was_running}

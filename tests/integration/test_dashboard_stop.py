"""`make dashboard-stop` honours MLOPS_STATE_DIR and reports the truth about the ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_platform import workspace
from mlops_platform.infra import dashboard

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _make(target: str, state: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "MLOPS_STATE_DIR": str(state),
        "ZENML_CONFIG_PATH": str(state / "zenml"),
    }
    return subprocess.run(
        ["make", "--no-print-directory", target, *variables],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_dashboard_stop_with_a_custom_state_dir_closes_the_ports(tmp_path: Path) -> None:
    state = tmp_path / "custom-state"
    mlflow_port, zenml_port = dashboard.free_port(), dashboard.free_port()
    dashboard.record_ports(state, zenml_port, mlflow_port)
    # A stand-in for the MLflow UI (starting the real one takes minutes on a loaded machine): a
    # loopback HTTP server in its own process group, recorded in the pid file as `start` does.
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", dashboard.HOST, str(mlflow_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (state / "mlflow-ui.pid").write_text(str(server.pid), encoding="utf-8")
    try:
        deadline = time.monotonic() + 60
        while not dashboard.port_open(mlflow_port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert dashboard.port_open(mlflow_port)

        stopped = _make("dashboard-stop", state)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)

    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not dashboard.port_open(mlflow_port)
    assert str(state) in stopped.stdout and f"{mlflow_port}" in stopped.stdout
    assert not (state / "mlflow-ui.pid").exists()
    assert server.wait(timeout=30) is not None


def test_dashboard_stop_says_so_when_a_port_is_still_listening(tmp_path: Path) -> None:
    state = tmp_path / "other-state"
    with socket.socket() as other_program:
        other_program.bind((dashboard.HOST, 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        dashboard.record_ports(state, port, dashboard.free_port())

        stopped = _make("dashboard-stop", state)

    assert stopped.returncode != 0
    assert f"Still listening after stop: zenml on {dashboard.HOST}:{port}" in stopped.stderr


def test_clean_removes_the_custom_state_dir_only(tmp_path: Path) -> None:
    state = tmp_path / "state-to-clean"
    (state / "zenml").mkdir(parents=True)
    default_state = workspace.PROJECT_ROOT / ".mlops"
    existed = default_state.exists()

    # The checkout's own test-output/ is where tests running in parallel write: not here.
    outputs = tmp_path / "test-output"
    outputs.mkdir()

    cleaned = _make("clean", state, f"OUTPUTS={outputs}")

    assert cleaned.returncode == 0, cleaned.stderr
    assert not state.exists()
    assert not outputs.exists()
    assert default_state.exists() == existed

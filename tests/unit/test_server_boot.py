"""The project server's process imports first and opens a store only when told which
(`infra.server_boot`): a launcher that fails, is interrupted or goes away leaves no server and no
database, and the port is the server's own from the start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform.infra import server


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    early, server._early = server._early, None
    if early is not None:
        early.abandon()


def _boot_process(state: Path) -> tuple[subprocess.Popen[bytes], int]:
    root = state / "server"
    root.mkdir(parents=True, exist_ok=True)
    with socket.socket() as listener:
        listener.bind((server.HOST, 0))
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_platform.infra.server_boot", str(listener.fileno())],
            env=server.server_environment(1),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=root,
            pass_fds=(listener.fileno(),),
        )
        return process, int(listener.getsockname()[1])


def test_without_a_store_to_serve_the_process_exits_and_opens_nothing(state: Path) -> None:
    process, _ = _boot_process(state)
    output, _ = process.communicate(b"", timeout=120)  # end of input: the launcher went away
    assert process.returncode == 0, output.decode(errors="replace")
    assert not list(state.rglob("*.db"))  # no store created or opened


def test_a_launcher_gone_before_it_kept_the_server_stops_the_server(state: Path) -> None:
    process, port = _boot_process(state)
    assert process.stdin is not None
    process.stdin.write(json.dumps({"store_url": f"sqlite:///{state / 'own.db'}"}).encode())
    process.stdin.write(b"\n")
    process.stdin.flush()
    url = f"http://{server.HOST}:{port}"
    deadline = time.monotonic() + 120
    while not server.healthy(url) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode(errors="replace")
        time.sleep(0.2)
    assert server.healthy(url)  # it served the store it was sent, on the socket it was given
    process.stdin.close()  # the launcher dies before recording it (kill -9, Ctrl-C)
    assert process.wait(timeout=30) == 0
    assert not server.healthy(url)


def test_a_store_that_cannot_be_prepared_stops_the_spawned_process(state: Path) -> None:
    spawned: list[int] = []

    def failing_store() -> str:
        spawned.append(server._early.process.pid if server._early else -1)
        raise server.ServerError("the store could not be migrated")

    server.boot_early()
    early = server._early
    assert early is not None
    with pytest.raises(server.ServerError, match="could not be migrated"):
        server.start(timeout=30, store_url=failing_store)
    assert early.process.wait(timeout=30) is not None  # it was the adopted one, and it ended
    assert server._early is None and spawned == [-1]  # adopted before the store was asked for
    assert server.read_record() is None  # nothing says a server runs
    assert not list(state.rglob("*.db"))


def test_an_interrupted_wait_stops_the_server_and_records_nothing(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.boot_early()
    early = server._early
    assert early is not None
    calls: list[str] = []

    def interrupted(url: str, timeout: float = 2.0) -> bool:
        calls.append(url)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the server starts
        return False

    monkeypatch.setattr(server, "healthy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        server.start(timeout=60, store_url=f"sqlite:///{state / 'own.db'}")
    assert early.process.wait(timeout=30) is not None
    assert server.read_record() is None


def test_the_port_is_held_for_the_server_from_the_spawn(state: Path) -> None:
    server.boot_early()
    early = server._early
    assert early is not None
    with socket.socket() as intruder, pytest.raises(OSError):
        intruder.bind((server.HOST, early.port))  # nobody else can take it meanwhile


def test_an_early_process_from_another_state_directory_is_not_adopted(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.boot_early()
    early = server._early
    assert early is not None
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "other"))
    assert server._adopt_early() is None
    assert early.process.wait(timeout=30) is not None  # let go, not left behind

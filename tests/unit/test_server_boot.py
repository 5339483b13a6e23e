"""The project server's process imports first and opens a store only when told which
(`infra.server_boot`): a launcher that fails or goes away leaves no server and no database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_platform.infra import server


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_without_a_store_to_serve_the_process_exits_and_opens_nothing(state: Path) -> None:
    root = state / "server"
    root.mkdir(parents=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_platform.infra.server_boot", server.HOST, "1"],
        env=server.server_environment(1),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    output, _ = process.communicate(b"", timeout=120)  # end of input: the launcher went away
    assert process.returncode == 0, output.decode(errors="replace")
    assert not list(state.rglob("*.db"))  # no store created or opened


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


def test_an_early_process_from_another_state_directory_is_not_adopted(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.boot_early()
    early = server._early
    assert early is not None
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "other"))
    try:
        assert server._adopt_early() is None
        assert early.process.wait(timeout=30) is not None  # let go, not left behind
    finally:
        server._early = None

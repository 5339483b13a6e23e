"""Shared fixtures: every test that touches ZenML or MLflow gets its own temporary state."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform import workspace
from mlops_platform.infra.settings import NOT_LOCAL_MARKERS
from mlops_platform.trust.events import init_trail
from mlops_platform.trust.signing import generate_local_keys

# Before any test module imports ZenML: sources resolve against src/ even in xdist workers.
os.environ.setdefault("ZENML_CUSTOM_SOURCE_ROOT", str(workspace.SOURCE_ROOT))

DATA_ENV = "READMISSION_DATA"
POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
NO_POSTGRES_BINARIES = 3  # exit status of scripts/postgres.sh when PostgreSQL cannot be installed
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "test-output"


@contextlib.contextmanager
def isolated(state: Path) -> Iterator[Path]:
    """Point ZenML, MLflow, the audit trail and the data cache at `state`; restore afterwards."""
    saved = dict(os.environ)
    os.environ["MLOPS_STATE_DIR"] = str(state)
    os.environ["ZENML_CONFIG_PATH"] = str(state / "zenml")
    # A developer's laptop, also on a CI runner: tests that need a runner set its markers.
    for name in (
        "ZENML_STORE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        *NOT_LOCAL_MARKERS,
    ):
        os.environ.pop(name, None)
    workspace.activate()
    workspace.reset_zenml_clients()
    generate_local_keys(state / "keys")  # as `mlops setup` does
    init_trail("local").close()  # as `mlops setup` does
    try:
        yield state
    finally:
        workspace.reset_zenml_clients()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def isolated_state(tmp_path: Path) -> Iterator[Path]:
    """A fresh ZenML config + SQLite store, MLflow store, audit trail and data cache for one test."""
    with isolated(tmp_path / "state") as state:
        yield state


@pytest.fixture(scope="module")
def module_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Like `isolated_state`, shared by the tests of one module (they run in order)."""
    with isolated(tmp_path_factory.mktemp("module") / "state") as state:
        yield state


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared development copy of the UCI file, if the environment points at it."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set; it must point at the real UCI development file.")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{DATA_ENV}={value} does not exist.")
    return path


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave evidence (screenshots, reports) for a human or CI to look at."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="module")
def zenml_server(module_state: Path) -> Iterator[str]:
    """The project ZenML server (authentication on) serving this module's own SQLite store, one
    account per person in the approval policy, created once; stopped after the module.

    The server serves the database the module's client already uses, as `mlops server start`
    does: people act with their own key (`mlops --as NAME`), which the server checks and names,
    and every command's ZenML work goes to that database directly. Yields its URL.
    """
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration

    from mlops_cli.server import people
    from mlops_platform.infra import server

    assert Client().zen_store.type.value == "sql"  # creates and migrates the module's store
    server.create_accounts_in_store(people())
    record = server.start(store_url=GlobalConfiguration().store_configuration.url)
    try:
        yield record.url
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a throwaway server; the directory comes from mkdtemp because pytest's temp root is
    private to root and the server runs as the unprivileged postgres user."""
    directory = tempfile.mkdtemp(prefix="audit-pg-")
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start", directory, str(_free_port())],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode == NO_POSTGRES_BINARIES:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server available: {done.stderr.strip()}")
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"scripts/postgres.sh start failed ({done.returncode}): {done.stderr.strip()}")
    print(f"\npostgres fixture started in {time.perf_counter() - started:.2f}s")
    try:
        yield done.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server at ``server_url``, dropped afterwards; yields its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"audit_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()

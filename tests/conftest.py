"""Shared fixtures: every test that touches ZenML or MLflow gets its own temporary state."""

from __future__ import annotations

import contextlib
import os
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

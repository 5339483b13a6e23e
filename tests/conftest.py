"""Shared fixtures: every test that touches ZenML or MLflow gets its own temporary state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform import workspace

DATA_ENV = "READMISSION_DATA"
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "test-output"


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ZenML config + SQLite store, MLflow store, audit trail and data cache for one test."""
    saved = dict(os.environ)
    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(state / "zenml"))
    for name in ("ZENML_STORE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    workspace.activate()
    workspace.reset_zenml_clients()
    yield state
    workspace.reset_zenml_clients()
    os.environ.clear()
    os.environ.update(saved)


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

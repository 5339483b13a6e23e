"""A state directory moved, copied, mistyped or missing its MLflow store stops every command
with one message before ZenML or MLflow creates anything (a day-one review: `mv` left ZenML
recreating an empty store at the old path, `cp -a` wrote the copy's approvals into the
original's ZenML database, a mistyped MLOPS_STATE_DIR left a stray store, and a missing MLflow
store was silently recreated)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform.trust.events import audit_trail
from mlops_platform.workspace import mlflow_tracking_uri, sqlite_path
from readmission.names import MODEL_NAME
from tests.conftest import isolated
from tests.integration.helpers import assert_one_clean_error, run_cli

ZENML_DB = Path("zenml") / "local_stores" / "default_zen_store" / "zenml.db"
MLFLOW_DB = Path("mlflow") / "mlflow.db"


def _fingerprint(state: Path) -> dict[str, str]:
    """The bytes of the state's stores, to show that a refused command changed none."""
    found = {}
    for relative in (ZENML_DB, MLFLOW_DB, Path("audit.db")):
        path = state / relative
        found[str(relative)] = (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        )
    return found


def _records(state: Path) -> int:
    trail = audit_trail("local", write=False)
    try:
        assert str(state) in trail.url
        return trail.count()
    finally:
        trail.close()


def _set_up(state: Path) -> None:
    """`mlops setup`, the MLflow store, and one record about the model in the local trail."""
    done = run_cli(state, "setup")
    assert done.returncode == 0, done.stderr
    from mlflow.tracking import MlflowClient

    MlflowClient(mlflow_tracking_uri()).search_experiments()  # creates the store, as a run does
    trail = audit_trail("local")
    try:
        trail.append(
            "pipeline_failed", "test-setup", model_name=MODEL_NAME, model_version="1", details={}
        )
    finally:
        trail.close()
    assert (state / MLFLOW_DB).is_file() and (state / ZENML_DB).is_file()


@pytest.fixture(scope="module")
def original(module_state: Path) -> Iterator[Path]:
    """A set-up state directory (ZenML store and stack, MLflow store, a record) at its place."""
    _set_up(module_state)
    verified = run_cli(module_state, "audit", "verify")
    assert verified.returncode == 0, verified.stderr  # whole where it was made
    yield module_state


def test_a_copied_state_directory_is_refused_and_the_original_untouched(
    original: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    before = _fingerprint(original)
    for command in (
        ("versions",),
        ("audit", "verify"),
        ("report", "--out", str(tmp_path / "r")),
        ("serve", "start"),  # serving reads the stores too
    ):
        run = run_cli(copy, *command)
        assert_one_clean_error(run, 7, str(original / ZENML_DB))
        assert "names stores outside it" in run.stderr
    as_json = run_cli(copy, "versions", "--json")
    assert as_json.returncode == 7
    assert '"exit_code": 7' in as_json.stdout and str(original) in as_json.stdout
    assert _fingerprint(original) == before
    assert not (tmp_path / "r").exists()


def test_a_copy_whose_zenml_config_was_edited_still_names_the_original_mlflow_store(
    original: Path, tmp_path: Path
) -> None:
    """Pointing the copy's config.yaml at its own database is no repair: the stack in it still
    names the original's MLflow store (and stored artifacts their original files)."""
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    config = copy / "zenml" / "config.yaml"
    config.write_text(config.read_text().replace(str(original), str(copy)))
    before = _fingerprint(original)
    run = run_cli(copy, "versions")
    assert_one_clean_error(run, 7, str(original / MLFLOW_DB))
    assert "the MLflow tracking store" in run.stderr
    assert _fingerprint(original) == before


def test_a_moved_state_directory_is_refused_and_nothing_recreated(tmp_path: Path) -> None:
    with isolated(tmp_path / "first") as first:
        _set_up(first)
    moved = tmp_path / "moved"
    first.rename(moved)
    before = _fingerprint(moved)
    for command in (("versions",), ("audit", "verify"), ("setup",)):
        run = run_cli(moved, *command)
        assert_one_clean_error(run, 7, str(first / ZENML_DB))
        assert "Move the directory back" in run.stderr
    assert not first.exists()  # ZenML created no empty store at the old place
    assert _fingerprint(moved) == before


def test_a_mistyped_state_directory_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "sate"
    run = run_cli(typo, "versions")
    assert_one_clean_error(run, 7, f"MLOPS_STATE_DIR={typo}")
    assert not typo.exists()


def test_a_missing_mlflow_store_is_refused_not_recreated(original: Path, tmp_path: Path) -> None:
    store = sqlite_path(mlflow_tracking_uri())
    assert store == original / MLFLOW_DB
    aside = tmp_path / "mlflow-aside"
    shutil.move(original / "mlflow", aside)
    try:
        records = _records(original)
        for command in (
            ("audit", "verify"),
            ("versions",),
            ("approve", "--version", "1", "--to", "staging", "--reason", "r", "--actor", "x"),
        ):
            run = run_cli(original, *command)
            assert_one_clean_error(run, 8, str(store))
            assert "Restore it from a backup" in run.stderr
        assert not (original / "mlflow").exists()
        assert _records(original) == records
    finally:
        shutil.rmtree(original / "mlflow", ignore_errors=True)
        shutil.move(aside, original / "mlflow")
    assert run_cli(original, "audit", "verify").returncode == 0  # put back: whole again

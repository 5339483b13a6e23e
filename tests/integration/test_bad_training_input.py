"""Eight kinds of bad training input, through the real CLI in a subprocess: refused before any
pipeline starts, one message, no traceback, no model version. A bad row further on than the
checked rows is refused by the pipeline, with the same one message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from zenml.client import Client

from mlops_cli.errors import ExitCode
from mlops_platform.batch.preflight import PREFLIGHT_ROWS
from mlops_platform.config import config_dir
from readmission.names import MODEL_NAME, Artifact
from tests.integration.helpers import (
    assert_one_clean_error,
    copy_configs,
    invoke,
    run_cli,
    write_synthetic_csv,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bad_training_input")]


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _save(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def missing_column(path: Path) -> None:
    _save(_frame(path).drop(columns="num_medications"), path)


def unknown_category(path: Path) -> None:
    frame = _frame(path)
    frame.loc[[4, 9], "gender"] = "Robot"
    _save(frame, path)


def negative_count(path: Path) -> None:
    frame = _frame(path)
    frame.loc[[3, 8], "num_lab_procedures"] = "-4"
    _save(frame, path)


def wrong_type(path: Path) -> None:
    frame = _frame(path)
    frame.loc[[5], "time_in_hospital"] = "three"
    _save(frame, path)


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def duplicate_encounter(path: Path) -> None:
    frame = _frame(path)
    frame.loc[7, "encounter_id"] = frame.loc[2, "encounter_id"]
    _save(frame, path)


def bad_encoding(path: Path) -> None:
    data = path.read_bytes()
    cut = data.index(b"\n", len(data) // 2)
    path.write_bytes(data[:cut] + b"\n" + b"\xff\xfe caf\xe9" + data[cut:])


def all_null_column(path: Path) -> None:
    frame = _frame(path)
    frame["diabetesMed"] = "?"
    _save(frame, path)


CASES: list[tuple[Callable[[Path], None], str]] = [
    (missing_column, "num_medications"),
    (unknown_category, "gender"),
    (negative_count, "num_lab_procedures"),
    (wrong_type, "time_in_hospital"),
    (empty_file, "empty"),
    (duplicate_encounter, "encounter_id"),
    (bad_encoding, "UTF-8"),
    (all_null_column, "diabetesMed"),
]


@pytest.fixture(scope="module")
def clean_file(module_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    invoke("setup")
    return write_synthetic_csv(tmp_path_factory.mktemp("bad") / "clean.csv", patients=600)


@pytest.mark.parametrize(("corrupt", "named"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_bad_input_is_refused_before_the_run_with_no_model_version(
    module_state: Path,
    clean_file: Path,
    tmp_path: Path,
    corrupt: Callable[[Path], None],
    named: str,
) -> None:
    path = tmp_path / "encounters.csv"
    path.write_bytes(clean_file.read_bytes())
    corrupt(path)

    run = run_cli(module_state, "train", "--env", "local", "--data", str(path))

    assert_one_clean_error(run, ExitCode.BAD_INPUT, named)
    assert not run.imported_zenml, "refused only after ZenML was imported"
    assert model_versions() == []


def test_a_bad_row_past_the_checked_rows_stops_the_run_with_one_message(
    module_state: Path, tmp_path: Path
) -> None:
    path = write_synthetic_csv(tmp_path / "encounters.csv", patients=4000)
    frame = _frame(path)
    assert len(frame) > PREFLIGHT_ROWS + 10
    frame.loc[PREFLIGHT_ROWS + 5, "gender"] = "Robot"
    _save(frame, path)

    run = run_cli(module_state, "train", "--env", "local", "--data", str(path))

    assert_one_clean_error(run, ExitCode.BAD_INPUT, "gender")
    assert run.imported_zenml  # found by the pipeline; ZenML's report of it stays off the console
    assert "Failed to run step" not in run.stdout + run.stderr
    assert model_versions() == []


def test_a_model_type_outside_the_allow_list_stops_training_with_its_name(
    module_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model step's output is refused as it is stored (ZenML records no error there): the
    command still exits 8 with the refusal's own message naming the type, no model is stored,
    and the run leaves no version behind (it held only the baseline it fitted; no gate judged
    it)."""
    platform = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text())
    refused = (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"
    )
    platform["serialization"]["allowed_types"].remove(refused)
    configs = copy_configs(tmp_path / "configs", {"base/platform.yaml": platform})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    data = write_synthetic_csv(tmp_path / "encounters.csv", patients=1500)

    result = invoke("train", "--env", "local", "--data", str(data))

    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "outside serialization.allowed_types" in result.output
    assert refused in result.output.replace("\n", "")
    assert "no error message" not in result.output
    assert model_versions() == []
    refused_models = Client().list_artifact_versions(name=Artifact.MODEL, size=1)
    assert refused_models.total == 0  # the refused model was never stored
    baselines = Client().list_artifact_versions(name=Artifact.BASELINE_MODEL, size=1)
    assert baselines.total >= 1  # what the run made stays in the store, unlinked


def model_versions() -> list[str]:
    try:
        return [v.name for v in Client().list_model_versions(MODEL_NAME, size=100)]
    except KeyError:
        return []

"""The gate judges the rows and outcomes the data file holds, not what the pipeline's code says.

The review's attack, done for real: the cohort step (data-science code) relabels the holdout
patients, or drops some of their rows, so that the gate measures a better model than the one
trained. Each run is refused with exit 5 naming what differs, nothing is registered; the honest
code passes the check (the gate then judges as usual).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from zenml.client import Client

from mlops_cli.errors import ExitCode
from mlops_platform.evaluation.holdout import in_holdout
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.steps.validate_model import holdout_inputs
from readmission.core import uci
from readmission.core.cohort import LABEL
from readmission.names import MODEL_NAME
from readmission.steps import build_cohort as cohort_step
from tests.integration.helpers import invoke, write_synthetic_csv

pytestmark = pytest.mark.usefixtures("isolated_state")
REFUSED = "is not the one the platform derives from the run's data file"


def _holdout_mask(frame: pd.DataFrame) -> pd.Series:
    key, fraction = holdout_inputs("local")
    return pd.Series(in_holdout(frame[uci.PATIENT_ID], key, fraction), index=frame.index)


def relabel(cohort: pd.DataFrame) -> pd.DataFrame:
    """Holdout patients' outcome replaced by an easy-to-predict one."""
    held = _holdout_mask(cohort)
    cohort.loc[held, LABEL] = (cohort.loc[held, "number_inpatient"].astype(int) >= 2).astype(int)
    return cohort


def drop_hard_rows(cohort: pd.DataFrame) -> pd.DataFrame:
    """Some readmitted holdout encounters left out of the cohort."""
    held = _holdout_mask(cohort) & (cohort[LABEL] == 1)
    return cohort.drop(index=cohort.index[held][::2]).reset_index(drop=True)


def outcome_as_input(cohort: pd.DataFrame) -> pd.DataFrame:
    """The fresh-eyes review's attack: the outcome copied into a feature the model is fitted and
    judged with (the gate scored ROC-AUC 1.000 and the version went to production)."""
    return cohort.assign(max_glu_serum=cohort[LABEL].map({0: "None", 1: ">300"}))


@pytest.mark.parametrize(
    "tamper", [relabel, drop_hard_rows, outcome_as_input], ids=["relabel", "drop", "outcome"]
)
def test_a_cohort_step_that_changes_the_holdout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    assert load_platform_settings("local").holdout.rows is not None  # the committed config
    honest = cohort_step.build
    monkeypatch.setattr(cohort_step, "build", lambda raw: tamper(honest(raw)))
    data = write_synthetic_csv(tmp_path / "encounters.csv", patients=1500)

    result = invoke("train", "--env", "local", "--data", str(data))

    assert result.exit_code == ExitCode.DENIED, result.output
    assert REFUSED in result.output.replace("\n", " ")
    versions = Client().list_model_versions(MODEL_NAME, size=10) if _has_model() else []
    assert all("validated" not in {t.name for t in v.tags} for v in versions)


def test_the_honest_cohort_passes_the_check(tmp_path: Path) -> None:
    data = write_synthetic_csv(tmp_path / "encounters.csv", patients=1500)
    result = invoke("train", "--env", "local", "--data", str(data))
    assert result.exit_code in (0, ExitCode.GATE_FAILED), result.output  # judged, either way
    assert REFUSED not in result.output.replace("\n", " ")


def _has_model() -> bool:
    try:
        Client().get_model(MODEL_NAME)
    except KeyError:
        return False
    return True


def test_a_holdout_drawn_by_another_column_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second review's attack: the pipeline draws the holdout by encounter (its contract and
    its `split_holdout` call name `encounter_id`), so a holdout patient's other encounters reach
    training and the leak check, which reads the same column, sees nothing."""
    from readmission.pipelines import evaluation_data

    monkeypatch.setattr(evaluation_data, "PATIENT_ID", uci.ENCOUNTER_ID)
    data = write_synthetic_csv(tmp_path / "encounters.csv", patients=1500)

    result = invoke("train", "--env", "local", "--data", str(data))

    assert result.exit_code == ExitCode.DENIED, result.output
    assert "draws the holdout by 'encounter_id'" in result.output.replace("\n", " ")

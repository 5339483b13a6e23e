"""The golden-sample check: a stored model must give its registered answers under today's code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ml_frames import raw_encounters
from sklearn.base import BaseEstimator

from mlops_platform.trust import golden
from readmission.core.cohort import build_cohort
from readmission.core.model import train_baseline_model
from readmission.core.params import ModelParams
from readmission.core.synthetic import generate_encounters
from readmission.steps.make_golden_sample import GOLDEN_PATIENTS, GOLDEN_SEED
from tests.feature_change import add_feature, redefine_feature

SUBJECT = ("patient_readmission_predictor", "3", "abc1234")


@pytest.fixture(scope="module")
def model() -> BaseEstimator:
    cohort = build_cohort(raw_encounters(n_rows=600, n_patients=200, seed=3))
    return train_baseline_model(cohort, ModelParams(min_category_count=5))


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_encounters(GOLDEN_PATIENTS, GOLDEN_SEED).drop(columns=["readmitted"])


def test_unchanged_code_reproduces_the_registered_scores(
    model: BaseEstimator, sample: pd.DataFrame
) -> None:
    record = golden.make_record(model, sample)

    golden.check(model, sample, record, subject=SUBJECT)  # no exception
    assert golden.GoldenRecord.from_dict(record.as_dict()) == record


def test_adding_a_feature_leaves_a_stored_model_s_scores_alone(
    model: BaseEstimator, sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = golden.make_record(model, sample)
    add_feature(monkeypatch)

    golden.check(model, sample, record, subject=SUBJECT)


def test_code_that_changes_the_scores_is_refused_naming_version_and_commit(
    model: BaseEstimator, sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = golden.make_record(model, sample)
    redefine_feature(monkeypatch)

    with pytest.raises(golden.GoldenSampleMismatch) as raised:
        golden.check(model, sample, record, subject=SUBJECT)
    message = str(raised.value)
    assert "version 3 of patient_readmission_predictor" in message
    assert "trained at commit abc1234" in message
    assert "this code changes its predictions" in message
    assert "that commit's image, or retrain" in message


def test_a_model_the_code_can_no_longer_score_is_refused(
    model: BaseEstimator, sample: pd.DataFrame
) -> None:
    record = golden.make_record(model, sample)

    with pytest.raises(golden.GoldenSampleMismatch, match="can no longer score it"):
        golden.check(model, sample.drop(columns=["age"]), record, subject=SUBJECT)


def test_a_swapped_sample_is_refused(model: BaseEstimator, sample: pd.DataFrame) -> None:
    record = golden.make_record(model, sample)
    other = sample.assign(num_lab_procedures=sample["num_lab_procedures"] + 1)

    reason = golden.compare(record, other, golden.score(model, other))

    assert reason is not None and "not the one registered" in reason


def test_a_score_moved_beyond_the_tolerance_is_reported() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    record = golden.GoldenRecord(3, golden.inputs_digest(frame), (0.1, 0.2, 0.3))
    within = np.array([0.1, 0.2, 0.3 + golden.TOLERANCE / 2])
    beyond = np.array([0.1, 0.2, 0.3 + golden.TOLERANCE * 10])

    assert golden.compare(record, frame, within) is None
    assert "1 of 3 golden-sample scores moved" in str(golden.compare(record, frame, beyond))


def test_a_malformed_record_is_refused() -> None:
    with pytest.raises(golden.GoldenSampleMismatch, match="malformed"):
        golden.GoldenRecord.from_dict({"rows": 3})


def _version(registration: dict[str, object]) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        name="3", model=SimpleNamespace(name="m"), run_metadata={"registration": registration}
    )


def test_a_removed_golden_record_is_refused_when_the_pin_says_one_was_made(
    model: BaseEstimator, caplog: pytest.LogCaptureFixture
) -> None:
    """Code that signs the version id into the pin always records a golden sample: a version
    whose pin names its id and whose golden record is gone had it removed (refused). A version
    registered before golden samples (its pin names no id) still loads, with a warning."""
    pin = {"model_version_id": "id-3", "sha256": "0" * 64}
    with pytest.raises(golden.GoldenSampleMismatch, match="the record was removed"):
        golden.verify_version(_version({"model_file": pin}), model)
    older = {k: v for k, v in pin.items() if k != "model_version_id"}
    golden.verify_version(_version({"model_file": older}), model)
    assert "registered without a golden sample" in caplog.text

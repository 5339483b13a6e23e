"""Cohort exclusions, the 30-day label and the patient-level split."""

from __future__ import annotations

import pandas as pd
import pytest
from _ml_frames import raw_encounters
from pydantic import ValidationError

from readmission.core import uci
from readmission.core.cohort import (
    LABEL,
    CohortError,
    build_cohort,
    features_and_label,
    split_by_patient,
)
from readmission.core.params import SplitParams


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return build_cohort(raw_encounters(n_rows=3000, n_patients=1200, seed=3))


def test_build_cohort_drops_death_and_hospice() -> None:
    raw = raw_encounters(n_rows=600, seed=1)
    excluded = raw["discharge_disposition_id"].isin(sorted(uci.EXCLUDED_DISCHARGE_IDS))
    assert excluded.any()

    cohort = build_cohort(raw)

    assert not cohort["discharge_disposition_id"].isin(sorted(uci.EXCLUDED_DISCHARGE_IDS)).any()
    assert sorted(cohort[uci.ENCOUNTER_ID]) == sorted(raw.loc[~excluded, uci.ENCOUNTER_ID])


def test_label_is_readmission_within_30_days() -> None:
    raw = raw_encounters(n_rows=300, seed=2)

    cohort = build_cohort(raw)

    assert cohort[LABEL].dtype == "int64"
    expected = (cohort[uci.TARGET_COLUMN] == uci.TARGET_POSITIVE).astype("int64")
    pd.testing.assert_series_equal(cohort[LABEL], expected, check_names=False)
    assert set(cohort.loc[cohort[LABEL] == 1, uci.TARGET_COLUMN]) == {uci.TARGET_POSITIVE}


def test_build_cohort_leaves_its_input_alone() -> None:
    raw = raw_encounters(n_rows=200, seed=4)
    before = raw.copy()

    build_cohort(raw)

    pd.testing.assert_frame_equal(raw, before)


def test_build_cohort_names_a_missing_column() -> None:
    raw = raw_encounters(n_rows=50).drop(columns=["discharge_disposition_id"])

    with pytest.raises(CohortError, match="discharge_disposition_id"):
        build_cohort(raw)


def test_no_patient_in_two_splits(cohort: pd.DataFrame) -> None:
    train, validation, test = split_by_patient(cohort, SplitParams())

    patients = [set(part[uci.PATIENT_ID]) for part in (train, validation, test)]
    assert not patients[0] & patients[1]
    assert not patients[0] & patients[2]
    assert not patients[1] & patients[2]
    assert len(train) + len(validation) + len(test) == len(cohort)


def test_split_is_deterministic_by_seed(cohort: pd.DataFrame) -> None:
    first = split_by_patient(cohort, SplitParams(seed=5))
    again = split_by_patient(cohort.sample(frac=1.0, random_state=9), SplitParams(seed=5))
    other = split_by_patient(cohort, SplitParams(seed=6))

    for part, part_again in zip(first, again, strict=True):
        assert set(part[uci.ENCOUNTER_ID]) == set(part_again[uci.ENCOUNTER_ID])
    assert set(first[2][uci.PATIENT_ID]) != set(other[2][uci.PATIENT_ID])


def test_split_respects_the_fractions_of_patients(cohort: pd.DataFrame) -> None:
    params = SplitParams(test_fraction=0.25, validation_fraction=0.1)
    n_patients = cohort[uci.PATIENT_ID].nunique()

    train, validation, test = split_by_patient(cohort, params)

    assert test[uci.PATIENT_ID].nunique() == round(params.test_fraction * n_patients)
    assert validation[uci.PATIENT_ID].nunique() == round(params.validation_fraction * n_patients)
    assert train[uci.PATIENT_ID].nunique() == n_patients - round(
        params.test_fraction * n_patients
    ) - round(params.validation_fraction * n_patients)


def test_split_refuses_too_few_patients() -> None:
    cohort = build_cohort(raw_encounters(n_rows=20, n_patients=2))

    with pytest.raises(CohortError, match="at least 3 patients"):
        split_by_patient(cohort, SplitParams())


def test_split_params_leave_room_for_training() -> None:
    with pytest.raises(ValidationError, match="must be below"):
        SplitParams(test_fraction=0.6, validation_fraction=0.4)
    with pytest.raises(ValidationError):
        SplitParams(seed=1, shuffle=True)


def test_features_and_label_keep_the_outcome_out_of_the_inputs(cohort: pd.DataFrame) -> None:
    features, label = features_and_label(cohort)

    assert uci.TARGET_COLUMN not in features.columns
    assert LABEL not in features.columns
    assert {uci.ENCOUNTER_ID, uci.PATIENT_ID} <= set(features.columns)
    pd.testing.assert_series_equal(label, cohort[LABEL])

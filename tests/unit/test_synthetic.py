"""The synthetic generator: exact raw layout, realistic marginals, learnable signal, scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from readmission.core import uci
from readmission.core.schema import ICD9_PATTERN, validate_encounters
from readmission.core.synthetic import generate_encounters, iter_synthetic_chunks


@pytest.fixture(scope="module")
def encounters() -> pd.DataFrame:
    return generate_encounters(8000, 7)


def test_layout_matches_the_raw_contract(encounters: pd.DataFrame) -> None:
    assert list(encounters.columns) == list(uci.COLUMNS)
    for name in uci.INTEGER_COLUMNS:
        assert encounters[name].dtype == np.int64, name
    for name in uci.STRING_COLUMNS:
        assert isinstance(encounters[name].dtype, pd.StringDtype), name
    validate_encounters(encounters)


def test_text_values_are_the_file_literals(encounters: pd.DataFrame) -> None:
    assert (encounters["max_glu_serum"] == "None").mean() > 0.9
    assert (encounters["weight"] == uci.MISSING).mean() > 0.9
    assert set(encounters["race"]) == {*uci.RACES, uci.MISSING}
    assert not encounters.isna().any().any()


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    pd.testing.assert_frame_equal(generate_encounters(500, 3), generate_encounters(500, 3))
    assert not generate_encounters(500, 3).equals(generate_encounters(500, 4))


def test_several_increasing_encounters_per_patient(encounters: pd.DataFrame) -> None:
    assert encounters[uci.PATIENT_ID].nunique() == 8000
    assert 1.3 < len(encounters) / 8000 < 1.55
    ids = encounters[uci.ENCOUNTER_ID]
    assert ids.is_unique
    assert ids.is_monotonic_increasing


def test_marginals_look_like_the_uci_file(encounters: pd.DataFrame) -> None:
    target = encounters[uci.TARGET_COLUMN].value_counts(normalize=True)
    assert 0.09 < target[uci.TARGET_POSITIVE] < 0.14
    assert 0.30 < target[">30"] < 0.40
    old = encounters["age"].isin(uci.AGE_BANDS[5:]).mean()
    assert old > 0.7
    assert encounters["admission_type_id"].value_counts().index[0] == 1  # emergency
    assert (encounters["payer_code"] == uci.MISSING).mean() > 0.3
    assert (encounters["medical_specialty"] == uci.MISSING).mean() > 0.4


def test_death_and_hospice_are_rare_and_end_a_patients_history(
    encounters: pd.DataFrame,
) -> None:
    ends_care = encounters["discharge_disposition_id"].isin(uci.EXCLUDED_DISCHARGE_IDS)
    assert 0.015 < ends_care.mean() < 0.035
    last = ~encounters[uci.PATIENT_ID].duplicated(keep="last")
    assert (last[ends_care]).all()
    assert (encounters.loc[ends_care, uci.TARGET_COLUMN] != uci.TARGET_POSITIVE).all()


def test_diagnoses_look_like_icd9(encounters: pd.DataFrame) -> None:
    codes = pd.concat([encounters[name] for name in uci.DIAGNOSIS_COLUMNS])
    assert codes.str.fullmatch(ICD9_PATTERN).all()
    for kind in (r"V\d\d", r"E\d\d\d", r"\d+\.\d+", r"\d{3}"):
        assert codes.str.fullmatch(kind).any(), kind
    assert (encounters["diag_1"] == "428").mean() > 0.04


def test_risk_rises_with_prior_inpatient_visits(encounters: pd.DataFrame) -> None:
    early = encounters[uci.TARGET_COLUMN] == uci.TARGET_POSITIVE
    frequent = encounters["number_inpatient"] >= 2
    assert early[frequent].mean() > 2 * early[encounters["number_inpatient"] == 0].mean()


def test_a_boosted_model_learns_a_realistic_signal(encounters: pd.DataFrame) -> None:
    cohort = encounters[~encounters["discharge_disposition_id"].isin(uci.EXCLUDED_DISCHARGE_IDS)]
    features = cohort[list(uci.INTEGER_COLUMNS[2:])].assign(
        heart_failure=(cohort["diag_1"] == "428").to_numpy(),
        age=cohort["age"].map(uci.AGE_BANDS.index).to_numpy(),
        prior=cohort.groupby(uci.PATIENT_ID).cumcount().to_numpy(),
    )
    label = (cohort[uci.TARGET_COLUMN] == uci.TARGET_POSITIVE).to_numpy()
    test = (cohort[uci.PATIENT_ID] % 4 == 0).to_numpy()  # split by patient, never by row
    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, random_state=0)
    with threadpool_limits(1):  # OpenMP threads crawl on a busy 2-core machine
        model.fit(features[~test], label[~test])
    auc = roc_auc_score(label[test], model.predict_proba(features[test])[:, 1])
    assert 0.63 < auc < 0.78


def test_chunks_add_up_with_unique_ids() -> None:
    chunks = list(iter_synthetic_chunks(total_rows=2500, chunk_rows=1000, seed=5))
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    combined = pd.concat(chunks, ignore_index=True)
    assert combined[uci.ENCOUNTER_ID].is_unique
    assert combined[uci.ENCOUNTER_ID].is_monotonic_increasing
    patients = [set(chunk[uci.PATIENT_ID]) for chunk in chunks]
    assert not (patients[0] & patients[1]) and not (patients[1] & patients[2])
    validate_encounters(combined)
    again = pd.concat(iter_synthetic_chunks(2500, 1000, 5), ignore_index=True)
    pd.testing.assert_frame_equal(combined, again)


@pytest.mark.parametrize("bad", [0, -3])
def test_rejects_non_positive_sizes(bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_encounters(bad, 1)
    with pytest.raises(ValueError, match="at least 1"):
        next(iter_synthetic_chunks(bad, 10, 1))

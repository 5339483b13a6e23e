"""Study cohort: who can be readmitted, the 30-day label, and a split that keeps patients whole."""

from __future__ import annotations

import numpy as np
import pandas as pd

from readmission.core import uci
from readmission.core.params import SplitParams

LABEL: str = "readmitted_30d"


class CohortError(ValueError):
    """The raw frame cannot form a cohort or a split (missing columns, too few patients)."""


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CohortError(
            f"{what} needs columns {missing}, which the frame lacks (it has {len(frame.columns)} "
            "columns). Pass the raw encounters as read from the UCI file."
        )


def build_cohort(raw: pd.DataFrame) -> pd.DataFrame:
    """Drop encounters ending in death or hospice and add the integer label `LABEL`.

    Such encounters cannot be followed by a readmission, so keeping them would teach the model
    that the sickest patients are at low risk.
    """
    _require_columns(raw, ("discharge_disposition_id", uci.TARGET_COLUMN), "build_cohort")
    excluded = raw["discharge_disposition_id"].isin(sorted(uci.EXCLUDED_DISCHARGE_IDS))
    cohort = raw.loc[~excluded].reset_index(drop=True)
    cohort[LABEL] = (cohort[uci.TARGET_COLUMN] == uci.TARGET_POSITIVE).astype("int64")
    return cohort


def split_by_patient(
    cohort: pd.DataFrame, params: SplitParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (train, validation, test) with every patient's encounters in exactly one part.

    Sorted unique patient ids are shuffled by a generator seeded with `params.seed`; the first
    `test_fraction` of patients go to test, the next `validation_fraction` to validation, the
    rest to train. The result depends only on the set of patient ids and the seed.
    """
    _require_columns(cohort, (uci.PATIENT_ID,), "split_by_patient")
    patients = np.sort(cohort[uci.PATIENT_ID].unique())
    if len(patients) < 3:
        raise CohortError(
            f"split_by_patient needs at least 3 patients to fill train, validation and test; "
            f"got {len(patients)}. Pass a larger cohort."
        )
    shuffled = np.random.default_rng(params.seed).permutation(patients)
    n_test = max(1, round(params.test_fraction * len(patients)))
    n_validation = max(1, round(params.validation_fraction * len(patients)))
    if n_test + n_validation >= len(patients):
        raise CohortError(
            f"With {len(patients)} patients, test ({n_test}) and validation ({n_validation}) "
            "leave no patient for training. Pass a larger cohort or smaller fractions."
        )
    test_ids = shuffled[:n_test]
    validation_ids = shuffled[n_test : n_test + n_validation]
    patient = cohort[uci.PATIENT_ID]
    in_test = patient.isin(test_ids)
    in_validation = patient.isin(validation_ids)
    train = cohort.loc[~in_test & ~in_validation].reset_index(drop=True)
    validation = cohort.loc[in_validation].reset_index(drop=True)
    test = cohort.loc[in_test].reset_index(drop=True)
    return train, validation, test


def features_and_label(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Split a cohort frame into model inputs (raw columns, no outcome) and the label."""
    _require_columns(frame, (LABEL,), "features_and_label")
    features = frame.drop(columns=[LABEL, uci.TARGET_COLUMN], errors="ignore")
    return features, frame[LABEL]

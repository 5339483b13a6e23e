"""Synthetic encounters in the raw UCI layout, for machines without the real file and benchmarks.

The frame has the same 50 columns, dtypes and code sets as `read_encounters` returns for the
real file, realistic marginals, several encounters per patient and a learnable signal: the
risk of a `<30` readmission rises with prior inpatient and emergency visits, earlier
encounters of the same patient, heart failure (ICD-9 428), discharge to a nursing facility
and age, so a gradient-boosted model reaches a ROC-AUC of roughly 0.65-0.75.
Everything is vectorised numpy; the cost is linear in the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from readmission.core import uci

# Probabilities below are rounded public marginals of the UCI file, not rows of it.
_RACE_P = {
    "Caucasian": 0.748,
    "AfricanAmerican": 0.189,
    uci.MISSING: 0.022,
    "Hispanic": 0.020,
    "Other": 0.015,
    "Asian": 0.006,
}
_GENDER_P = {"Female": 0.5379, "Male": 0.462, "Unknown/Invalid": 0.0001}
_AGE_P = (0.002, 0.007, 0.016, 0.037, 0.095, 0.169, 0.222, 0.256, 0.169, 0.027)
_WEIGHT_P = {
    uci.MISSING: 0.968,
    "[75-100)": 0.0132,
    "[50-75)": 0.0092,
    "[100-125)": 0.0063,
    "[125-150)": 0.0014,
    "[25-50)": 0.0009,
    "[0-25)": 0.0004,
    "[150-175)": 0.0004,
    "[175-200)": 0.0001,
    ">200": 0.0001,
}
_ADMISSION_TYPE_P = {
    1: 0.530,
    3: 0.186,
    2: 0.182,
    6: 0.052,
    5: 0.046,
    8: 0.0033,
    7: 0.0002,
    4: 0.0001,
}
_ADMISSION_SOURCE_P = {
    7: 0.564,
    1: 0.292,
    17: 0.066,
    4: 0.031,
    6: 0.022,
    2: 0.011,
    5: 0.0086,
    3: 0.0018,
    20: 0.0015,
    9: 0.0013,
    8: 0.0002,
    22: 0.0001,
    10: 0.0001,
    14: 0.00005,
    25: 0.00005,
}
# Death (11, 19, 20, 21) and hospice (13, 14) are scaled up because only a patient's last
# encounter may end that way; the resulting overall rate is about 2.4% as in the real file.
_DISCHARGE_P = {
    1: 0.593,
    3: 0.137,
    6: 0.126,
    18: 0.037,
    2: 0.021,
    22: 0.019,
    5: 0.012,
    25: 0.0095,
    4: 0.0082,
    7: 0.006,
    23: 0.004,
    28: 0.0013,
    8: 0.0011,
    15: 0.0007,
    24: 0.0005,
    9: 0.0002,
    10: 0.0001,
    16: 0.0001,
    17: 0.0001,
    27: 0.00003,
    11: 0.0235,
    13: 0.0058,
    14: 0.0050,
    19: 0.0002,
    20: 0.00005,
    21: 0.00005,
}
_NURSING_DISCHARGE_IDS = (3, 5, 22)  # skilled nursing, other inpatient care, rehab
_PAYER_P = {
    uci.MISSING: 0.397,
    "MC": 0.318,
    "HM": 0.061,
    "SP": 0.049,
    "BC": 0.046,
    "MD": 0.035,
    "CP": 0.025,
    "UN": 0.0245,
    "CM": 0.0186,
    "OG": 0.010,
    "PO": 0.0057,
    "DM": 0.0052,
    "CH": 0.0015,
    "WC": 0.0013,
    "OT": 0.001,
    "MP": 0.0008,
    "SI": 0.00005,
    "FR": 0.00002,
}
_SPECIALTY_P = {
    uci.MISSING: 0.490,
    "InternalMedicine": 0.144,
    "Emergency/Trauma": 0.0745,
    "Family/GeneralPractice": 0.0735,
    "Cardiology": 0.053,
    "Surgery-General": 0.031,
    "Nephrology": 0.0155,
    "Orthopedics": 0.0137,
    "Orthopedics-Reconstructive": 0.012,
    "Radiologist": 0.011,
    "Pulmonology": 0.0088,
    "Psychiatry": 0.0086,
    "Urology": 0.0068,
    "ObstetricsandGynecology": 0.0067,
    "Surgery-Cardiovascular/Thoracic": 0.0064,
    "Gastroenterology": 0.0055,
    "Surgery-Vascular": 0.005,
    "Surgery-Neuro": 0.0045,
    "PhysicalMedicineandRehabilitation": 0.004,
    "Oncology": 0.0033,
    "Pediatrics": 0.0025,
    "Hematology/Oncology": 0.002,
    "Neurology": 0.002,
    "Pediatrics-Endocrinology": 0.0015,
    "Otolaryngology": 0.0012,
    "Endocrinology": 0.0012,
    "Surgery-Thoracic": 0.001,
    "Psychology": 0.001,
    "Podiatry": 0.001,
    "Hospitalist": 0.0006,
}
_NUM_PROCEDURES_P = (0.460, 0.203, 0.124, 0.093, 0.041, 0.031, 0.048)
_NUMBER_DIAGNOSES_P = {
    9: 0.486,
    5: 0.112,
    8: 0.104,
    7: 0.103,
    6: 0.099,
    4: 0.054,
    3: 0.028,
    2: 0.010,
    1: 0.0021,
    16: 0.0005,
    10: 0.0002,
    13: 0.0002,
    11: 0.0001,
    15: 0.0001,
    12: 0.0001,
    14: 0.0001,
}
_GLUCOSE_P = {"None": 0.948, "Norm": 0.0255, ">200": 0.0143, ">300": 0.0122}
_A1C_P = {"None": 0.834, ">8": 0.080, "Norm": 0.049, ">7": 0.037}
# Share of encounters on each drug, and whether the real file ever shows a dose change.
_MEDICATION_USE = {
    "metformin": (0.196, True),
    "repaglinide": (0.015, True),
    "nateglinide": (0.007, True),
    "chlorpropamide": (0.0009, True),
    "glimepiride": (0.051, True),
    "acetohexamide": (0.00001, False),
    "glipizide": (0.125, True),
    "glyburide": (0.105, True),
    "tolbutamide": (0.0003, False),
    "pioglitazone": (0.072, True),
    "rosiglitazone": (0.062, True),
    "acarbose": (0.0032, True),
    "miglitol": (0.0004, True),
    "troglitazone": (0.00002, False),
    "tolazamide": (0.0004, False),
    "examide": (0.0, False),
    "citoglipton": (0.0, False),
    "insulin": (0.533, True),
    "glyburide-metformin": (0.007, True),
    "glipizide-metformin": (0.0001, False),
    "glimepiride-pioglitazone": (0.0, False),
    "metformin-rosiglitazone": (0.00002, False),
    "metformin-pioglitazone": (0.00001, False),
}
_DOSE_CHANGE_P = {"insulin": (0.57, 0.21, 0.22)}  # steady, up, down
_DEFAULT_DOSE_CHANGE_P = (0.91, 0.055, 0.035)
# Frequent ICD-9 codes per diagnosis slot; the rest comes from a long tail of plausible codes.
_COMMON_DIAGNOSES = (
    {
        "428": 0.067,
        "414": 0.065,
        "786": 0.040,
        "410": 0.035,
        "486": 0.034,
        "427": 0.027,
        "491": 0.022,
        "715": 0.021,
        "682": 0.020,
        "780": 0.020,
        "996": 0.019,
        "434": 0.019,
        "276": 0.013,
        "250.8": 0.011,
        "599": 0.011,
        "584": 0.010,
        "V57": 0.010,
        "250.6": 0.008,
        "435": 0.007,
        "562": 0.007,
    },
    {
        "276": 0.066,
        "428": 0.065,
        "250": 0.060,
        "427": 0.049,
        "401": 0.037,
        "599": 0.033,
        "496": 0.032,
        "403": 0.027,
        "414": 0.026,
        "411": 0.025,
        "250.02": 0.020,
        "707": 0.020,
        "585": 0.018,
        "584": 0.017,
        "491": 0.016,
        "250.01": 0.015,
        "E885": 0.002,
    },
    {
        "250": 0.114,
        "401": 0.081,
        "276": 0.050,
        "428": 0.045,
        "427": 0.039,
        "414": 0.036,
        "496": 0.026,
        "403": 0.023,
        "585": 0.020,
        "599": 0.019,
        "272": 0.019,
        "V45": 0.015,
        "707": 0.013,
        "250.02": 0.012,
        "E878": 0.004,
    },
)
_DIAGNOSIS_MISSING_P = (0.0002, 0.0034, 0.014)
_HEART_FAILURE = "428"
_TAIL_SIZE = 700
_DAYS_OBSERVED = 3650  # 1999-2008
_MEAN_PATIENT_GAP = 3300
_MEAN_ENCOUNTER_GAP = 4000
_MAX_ENCOUNTERS_PER_PATIENT = 40


@dataclass(frozen=True)
class _IdStart:
    """First ids of a batch, so chunks continue where the previous one stopped."""

    encounter_id: int = 12_000
    patient_nbr: int = 100


def generate_encounters(n_patients: int, seed: int) -> pd.DataFrame:
    """Return synthetic raw encounters for `n_patients` patients (about 1.4 rows each).

    Deterministic for a given `(n_patients, seed)`; rows are ordered by `encounter_id`,
    which rises with admission time, as in the UCI file.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1; got {n_patients}.")
    rng = np.random.default_rng(seed)
    frailty = rng.standard_normal(n_patients)
    counts = _encounters_per_patient(rng, frailty)
    return _build(rng, frailty, counts, _IdStart())


def iter_synthetic_chunks(total_rows: int, chunk_rows: int, seed: int) -> Iterator[pd.DataFrame]:
    """Yield frames of `chunk_rows` rows (the last may be shorter) adding up to `total_rows`.

    Made for benchmarks that need millions of rows without holding them at once: each chunk
    is a new set of whole patients whose encounter and patient ids continue above the
    previous chunk's, so ids are unique across all chunks.
    """
    if total_rows < 1 or chunk_rows < 1:
        raise ValueError(
            f"total_rows and chunk_rows must be at least 1; got {total_rows} and {chunk_rows}."
        )
    rng = np.random.default_rng(seed)
    start = _IdStart()
    remaining = total_rows
    while remaining > 0:
        rows = min(chunk_rows, remaining)
        frailty = rng.standard_normal(rows)
        counts = _encounters_per_patient(rng, frailty)
        n_patients = int(np.searchsorted(np.cumsum(counts), rows)) + 1
        frailty, counts = frailty[:n_patients], counts[:n_patients]
        counts[-1] -= int(counts.sum()) - rows
        frame = _build(rng, frailty, counts, start)
        start = _IdStart(
            encounter_id=int(frame[uci.ENCOUNTER_ID].iat[-1]) + 1,
            patient_nbr=int(frame[uci.PATIENT_ID].max()) + 1,
        )
        remaining -= rows
        yield frame


def _encounters_per_patient(rng: np.random.Generator, frailty: np.ndarray) -> np.ndarray:
    """Geometric counts averaging about 1.4; frail patients come back more often."""
    p_single = np.clip(0.71 - 0.10 * frailty, 0.35, 0.95)
    return np.minimum(rng.geometric(p_single), _MAX_ENCOUNTERS_PER_PATIENT).astype(np.int64)


@dataclass(frozen=True)
class _Coded:
    """A text column as category labels plus integer codes, cheap to draw and to compare."""

    categories: Sequence[str]
    codes: np.ndarray

    def is_(self, label: str) -> np.ndarray:
        return self.codes == list(self.categories).index(label)


def _build(
    rng: np.random.Generator, frailty: np.ndarray, counts: np.ndarray, start: _IdStart
) -> pd.DataFrame:
    n_patients, n_rows = len(counts), int(counts.sum())
    patient = np.repeat(np.arange(n_patients), counts)
    first_row = np.repeat(np.cumsum(counts) - counts, counts)
    prior = np.arange(n_rows) - first_row  # earlier encounters of the same patient
    is_last = prior == counts[patient] - 1
    z = frailty[patient]

    patient_nbr = start.patient_nbr + np.cumsum(rng.integers(1, 2 * _MEAN_PATIENT_GAP, n_patients))
    older = (prior >= 3) & (rng.random(n_rows) < 0.3)  # long histories cross an age band
    age = np.minimum(_draw(rng, _AGE_P, n_patients)[patient] + older, len(uci.AGE_BANDS) - 1)
    columns: dict[str, np.ndarray | _Coded] = {
        uci.PATIENT_ID: patient_nbr[patient],
        "race": _coded(rng, _RACE_P, n_patients, patient),
        "gender": _coded(rng, _GENDER_P, n_patients, patient),
        "age": _Coded(uci.AGE_BANDS, age),
        "weight": _coded(rng, _WEIGHT_P, n_rows),
        "admission_type_id": _codes(rng, _ADMISSION_TYPE_P, n_rows),
        "admission_source_id": _codes(rng, _ADMISSION_SOURCE_P, n_rows),
    }
    discharge = _codes(rng, _DISCHARGE_P, n_rows)
    ends_care = np.isin(discharge, list(uci.EXCLUDED_DISCHARGE_IDS))
    discharge[ends_care & ~is_last] = 1
    frail_old = (z + 0.25 * (age - 6)) > 1.0
    discharge[(discharge == 1) & frail_old & (rng.random(n_rows) < 0.25)] = 3
    columns["discharge_disposition_id"] = discharge
    stay_scale = 2.0 + 0.3 * np.clip(z, -1.0, 2.0)
    columns["time_in_hospital"] = np.clip(np.rint(rng.gamma(2.0, stay_scale)), 1, 14)
    columns["payer_code"] = _coded(rng, _PAYER_P, n_rows)
    columns["medical_specialty"] = _coded(rng, _SPECIALTY_P, n_rows)
    labs = np.clip(np.rint(rng.normal(44, 19, n_rows)), 1, 132)
    labs[rng.random(n_rows) < 0.03] = 1
    columns["num_lab_procedures"] = labs
    columns["num_procedures"] = _draw(rng, _NUM_PROCEDURES_P, n_rows)
    columns["num_medications"] = np.clip(np.rint(1 + rng.gamma(3.6, 4.2, n_rows)), 1, 81)
    visit_rate = np.exp(0.5 * z + 0.15 * np.minimum(prior, 6))
    columns["number_outpatient"] = _overdispersed(rng, 0.30 * visit_rate, 0.15, 42)
    columns["number_emergency"] = _overdispersed(rng, 0.16 * visit_rate, 0.15, 76)
    columns["number_inpatient"] = _overdispersed(rng, 0.50 * visit_rate, 0.5, 21)
    n_diagnoses = _codes(rng, _NUMBER_DIAGNOSES_P, n_rows)
    diagnoses = [_diagnoses(rng, slot, n_rows) for slot in range(3)]
    frail_heart = rng.random(n_rows) < 0.04 * np.clip(z, 0.0, 3.0)
    diagnoses[0].codes[frail_heart] = list(diagnoses[0].categories).index(_HEART_FAILURE)
    for slot, min_diagnoses in ((1, 2), (2, 3)):
        diagnoses[slot].codes[n_diagnoses < min_diagnoses] = list(diagnoses[slot].categories).index(
            uci.MISSING
        )
    columns.update(zip(uci.DIAGNOSIS_COLUMNS, diagnoses, strict=True))
    columns["number_diagnoses"] = n_diagnoses
    columns["max_glu_serum"] = _coded(rng, _GLUCOSE_P, n_rows)
    columns["A1Cresult"] = _coded(rng, _A1C_P, n_rows)

    any_medication = np.zeros(n_rows, dtype=bool)
    any_dose_change = np.zeros(n_rows, dtype=bool)
    for name in uci.MEDICATIONS:
        states = _medication(rng, name, n_rows)
        any_medication |= ~states.is_("No")
        any_dose_change |= states.is_("Up") | states.is_("Down")
        columns[name] = states
    changed = any_dose_change | (any_medication & (rng.random(n_rows) < 0.38))
    columns["change"] = _Coded(uci.CHANGE_VALUES, changed.astype(np.int8))
    columns["diabetesMed"] = _Coded(uci.YES_NO, any_medication.astype(np.int8))
    columns[uci.TARGET_COLUMN] = _readmitted(
        rng,
        z=z,
        prior=prior,
        age=age,
        discharge=discharge,
        heart_failure=sum(codes.is_(_HEART_FAILURE).astype(np.int64) for codes in diagnoses),
        inpatient=columns["number_inpatient"],
        emergency=columns["number_emergency"],
        any_medication=any_medication,
    )
    columns[uci.ENCOUNTER_ID] = _encounter_ids(rng, patient, prior, counts, start.encounter_id)
    order = np.argsort(columns[uci.ENCOUNTER_ID], kind="stable")
    return pa.table({name: _arrow(columns[name], order) for name in uci.COLUMNS}).to_pandas()


def _arrow(column: np.ndarray | _Coded, order: np.ndarray) -> pa.Array:
    """Reorder one column and encode text as Arrow strings (one `take`, no Python objects)."""
    if isinstance(column, _Coded):
        labels = pa.array(list(column.categories), type=pa.string())
        return labels.take(pa.array(column.codes[order].astype(np.int32)))
    return pa.array(np.asarray(column, dtype=np.int64)[order])


def _encounter_ids(
    rng: np.random.Generator,
    patient: np.ndarray,
    prior: np.ndarray,
    counts: np.ndarray,
    first_id: int,
) -> np.ndarray:
    """Unique ids that rise with admission day, so a patient's later visits get larger ids."""
    n_rows = len(patient)
    first_rows, last_rows = np.cumsum(counts) - counts, np.cumsum(counts) - 1
    span = rng.uniform(0, _DAYS_OBSERVED, len(counts))
    first_day = rng.uniform(0, _DAYS_OBSERVED - span)
    elapsed = np.cumsum(rng.random(n_rows) * (prior > 0))
    elapsed -= np.repeat(elapsed[first_rows], counts)
    share = elapsed / np.maximum(np.repeat(elapsed[last_rows], counts), 1e-9)
    day = first_day[patient] + span[patient] * share
    rank = np.empty(n_rows, dtype=np.int64)
    rank[np.lexsort((prior, day))] = np.arange(n_rows)
    ids = first_id + np.cumsum(rng.integers(1, 2 * _MEAN_ENCOUNTER_GAP, n_rows))
    return ids[rank]


def _readmitted(
    rng: np.random.Generator,
    *,
    z: np.ndarray,
    prior: np.ndarray,
    age: np.ndarray,
    discharge: np.ndarray,
    heart_failure: np.ndarray,
    inpatient: np.ndarray,
    emergency: np.ndarray,
    any_medication: np.ndarray,
) -> _Coded:
    """Draw `<30`, `>30` or `NO` from two logistic models sharing the clinical drivers."""
    drivers = (
        0.40 * np.minimum(inpatient, 8)
        + 0.18 * np.minimum(emergency, 6)
        + 0.25 * np.minimum(prior, 5)
        + 0.45 * np.minimum(heart_failure, 2)
        + 0.60 * np.isin(discharge, _NURSING_DISCHARGE_IDS)
        + 0.10 * (age - 5)
        + 0.20 * any_medication
    )
    # Risk in this synthetic world is deliberately not additive: two exclusive-or interactions
    # (of visit counts and diagnoses only, never of age, race or gender, so fairness is untouched)
    # that no model linear in the features can represent. Without them the logistic baseline is
    # the true model and the platform's baseline gate (rightly) refuses the boosted candidate, so
    # the demo could not show a promotion on synthetic data. They are not a clinical claim; centring
    # them keeps the readmission rate near the real data's 11%.
    drivers = (
        drivers
        + 0.90 * (((inpatient >= 1) ^ (emergency >= 1)) - 0.5)
        + 0.70 * (((heart_failure > 0) ^ (prior >= 2)) - 0.5)
    )
    p_early = _sigmoid(-3.2 + drivers + 0.25 * z)
    p_late = _sigmoid(-0.75 + 0.45 * drivers + 0.3 * z)
    u = rng.random(len(z))
    early, late, never = (uci.TARGET_VALUES.index(v) for v in ("<30", ">30", "NO"))
    later = np.where(u < p_early + (1 - p_early) * p_late, late, never)
    codes = np.where(u < p_early, early, later)
    codes[np.isin(discharge, list(uci.EXCLUDED_DISCHARGE_IDS))] = never
    return _Coded(uci.TARGET_VALUES, codes)


def _diagnoses(rng: np.random.Generator, slot: int, n_rows: int) -> _Coded:
    """ICD-9-like codes: frequent ones by weight, then a long flat-ish tail of plausible codes."""
    common = _COMMON_DIAGNOSES[slot]
    tail = [code for code in _tail_codes(slot) if code not in common]
    tail_weight = np.arange(11, len(tail) + 11, dtype=float) ** -1.2
    missing_p = _DIAGNOSIS_MISSING_P[slot]
    tail_p = 1.0 - sum(common.values()) - missing_p
    p = [*common.values(), missing_p, *(tail_p * tail_weight / tail_weight.sum())]
    return _Coded((*common, uci.MISSING, *tail), _draw(rng, p, n_rows))


def _tail_codes(slot: int) -> list[str]:
    """A fixed list of ICD-9 codes per slot: numeric (some with decimals), V and E codes."""
    rng = np.random.default_rng(1_000 + slot)
    codes = []
    for value in rng.choice(np.arange(1, 1000), _TAIL_SIZE, replace=False):
        roll = rng.random()
        if roll < 0.05:
            codes.append(f"V{value % 90 + 1:02d}")
        elif roll < 0.08:
            codes.append(f"E{800 + value % 200}")
        elif roll < 0.14:
            codes.append(f"{value}.{rng.integers(1, 100)}")
        elif roll < 0.18 and value < 100:
            codes.append(f"250.{value}")
        else:
            codes.append(str(value))
    return list(dict.fromkeys(codes))


def _medication(rng: np.random.Generator, name: str, n_rows: int) -> _Coded:
    """States in `uci.MEDICATION_STATES` order: No, Steady, Up, Down."""
    taken_p, changes = _MEDICATION_USE[name]
    codes = np.zeros(n_rows, dtype=np.int64)
    taken = rng.random(n_rows) < taken_p
    if changes:
        dose_p = _DOSE_CHANGE_P.get(name, _DEFAULT_DOSE_CHANGE_P)
        codes[taken] = 1 + _draw(rng, dose_p, int(taken.sum()))
    else:
        codes[taken] = 1
    return _Coded(uci.MEDICATION_STATES, codes)


def _overdispersed(
    rng: np.random.Generator, mean: np.ndarray, shape: float, cap: int
) -> np.ndarray:
    """Gamma-Poisson counts: mostly zero with a long tail, like visit counts."""
    return np.minimum(rng.poisson(mean * rng.gamma(shape, 1 / shape, len(mean))), cap)


def _coded(
    rng: np.random.Generator,
    probabilities: dict[str, float],
    size: int,
    expand: np.ndarray | None = None,
) -> _Coded:
    """Draw `size` labels; `expand` maps each row to its patient for patient-level traits."""
    codes = _draw(rng, list(probabilities.values()), size)
    return _Coded(tuple(probabilities), codes if expand is None else codes[expand])


def _codes(rng: np.random.Generator, probabilities: dict[int, float], size: int) -> np.ndarray:
    keys = np.array(list(probabilities), dtype=np.int64)
    return keys[_draw(rng, list(probabilities.values()), size)]


def _draw(rng: np.random.Generator, p: Sequence[float], size: int) -> np.ndarray:
    """Indices drawn by inverse CDF: linear in `size`, faster than `Generator.choice` with `p`."""
    cdf = np.cumsum(np.asarray(p, dtype=float))
    index = np.searchsorted(cdf / cdf[-1], rng.random(size), side="right")
    return np.minimum(index, len(p) - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))

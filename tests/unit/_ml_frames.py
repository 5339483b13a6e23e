"""Small fabricated raw encounter frames for the ML unit tests (never real rows).

Values come from the category sets in `readmission.core.uci`; the outcome leans on prior
inpatient visits so a model has some signal to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from readmission.core import uci

DIAGNOSIS_CODES = (
    "428",
    "250.83",
    "V57",
    "?",
    "786",
    "414",
    "410",
    "486",
    "715",
    "996",
    "E909",
    "38",
    "599",
    "820.01",
    "250",
    "585",
    "491",
    "296",
)
SPECIALTIES = ("?", "InternalMedicine", "Cardiology", "Surgery-General", "Emergency/Trauma")


def raw_encounters(n_rows: int = 400, n_patients: int = 150, seed: int = 0) -> pd.DataFrame:
    """A raw frame with the 50 UCI columns and the dtypes the loader returns."""
    rng = np.random.default_rng(seed)

    def pick(values: tuple[object, ...]) -> np.ndarray:
        return rng.choice(np.asarray(values, dtype=object), size=n_rows)

    inpatient = rng.poisson(0.6, n_rows)
    risk = 0.04 + 0.12 * np.minimum(inpatient, 3)
    draw = rng.random(n_rows)
    readmitted = np.where(draw < risk, "<30", np.where(draw < risk + 0.35, ">30", "NO"))
    columns: dict[str, object] = {
        uci.ENCOUNTER_ID: rng.permutation(np.arange(1000, 1000 + n_rows)),
        uci.PATIENT_ID: rng.integers(1, n_patients + 1, n_rows),
        "race": pick((*uci.RACES, uci.MISSING)),
        "gender": pick(uci.GENDERS[:2]),
        "age": pick(uci.AGE_BANDS),
        "weight": pick((uci.MISSING,) * 9 + uci.WEIGHT_BANDS[:1]),
        "admission_type_id": pick(uci.ADMISSION_TYPE_IDS),
        "discharge_disposition_id": pick(uci.DISCHARGE_DISPOSITION_IDS),
        "admission_source_id": pick(uci.ADMISSION_SOURCE_IDS),
        "time_in_hospital": rng.integers(1, 15, n_rows),
        "payer_code": pick((*uci.PAYER_CODES, uci.MISSING)),
        "medical_specialty": pick(SPECIALTIES),
        "num_lab_procedures": rng.integers(1, 100, n_rows),
        "num_procedures": rng.integers(0, 7, n_rows),
        "num_medications": rng.integers(1, 60, n_rows),
        "number_outpatient": rng.poisson(0.4, n_rows),
        "number_emergency": rng.poisson(0.2, n_rows),
        "number_inpatient": inpatient,
        "diag_1": pick(DIAGNOSIS_CODES),
        "diag_2": pick(DIAGNOSIS_CODES),
        "diag_3": pick(DIAGNOSIS_CODES),
        "number_diagnoses": rng.integers(1, 17, n_rows),
        "max_glu_serum": pick(uci.GLUCOSE_RESULTS),
        "A1Cresult": pick(uci.A1C_RESULTS),
        **{m: pick(uci.MEDICATION_STATES) for m in uci.MEDICATIONS},
        "change": pick(uci.CHANGE_VALUES),
        "diabetesMed": pick(uci.YES_NO),
        uci.TARGET_COLUMN: readmitted,
    }
    frame = pd.DataFrame({name: columns[name] for name in uci.COLUMNS})
    for name in uci.COLUMNS:
        dtype = "int64" if name in uci.INTEGER_COLUMNS else "string"
        frame[name] = frame[name].astype(dtype)
    return frame

"""Facts about the UCI "Diabetes 130-US hospitals" file (dataset id 296): columns, codes, categories.

One place for the raw layout, so the schema, the synthetic generator and the features agree.
"""

from __future__ import annotations

from typing import Final

MISSING: Final = "?"
TARGET_COLUMN: Final = "readmitted"
TARGET_POSITIVE: Final = "<30"
TARGET_VALUES: Final = ("<30", ">30", "NO")
ENCOUNTER_ID: Final = "encounter_id"
PATIENT_ID: Final = "patient_nbr"

# Encounters ending in death or hospice cannot be readmitted.
EXCLUDED_DISCHARGE_IDS: Final = frozenset({11, 13, 14, 19, 20, 21})

RACES: Final = ("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other")
GENDERS: Final = ("Female", "Male", "Unknown/Invalid")
AGE_BANDS: Final = tuple(f"[{lo}-{lo + 10})" for lo in range(0, 100, 10))
WEIGHT_BANDS: Final = (
    "[0-25)",
    "[25-50)",
    "[50-75)",
    "[75-100)",
    "[100-125)",
    "[125-150)",
    "[150-175)",
    "[175-200)",
    ">200",
)
PAYER_CODES: Final = (
    "BC",
    "CH",
    "CM",
    "CP",
    "DM",
    "FR",
    "HM",
    "MC",
    "MD",
    "MP",
    "OG",
    "OT",
    "PO",
    "SI",
    "SP",
    "UN",
    "WC",
)
GLUCOSE_RESULTS: Final = ("None", "Norm", ">200", ">300")
A1C_RESULTS: Final = ("None", "Norm", ">7", ">8")
MEDICATION_STATES: Final = ("No", "Steady", "Up", "Down")
CHANGE_VALUES: Final = ("No", "Ch")
YES_NO: Final = ("No", "Yes")

# Code tables from IDs_mapping.csv (all codes the original file may hold).
ADMISSION_TYPE_IDS: Final = tuple(range(1, 9))
DISCHARGE_DISPOSITION_IDS: Final = tuple(range(1, 31))
ADMISSION_SOURCE_IDS: Final = tuple(range(1, 27))

MEDICATIONS: Final = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)

COUNT_COLUMNS: Final = (
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
)
CODE_COLUMNS: Final = ("admission_type_id", "discharge_disposition_id", "admission_source_id")
DIAGNOSIS_COLUMNS: Final = ("diag_1", "diag_2", "diag_3")

COLUMNS: Final = (
    ENCOUNTER_ID,
    PATIENT_ID,
    "race",
    "gender",
    "age",
    "weight",
    *CODE_COLUMNS,
    "time_in_hospital",
    "payer_code",
    "medical_specialty",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    *DIAGNOSIS_COLUMNS,
    "number_diagnoses",
    "max_glu_serum",
    "A1Cresult",
    *MEDICATIONS,
    "change",
    "diabetesMed",
    TARGET_COLUMN,
)
INTEGER_COLUMNS: Final = (ENCOUNTER_ID, PATIENT_ID, *CODE_COLUMNS, *COUNT_COLUMNS)
STRING_COLUMNS: Final = tuple(c for c in COLUMNS if c not in INTEGER_COLUMNS)

# Columns that identify a patient group for fairness checks.
SENSITIVE_COLUMNS: Final = ("race", "gender", "age")

# Official source and the SHA-256 of diabetic_data.csv inside it.
UCI_ZIP_URL: Final = (
    "https://archive.ics.uci.edu/static/public/296/"
    "diabetes+130-us+hospitals+for+years+1999-2008.zip"
)
UCI_CSV_NAME: Final = "diabetic_data.csv"
UCI_CSV_SHA256: Final = "0689e7ec031237dc63031b938805c48377748761a3b26acab621567afa24df97"

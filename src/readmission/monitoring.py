"""Raw input columns the drift monitor profiles for the readmission model.

Raw columns, not engineered features: the platform compares what arrives in a batch with what the
model was validated on, without running the team's feature code. The choice covers what drives
the risk score (age, prior visits, admission and discharge circumstances, diagnoses, insulin)
and the patient groups the fairness gate watches (race, gender, age). Codes such as
`admission_type_id` are categories, not quantities. `diag_1` is monitored as its raw ICD-9 code;
the monitor keeps the most frequent codes and pools the rest.
"""

from __future__ import annotations

from typing import Final

MONITORED_NUMERIC: Final = (
    "time_in_hospital",
    "num_lab_procedures",
    "num_medications",
    "number_inpatient",
    "number_emergency",
    "number_outpatient",
    "number_diagnoses",
)
MONITORED_CATEGORICAL: Final = (
    "age",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "race",
    "gender",
    "A1Cresult",
    "insulin",
    "diag_1",
)

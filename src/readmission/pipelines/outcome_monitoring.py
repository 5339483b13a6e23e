"""Outcome monitoring pipeline: composition only. The platform's `check_outcomes` step does the work.

The contract tells the platform how readmission outcomes are spelled (the UCI `readmitted` codes,
positive `<30`, or a 0/1 `readmitted_30d`), which prediction columns they join on and which
columns give the subgroups of the model report. The pipeline has no ZenML model: one check
judges every model version that served the batches.
"""

from zenml import pipeline

from mlops_platform.monitoring.labels import OutcomeContract
from mlops_platform.steps.check_outcomes import OutcomeRequest, check_outcomes
from readmission.core.uci import (
    ENCOUNTER_ID,
    PATIENT_ID,
    TARGET_COLUMN,
    TARGET_POSITIVE,
    TARGET_VALUES,
)
from readmission.names import Pipeline

BINARY_OUTCOME = "readmitted_30d"
GROUP_COLUMNS = ("race", "gender", "age")


def readmission_outcome_contract() -> OutcomeContract:
    """How the platform reads this team's outcomes: UCI codes, or a 0/1 column."""
    return OutcomeContract(
        key_column=ENCOUNTER_ID,
        patient_column=PATIENT_ID,
        code_column=TARGET_COLUMN,
        codes=TARGET_VALUES,
        positive_codes=(TARGET_POSITIVE,),
        binary_column=BINARY_OUTCOME,
        group_columns=GROUP_COLUMNS,
    )


@pipeline(name=Pipeline.OUTCOME_MONITORING)
def readmission_outcome_monitoring(request: OutcomeRequest) -> None:
    check_outcomes(request=request, contract=readmission_outcome_contract())

"""Save the cohort's history columns with the model version, for batch scoring to draw on."""

from typing import Annotated

import pandas as pd
from zenml import step

from readmission.core.history import history_table
from readmission.names import Artifact


@step
def collect_patient_history(
    cohort: pd.DataFrame,
) -> Annotated[pd.DataFrame, Artifact.PATIENT_HISTORY]:
    return history_table(cohort)

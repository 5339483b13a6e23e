"""Split the cohort so that no patient appears in two splits."""

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from readmission.core.cohort import split_by_patient as split
from readmission.core.params import SplitParams
from readmission.core.uci import PATIENT_ID
from readmission.names import Artifact


@step
def split_by_patient(
    cohort: pd.DataFrame, params: SplitParams
) -> tuple[
    Annotated[pd.DataFrame, Artifact.TRAIN_SET],
    Annotated[pd.DataFrame, Artifact.VALIDATION_SET],
    Annotated[pd.DataFrame, Artifact.TEST_SET],
]:
    train, validation, test = split(cohort, params)
    sizes = {
        name: {"rows": len(frame), "patients": int(frame[PATIENT_ID].nunique())}
        for name, frame in (("train", train), ("validation", validation), ("test", test))
    }
    log_metadata(metadata={"split": sizes})
    return train, validation, test

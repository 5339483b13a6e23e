"""Select the encounters that can be readmitted and attach the 30-day label."""

from typing import Annotated

import pandas as pd
from zenml import step

from readmission.core.cohort import build_cohort as build
from readmission.names import Artifact


@step
def build_cohort(encounters: pd.DataFrame) -> Annotated[pd.DataFrame, Artifact.COHORT]:
    return build(encounters)

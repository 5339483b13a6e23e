"""A small fixed frame of synthetic encounters the platform scores at registration and every load."""

from typing import Annotated

import pandas as pd
from zenml import step

from readmission.core import uci
from readmission.core.synthetic import generate_encounters

GOLDEN_PATIENTS = 40
GOLDEN_SEED = 20240601


@step
def make_golden_sample() -> Annotated[pd.DataFrame, "golden_inputs"]:
    """Synthetic encounters only (no patient data), without the outcome column.

    It is not a test set: it only pins down what the model answers, so the platform can tell
    when later code changes those answers (see docs/DEVELOPER_GUIDE.md, "Adding a feature").
    """
    frame = generate_encounters(GOLDEN_PATIENTS, GOLDEN_SEED)
    return frame.drop(columns=[uci.TARGET_COLUMN]).reset_index(drop=True)

"""Platform step: set the holdout patients aside before data science sees the data.

Data-science steps get the `development_set` (every patient outside the holdout) to split, fit
and calibrate on; the gate (`validate_model`) scores the model on the `holdout_set` patients, and
refuses a model fitted on any of them. Membership depends only on each patient's id
(`mlops_platform.evaluation.holdout`), with the key and fraction of the run's environment.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from mlops_platform.evaluation.holdout import HoldoutError, frame_sha256
from mlops_platform.evaluation.holdout import split_holdout as split
from mlops_platform.names import PlatformArtifact
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.steps.validate_model import holdout_inputs


@step
def split_holdout(
    data: pd.DataFrame, patient_column: str
) -> tuple[
    Annotated[pd.DataFrame, PlatformArtifact.DEVELOPMENT_SET],
    Annotated[pd.DataFrame, PlatformArtifact.HOLDOUT_SET],
]:
    governed = GovernedContext.current()
    key, fraction = holdout_inputs(governed.env)
    development, holdout = split(data, patient_column, key, fraction)
    if development.empty or holdout.empty:
        raise HoldoutError(
            f"Splitting {len(data)} rows at holdout fraction {fraction} left "
            f"{len(development)} development and {len(holdout)} holdout rows; both need "
            "patients. Use a larger file."
        )
    log_metadata(
        metadata={
            "holdout": {
                "fraction": fraction,
                "development": {
                    "rows": len(development),
                    "patients": int(development[patient_column].nunique()),
                },
                "holdout": {
                    "rows": len(holdout),
                    "patients": int(holdout[patient_column].nunique()),
                    "sha256": frame_sha256(holdout),
                },
            }
        }
    )
    return development, holdout

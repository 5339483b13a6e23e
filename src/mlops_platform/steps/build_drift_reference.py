"""Profile the data and predictions the model was validated on, saved with the model version.

Batch scoring compares every scored batch with this profile (`mlops_platform.evaluation.drift`),
so a model version without one cannot be monitored. The columns are raw input columns named by
the team's contract: the platform profiles what arrives, not the team's engineered features.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from zenml import log_metadata, step

from mlops_platform.batch.contract import BatchArtifact, DriftReferenceContract
from mlops_platform.evaluation.drift import build_reference
from mlops_platform.runtime.run_context import GovernedContext


@step
def build_drift_reference(
    reference_data: pd.DataFrame, model: BaseEstimator, contract: DriftReferenceContract
) -> Annotated[dict[str, Any], BatchArtifact.DRIFT_REFERENCE]:
    """`reference_data` should be rows the model did not fit on (e.g. the validation split), so
    that the reference predictions look like predictions on new patients."""
    GovernedContext.current()
    inputs = reference_data.drop(columns=list(contract.drop_columns), errors="ignore")
    scores = np.asarray(model.predict_proba(inputs)[:, 1], dtype="float64")
    profile = build_reference(reference_data, scores, contract.numeric, contract.categorical)
    log_metadata(
        metadata={
            "drift_reference": {
                "rows": profile.rows,
                "numeric": list(contract.numeric),
                "categorical": list(contract.categorical),
                "prediction_sample": len(profile.prediction_sample),
            }
        }
    )
    return profile.as_dict()

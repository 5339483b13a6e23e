"""Score the patient-held-out test split and compute the headline metrics."""

from typing import Annotated

import pandas as pd
from sklearn.base import BaseEstimator
from zenml import log_metadata, step

from mlops_platform.evaluation.metrics import classification_metrics
from readmission.core.cohort import LABEL
from readmission.core.model import predict_risk
from readmission.core.params import EvaluationParams
from readmission.core.uci import ENCOUNTER_ID, PATIENT_ID, SENSITIVE_COLUMNS
from readmission.names import Artifact

SPLIT = "test"


@step
def evaluate_model(
    model: BaseEstimator,
    baseline: BaseEstimator,
    test: pd.DataFrame,
    params: EvaluationParams,
) -> tuple[
    Annotated[pd.DataFrame, Artifact.TEST_PREDICTIONS],
    Annotated[dict[str, float | str], Artifact.TEST_METRICS],
    Annotated[dict[str, float | str], Artifact.BASELINE_METRICS],
]:
    y_true = test[LABEL].to_numpy()
    risk = predict_risk(model, test)
    baseline_risk = predict_risk(baseline, test)
    predictions = test[[ENCOUNTER_ID, PATIENT_ID, *SENSITIVE_COLUMNS]].assign(
        y_true=y_true, y_prob=risk, baseline_prob=baseline_risk
    )
    metrics = {**classification_metrics(y_true, risk, params.operating_threshold), "split": SPLIT}
    baseline_metrics = {
        **classification_metrics(y_true, baseline_risk, params.operating_threshold),
        "split": SPLIT,
    }
    scores = {"metrics": metrics, "baseline_metrics": baseline_metrics}
    log_metadata(metadata=scores)
    log_metadata(metadata=scores, infer_model=True)
    return predictions.reset_index(drop=True), metrics, baseline_metrics

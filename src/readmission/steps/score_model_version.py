"""Score the current test split with the model of the run's own model version (promotion runs)."""

from typing import Annotated

import pandas as pd
from zenml import get_step_context, step

from readmission.core.cohort import LABEL
from readmission.core.model import predict_risk
from readmission.core.uci import ENCOUNTER_ID, PATIENT_ID, SENSITIVE_COLUMNS
from readmission.names import Artifact


@step
def score_model_version(test: pd.DataFrame) -> Annotated[pd.DataFrame, Artifact.TEST_PREDICTIONS]:
    """The same predictions frame as `evaluate_model`, from the already trained candidate.

    A promotion judges the model that was trained, not a refit: the model artifact is loaded from
    the run's model version (through its skops materializer) and scored on today's test split.
    """
    version = get_step_context().model_version
    if version is None:
        raise RuntimeError(
            "score_model_version needs the pipeline's ZenML model version to load the model from; "
            "run it in a pipeline configured with model=Model(name=..., version=<number>)."
        )
    model = version.get_model_artifact(Artifact.MODEL).load()
    predictions = test[[ENCOUNTER_ID, PATIENT_ID, *SENSITIVE_COLUMNS]].assign(
        y_true=test[LABEL].to_numpy(), y_prob=predict_risk(model, test)
    )
    return predictions.reset_index(drop=True)

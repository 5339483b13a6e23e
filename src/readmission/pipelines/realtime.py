"""Real-time scoring pipeline: composition only. The platform serves it as a ZenML deployment.

`mlops serve start` deploys this pipeline; its init hook (set by the platform at deploy time)
loads and verifies the model that holds `production`, and each request is scored by the
platform's `serve_encounters` step (ZenML's `/invoke` route) or by the deployment's `/score` route,
which calls the same service. The contract below is batch scoring's, so a served encounter is
read, checked and scored exactly as a row of a batch file (same reader, validator, model artifact
and patient history).
"""

from typing import Any

from zenml import pipeline

from mlops_platform.serving.contract import ServingContract
from mlops_platform.steps.serve_encounters import serve_encounters
from readmission.core import uci
from readmission.input_rules import SCORING_REQUEST_CHECK as REQUEST_CHECK
from readmission.names import Artifact, Pipeline
from readmission.pipelines.batch_inference import (
    BIND_HISTORY,
    INVALID_ROWS,
    READER,
    RISK_COLUMN,
    VALIDATOR,
)


def realtime_contract(operating_threshold: float) -> ServingContract:
    """The UCI layout as the request, batch scoring's rules and model."""
    from mlops_platform.batch.contract import BatchContract

    return ServingContract(
        batch=BatchContract(
            reader=READER,
            validator=VALIDATOR,
            invalid_rows=INVALID_ROWS,
            id_columns=(uci.ENCOUNTER_ID, uci.PATIENT_ID),
            drop_columns=(uci.TARGET_COLUMN,),
            model_artifact=Artifact.MODEL,
            score_column=RISK_COLUMN,
            operating_threshold=operating_threshold,
            context_artifact=Artifact.PATIENT_HISTORY,
            bind_context=BIND_HISTORY,
        ),
        integer_columns=uci.INTEGER_COLUMNS,
        text_columns=uci.STRING_COLUMNS,
        optional_columns=(uci.TARGET_COLUMN,),
        request_check=REQUEST_CHECK,
        # History features read a patient's other encounters in the scored frame: requests about
        # one patient are never scored in one batch.
        score_apart_by=(uci.PATIENT_ID,),
    )


@pipeline(name=Pipeline.REALTIME, enable_cache=False)
def readmission_realtime(encounters: list[dict[str, Any]] | None = None) -> Any:
    return serve_encounters(encounters=encounters)

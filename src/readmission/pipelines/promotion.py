"""Promotion pipeline: composition only. Re-judges a trained model version for a target stage.

The run is configured with the candidate's ZenML model version (`Model(name=..., version=N)`), so
its predictions, gate decision, report and promotion record all land on that version. It rebuilds
the patient-held-out test split of the current data, scores the candidate, runs the platform gate
with the target environment's policy against the current holder of the target stage, and lets the
platform move the stage.
"""

from zenml import pipeline

from mlops_platform.promotion import PromotionOrder
from mlops_platform.steps.promote_model import promote_model
from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import ModelContract, validate_model
from readmission.core.cohort import LABEL
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, SplitParams
from readmission.core.uci import PATIENT_ID, TARGET_COLUMN
from readmission.names import Artifact
from readmission.pipelines.training import SCHEMA_VALIDATOR
from readmission.steps.build_cohort import build_cohort
from readmission.steps.load_encounters import load_encounters
from readmission.steps.score_model_version import score_model_version
from readmission.steps.split_by_patient import split_by_patient

PROMOTION_PIPELINE = "readmission_promotion"


@pipeline(name=PROMOTION_PIPELINE)
def readmission_promotion(
    data: DataSettings,
    split: SplitParams,
    evaluation: EvaluationParams,
    target_stage: str,
    request: PromotionOrder,
) -> None:
    raw, provenance = load_encounters(data)
    encounters = validate_data(raw, validator=SCHEMA_VALIDATOR)
    cohort = build_cohort(encounters)
    _, _, test = split_by_patient(cohort, split)
    predictions = score_model_version(test)
    decision = validate_model(
        predictions=predictions,
        test=test,
        data_provenance=provenance,
        contract=ModelContract(
            model_artifact=Artifact.MODEL,
            patient_column=PATIENT_ID,
            label_columns=(TARGET_COLUMN, LABEL),
            operating_threshold=evaluation.operating_threshold,
        ),
        champion_stage=target_stage,
        reject_on_failure=False,
    )
    promote_model(decision, target_stage=target_stage, request=request)

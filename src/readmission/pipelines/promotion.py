"""Promotion pipeline: composition only. Re-judges a trained model version for a target stage.

The run is configured with the candidate's ZenML model version (`Model(name=..., version=N)`), so
its gate decision, report and promotion record all land on that version. It rebuilds the cohort
of the evaluation data, sets the platform holdout aside, and the platform gate scores the
candidate on the holdout patients with the target environment's policy against the current
holder of the target stage, before the platform moves the stage.
"""

from zenml import pipeline

from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.steps.promote_model import promote_model
from mlops_platform.steps.validate_model import validate_model
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, SplitParams
from readmission.pipelines.evaluation_data import holdout_cohort, readmission_contract

PROMOTION_PIPELINE = "readmission_promotion"


@pipeline(name=PROMOTION_PIPELINE)
def readmission_promotion(
    data: DataSettings,
    split: SplitParams,
    evaluation: EvaluationParams,
    target_stage: str,
    request: PromotionOrder,
) -> None:
    provenance, _, _, holdout = holdout_cohort(data)
    decision = validate_model(
        evaluation_data=holdout,
        data_provenance=provenance,
        contract=readmission_contract(evaluation.operating_threshold),
        champion_stage=target_stage,
        reject_on_failure=False,
    )
    promote_model(decision, target_stage=target_stage, request=request)

"""Batch inference pipeline: composition only. The platform's `score_batch` step does the work.

The model is chosen by stage when the run starts (`mlops infer --stage production` configures
`Model(name=MODEL_NAME, version="production")`), so a promotion changes the scoring model with no
code or configuration change. The contract tells the platform how to read, validate and score
readmission encounters; the risk bands use `evaluation.operating_threshold` of the training config.

Patient history: `ReadmissionFeatures` computes a patient's history (prior encounters, prior
inpatient days, prior emergency visits) from that patient's earlier encounters. The contract has
the platform attach the `patient_history` artifact of the scoring version (the training cohort's
encounters) to the model before scoring, so an encounter sees the patient's earlier encounters
known at training time plus earlier encounters in its own chunk, and a file of known patients
scores the same whatever `--chunk-rows` or `--shard`. Not seen: encounters that arrived after
training (other batches, or other chunks and shards of the same file). Retraining refreshes
the history.
"""

from zenml import Model, pipeline
from zenml.enums import ModelStages

from mlops_platform.batch.contract import BatchContract, BatchRequest
from mlops_platform.steps.score_batch import score_batch
from readmission.core.params import EvaluationParams
from readmission.core.uci import ENCOUNTER_ID, PATIENT_ID, TARGET_COLUMN
from readmission.input_rules import SCORING_INVALID_ROWS, SCORING_READER, SCORING_VALIDATOR
from readmission.names import MODEL_NAME, Artifact, Pipeline

READER = SCORING_READER
VALIDATOR = SCORING_VALIDATOR
INVALID_ROWS = SCORING_INVALID_ROWS
BIND_HISTORY = "readmission.core.model.attach_known_history"
RISK_COLUMN = "readmission_risk"


@pipeline(
    name=Pipeline.BATCH_INFERENCE,
    model=Model(name=MODEL_NAME, version=ModelStages.PRODUCTION.value),
)
def readmission_batch_inference(scoring: BatchRequest, evaluation: EvaluationParams) -> None:
    score_batch(
        request=scoring,
        contract=BatchContract(
            reader=READER,
            validator=VALIDATOR,
            invalid_rows=INVALID_ROWS,
            id_columns=(ENCOUNTER_ID, PATIENT_ID),
            drop_columns=(TARGET_COLUMN,),
            model_artifact=Artifact.MODEL,
            score_column=RISK_COLUMN,
            operating_threshold=evaluation.operating_threshold,
            context_artifact=Artifact.PATIENT_HISTORY,
            bind_context=BIND_HISTORY,
        ),
    )

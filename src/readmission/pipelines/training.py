"""Training pipeline: composition only. Platform steps validate the data and the model and publish it."""

from zenml import Model, pipeline

from mlops_platform.batch.contract import DriftReferenceContract
from mlops_platform.steps.build_drift_reference import build_drift_reference
from mlops_platform.steps.register_model import register_model
from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import ModelContract, validate_model
from readmission.core.cohort import LABEL
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.core.uci import PATIENT_ID, TARGET_COLUMN
from readmission.monitoring import MONITORED_CATEGORICAL, MONITORED_NUMERIC
from readmission.names import MODEL_NAME, Artifact, Pipeline
from readmission.steps.build_cohort import build_cohort
from readmission.steps.evaluate_model import evaluate_model
from readmission.steps.load_encounters import load_encounters
from readmission.steps.split_by_patient import split_by_patient
from readmission.steps.train_model import train_baseline, train_model

SCHEMA_VALIDATOR = "readmission.core.schema.validate_encounters"

READMISSION_MODEL = Model(
    name=MODEL_NAME,
    license="Apache-2.0",
    description="Risk of unplanned readmission within 30 days of discharge for diabetic inpatients.",
    audience="Care-management teams prioritising post-discharge follow-up.",
    use_cases="Rank discharged diabetic inpatients for follow-up calls; decision support only.",
    limitations="Trained on 1999-2008 US hospital data; no post-discharge information.",
)


@pipeline(name=Pipeline.TRAINING, model=READMISSION_MODEL)
def readmission_training(
    data: DataSettings,
    split: SplitParams,
    model: ModelParams,
    evaluation: EvaluationParams,
) -> None:
    raw, provenance = load_encounters(data)
    encounters = validate_data(raw, validator=SCHEMA_VALIDATOR)
    cohort = build_cohort(encounters)
    train, validation, test = split_by_patient(cohort, split)
    candidate = train_model(train, validation, model)
    baseline = train_baseline(train, model)
    predictions, metrics, baseline_metrics = evaluate_model(candidate, baseline, test, evaluation)
    decision = validate_model(
        predictions=predictions,
        test=test,
        baseline_metrics=baseline_metrics,
        data_provenance=provenance,
        contract=ModelContract(
            model_artifact=Artifact.MODEL,
            patient_column=PATIENT_ID,
            label_columns=(TARGET_COLUMN, LABEL),
            operating_threshold=evaluation.operating_threshold,
        ),
    )
    build_drift_reference(
        validation,
        candidate,
        DriftReferenceContract(
            numeric=MONITORED_NUMERIC,
            categorical=MONITORED_CATEGORICAL,
            drop_columns=(TARGET_COLUMN, LABEL),
        ),
    )
    register_model(candidate, metrics, provenance, decision, after="build_drift_reference")

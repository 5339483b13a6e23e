"""Training pipeline: composition only. Platform steps validate the data, hold out patients,
judge the model on them and publish it."""

from zenml import Model, pipeline

from mlops_platform.batch.contract import DriftReferenceContract
from mlops_platform.steps.build_drift_reference import build_drift_reference
from mlops_platform.steps.register_model import register_model
from mlops_platform.steps.validate_model import validate_model
from readmission.core.cohort import LABEL
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.core.uci import TARGET_COLUMN
from readmission.monitoring import MONITORED_CATEGORICAL, MONITORED_NUMERIC
from readmission.names import MODEL_NAME, Pipeline
from readmission.pipelines.evaluation_data import readmission_contract, split_cohort
from readmission.steps.collect_patient_history import collect_patient_history
from readmission.steps.evaluate_model import evaluate_model
from readmission.steps.make_golden_sample import make_golden_sample
from readmission.steps.train_model import train_baseline, train_model

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
    provenance, cohort, train, validation, test, holdout = split_cohort(data, split)
    candidate = train_model(train, validation, model)
    baseline = train_baseline(train, model)
    _, metrics, _ = evaluate_model(candidate, baseline, test, evaluation)
    decision = validate_model(
        evaluation_data=holdout,
        data_provenance=provenance,
        contract=readmission_contract(evaluation.operating_threshold),
        model=candidate,
        reported_metrics=metrics,
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
    collect_patient_history(cohort)
    register_model(
        candidate,
        metrics,
        provenance,
        decision,
        make_golden_sample(),
        after=["build_drift_reference", "collect_patient_history"],
    )

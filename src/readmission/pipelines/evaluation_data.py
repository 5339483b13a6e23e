"""What the training and promotion pipelines share: the data they judge a model on, and how.

Both start from the same validated, patient-split cohort and hand the platform gate the same
contract, so a version is promoted on exactly the terms it was trained and validated on.
"""

from typing import Any, NamedTuple

from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import ModelContract
from readmission.core.cohort import LABEL
from readmission.core.data import DataSettings
from readmission.core.feature_dictionary import predictor_descriptions
from readmission.core.params import SplitParams
from readmission.core.uci import PATIENT_ID, TARGET_COLUMN
from readmission.names import Artifact
from readmission.steps.build_cohort import build_cohort
from readmission.steps.load_encounters import load_encounters
from readmission.steps.split_by_patient import split_by_patient

SCHEMA_VALIDATOR = "readmission.core.schema.validate_encounters"


class EvaluationData(NamedTuple):
    """Outputs of the steps `split_cohort` adds, for the pipeline's next steps."""

    provenance: Any
    cohort: Any
    train: Any
    validation: Any
    test: Any


def split_cohort(data: DataSettings, split: SplitParams) -> EvaluationData:
    """Steps that load, validate, select and split the encounters, inside a pipeline."""
    raw, provenance = load_encounters(data)
    encounters = validate_data(raw, validator=SCHEMA_VALIDATOR)
    cohort = build_cohort(encounters)
    train, validation, test = split_by_patient(cohort, split)
    return EvaluationData(provenance, cohort, train, validation, test)


def readmission_contract(operating_threshold: float) -> ModelContract:
    """How the platform gate reads the readmission model's artifacts and test split."""
    return ModelContract(
        model_artifact=Artifact.MODEL,
        patient_column=PATIENT_ID,
        label_columns=(TARGET_COLUMN, LABEL),
        operating_threshold=operating_threshold,
        predictors=predictor_descriptions(),
    )

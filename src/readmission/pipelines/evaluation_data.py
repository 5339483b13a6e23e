"""What the training and promotion pipelines share: the data they judge a model on, and how.

Both load and validate the encounters and build the cohort; the platform's `split_holdout` then
sets its holdout patients aside. Data science splits, fits and calibrates on the development set
only; the platform gate scores the model on the holdout set, so a version is promoted on exactly
the terms it was trained and validated on.
"""

from typing import Any, NamedTuple

from mlops_platform.steps.split_holdout import split_holdout
from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import ModelContract
from readmission.core.cohort import LABEL
from readmission.core.data import DataSettings
from readmission.core.params import SplitParams
from readmission.core.uci import PATIENT_ID, TARGET_COLUMN
from readmission.names import Artifact
from readmission.steps.build_cohort import build_cohort
from readmission.steps.load_encounters import load_encounters
from readmission.steps.split_by_patient import split_by_patient

# The pandera schema the platform applies to the raw encounters (see validate_data).
RAW_SCHEMA = "readmission.core.schema.raw_schema"


class HeldOutCohort(NamedTuple):
    """Outputs of the steps `holdout_cohort` adds."""

    provenance: Any
    cohort: Any
    development: Any
    holdout: Any


class EvaluationData(NamedTuple):
    """Outputs of the steps `split_cohort` adds, for the pipeline's next steps."""

    provenance: Any
    cohort: Any
    train: Any
    validation: Any
    test: Any
    holdout: Any


def holdout_cohort(data: DataSettings) -> HeldOutCohort:
    """Steps that load, validate and select the encounters, then set the platform holdout aside."""
    raw, provenance = load_encounters(data)
    encounters = validate_data(raw, schema_source=RAW_SCHEMA)
    cohort = build_cohort(encounters)
    development, holdout = split_holdout(cohort, patient_column=PATIENT_ID)
    return HeldOutCohort(provenance, cohort, development, holdout)


def split_cohort(data: DataSettings, split: SplitParams) -> EvaluationData:
    """`holdout_cohort`, then data science's own patient split of the development set."""
    provenance, cohort, development, holdout = holdout_cohort(data)
    train, validation, test = split_by_patient(development, split)
    return EvaluationData(provenance, cohort, train, validation, test, holdout)


def readmission_contract(operating_threshold: float) -> ModelContract:
    """How the platform gate reads the readmission model's artifacts and scores the holdout."""
    return ModelContract(
        model_artifact=Artifact.MODEL,
        baseline_artifact=Artifact.BASELINE_MODEL,
        patient_column=PATIENT_ID,
        label_column=LABEL,
        label_columns=(TARGET_COLUMN, LABEL),
        operating_threshold=operating_threshold,
        # The model card lists the features the stored model was fitted with.
        describe_predictors="readmission.core.feature_dictionary.model_predictors",
    )

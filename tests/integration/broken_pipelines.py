"""A pipeline that breaks the governance rules on purpose: it trains and registers with no model gate."""

from __future__ import annotations

from zenml import pipeline

from mlops_platform.steps.validate_data import validate_data
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.pipelines.training import SCHEMA_VALIDATOR
from readmission.steps.build_cohort import build_cohort
from readmission.steps.load_encounters import load_encounters
from readmission.steps.split_by_patient import split_by_patient
from readmission.steps.train_model import train_model


@pipeline(name="ungated_training")
def ungated_training(
    data: DataSettings, split: SplitParams, model: ModelParams, evaluation: EvaluationParams
) -> None:
    raw, _ = load_encounters(data)
    cohort = build_cohort(validate_data(raw, validator=SCHEMA_VALIDATOR))
    train, validation, _ = split_by_patient(cohort, split)
    train_model(train, validation, model)

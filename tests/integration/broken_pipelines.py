"""A pipeline that breaks the governance rules on purpose: it trains and registers with no model gate."""

from __future__ import annotations

from zenml import pipeline

from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.pipelines.evaluation_data import split_cohort
from readmission.steps.train_model import train_model


@pipeline(name="ungated_training")
def ungated_training(
    data: DataSettings, split: SplitParams, model: ModelParams, evaluation: EvaluationParams
) -> None:
    _, _, train, validation, _ = split_cohort(data, split)
    train_model(train, validation, model)

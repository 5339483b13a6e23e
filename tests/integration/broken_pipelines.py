"""Pipelines that break the governance rules on purpose, for `mlops check` and the runtime checks."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import pipeline, step

from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.steps.promote_model import promote_model
from mlops_platform.steps.validate_data import validate_data
from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.pipelines.evaluation_data import split_cohort
from readmission.steps.load_encounters import load_encounters
from readmission.steps.train_model import train_model


@pipeline(name="ungated_training")
def ungated_training(
    data: DataSettings, split: SplitParams, model: ModelParams, evaluation: EvaluationParams
) -> None:
    """Trains with no model gate and no registration."""
    _, _, train, validation, _, _ = split_cohort(data, split)
    train_model(train, validation, model)


@pipeline(name="unchecked_data")
def unchecked_data(data: DataSettings) -> None:
    """Names `copy.copy` as its data schema: any frame would pass."""
    raw, _ = load_encounters(data)
    validate_data(raw, schema_source="copy.copy")


@step
def hand_in_decision(environment: str) -> Annotated[dict[str, Any], "gate_decision"]:
    """A decision that says `passed` for the right environment, made by no gate."""
    return {"passed": True, "environment": environment, "checks": []}


@pipeline(name="ungated_promotion")
def ungated_promotion(target_stage: str, environment: str, request: PromotionOrder) -> None:
    """The promotion pipeline with the gate removed: promote_model gets a hand-made decision."""
    promote_model(hand_in_decision(environment), target_stage=target_stage, request=request)

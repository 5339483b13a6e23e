"""The training configuration as typed objects; YAML is parsed once, where it enters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataSettings
    split: SplitParams
    model: ModelParams
    evaluation: EvaluationParams

    def pipeline_parameters(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "split": self.split,
            "model": self.model,
            "evaluation": self.evaluation,
        }

"""Typed parameters for the `split`, `model` and `evaluation` sections of the training config.

YAML is parsed into these models once, where it enters; core functions receive them typed.
`configs/base/training.yaml` lists every key and is where values change; the defaults here are the
same values (for code that builds a model directly, such as tests), measured to meet the
acceptance targets on the UCI development file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SplitParams(BaseModel):
    """How patients are divided into train, validation and test sets.

    Both fractions are shares of all patients (not of encounters, not of the remainder).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    test_fraction: float = Field(default=0.05, gt=0.0, lt=1.0)
    validation_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leave_patients_for_training(self) -> SplitParams:
        held_out = self.test_fraction + self.validation_fraction
        if held_out >= 1.0:
            raise ValueError(
                f"test_fraction + validation_fraction must be below 1.0 to leave patients for "
                f"training; got {self.test_fraction} + {self.validation_fraction} = {held_out}. "
                "Lower one of them."
            )
        return self


class ModelParams(BaseModel):
    """Gradient boosting, feature, calibration and baseline settings.

    Boosting runs a fixed number of iterations: row-level early stopping would put encounters of
    one patient on both sides of its internal split. `max_features` is the share of features
    each split considers. Calibration defaults to sigmoid: with ~12k validation encounters
    (~1.3k readmissions) isotonic steps add noise, and sigmoid gave equal or better ROC-AUC and
    Brier on split seeds 42, 1 and 7. `min_category_count` is how often a category must occur in
    training to keep its own code; `baseline_c` is the inverse L2 strength of the logistic
    baseline; `threads` caps the OpenMP threads boosting uses while it fits (1 keeps parallel
    test workers and pipeline steps from starving each other).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    max_iter: int = Field(default=300, ge=1)
    max_leaf_nodes: int = Field(default=31, ge=2)
    min_samples_leaf: int = Field(default=200, ge=1)
    l2_regularization: float = Field(default=10.0, ge=0.0)
    max_features: float = Field(default=0.5, gt=0.0, le=1.0)
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    min_category_count: int = Field(default=50, ge=1)
    baseline_c: float = Field(default=0.1, gt=0.0)
    random_state: int = 42
    threads: int = Field(default=1, ge=1)


class EvaluationParams(BaseModel):
    """Probability cut-off that turns risk into a flag, for recall, precision and risk bands.

    The gate reports recall and precision at it; the model report shows the share of encounters
    flagged (on the UCI development file the base rate of readmission is about 11%).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    operating_threshold: float = Field(default=0.15, gt=0.0, lt=1.0)

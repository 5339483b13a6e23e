"""Names of the platform's own steps and artifacts (checked by `mlops check`)."""

from enum import StrEnum


class PlatformStep(StrEnum):
    VALIDATE_DATA = "validate_data"
    VALIDATE_MODEL = "validate_model"
    REGISTER_MODEL = "register_model"
    SPLIT_HOLDOUT = "split_holdout"


class PlatformArtifact(StrEnum):
    VALIDATED_DATA = "validated_data"
    GATE_DECISION = "gate_decision"
    SUBGROUP_TABLE = "subgroup_table"
    MODEL_REPORT = "model_report"
    REGISTRATION = "registration"
    DEVELOPMENT_SET = "development_set"
    HOLDOUT_SET = "holdout_set"


# The platform's headline measurements of a model on its holdout (gate records, reports).
KEY_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision")

VALIDATED_TAG = "validated"
REJECTED_TAG = "rejected"
# Details key of a `gate_failed` audit record: True when the gate tagged the version rejected.
REJECTED_KEY = "tagged_rejected"

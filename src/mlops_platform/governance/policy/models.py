"""The model gate policy: thresholds per environment, read from ``configs/*/policy.yaml``.

Every gate is always on. The models forbid unknown keys (so ``enabled: false`` or
``mode: warn`` are rejected), require every threshold in the merged result, and bound each
threshold so that a config cannot switch a gate off by making it vacuous (a minimum ROC-AUC of
0.5 or a maximum Brier score of 1 would pass any model).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_platform.config import ConfigError, load_layered, validation_issues
from mlops_platform.evaluation.groups import BUILDABLE_SENSITIVE_FEATURES
from mlops_platform.governance.policy.registry import (
    extra_key_problems,
    load_check_modules,
    missing_registered,
)

POLICY_CONFIG = "policy"
# Sensitive features every fairness assessment must cover; configs may add groups that
# `mlops_platform.evaluation.fairness.sensitive_groups` can build, never remove these.
MANDATORY_SENSITIVE_FEATURES: tuple[str, ...] = ("race", "gender", "age_band")

REQUIRED_THRESHOLDS: tuple[str, ...] = (
    "quality.min_roc_auc",
    "quality.max_brier",
    "quality.max_ece",
    "quality.min_recall",
    "fairness.min_group_size",
    "fairness.min_group_events",
    "fairness.min_subgroup_roc_auc",
    "fairness.max_roc_auc_gap",
    "fairness.max_equalized_odds_difference",
    "champion.max_roc_auc_drop",
    "champion.max_brier_increase",
    "champion.max_ece_increase",
    "holdout.fraction",
    "operating_threshold.min",
    "operating_threshold.max",
    "baseline.max_roc_auc_drop",
    "baseline.max_brier_increase",
)

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
# Sections also take the thresholds of registered checks (policy/registry.py); GatePolicy refuses
# any extra key that no check registered, and any value outside the registered bounds.
_SECTION = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False)


class PolicyError(ConfigError):
    """The policy for an environment is incomplete or tries to weaken a gate."""


class QualityThresholds(BaseModel):
    """Discrimination, calibration and operating-point limits on the held-out test set."""

    model_config = _SECTION
    min_roc_auc: Annotated[float, Field(gt=0.5, le=1.0)]
    max_brier: Annotated[float, Field(gt=0.0, lt=0.25)]
    max_ece: Annotated[float, Field(gt=0.0, le=0.1)]
    min_recall: Annotated[float, Field(gt=0.0, le=1.0)]


class FairnessThresholds(BaseModel):
    """Subgroup limits; groups smaller than the minimums are reported but not compared."""

    model_config = _SECTION
    # Lax here only so that a YAML list becomes the tuple the frozen model stores.
    sensitive_features: Annotated[tuple[str, ...], Field(min_length=1, strict=False)]
    min_group_size: Annotated[int, Field(ge=50)]
    min_group_events: Annotated[int, Field(ge=10)]
    min_subgroup_roc_auc: Annotated[float, Field(gt=0.5, le=1.0)]
    max_roc_auc_gap: Annotated[float, Field(gt=0.0, le=0.25)]
    max_equalized_odds_difference: Annotated[float, Field(gt=0.0, le=0.5)]

    @field_validator("sensitive_features")
    @classmethod
    def _covers_mandatory(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        missing = [f for f in MANDATORY_SENSITIVE_FEATURES if f not in features]
        if missing:
            raise ValueError(
                f"sensitive_features must include {list(MANDATORY_SENSITIVE_FEATURES)}; "
                f"missing {missing}"
            )
        unbuildable = [f for f in features if f not in BUILDABLE_SENSITIVE_FEATURES]
        if unbuildable:
            raise ValueError(
                f"sensitive_features names {unbuildable}, which the fairness code cannot build "
                f"(it builds {list(BUILDABLE_SENSITIVE_FEATURES)}, in "
                "mlops_platform.evaluation.fairness.sensitive_groups); add the group column "
                "there first, or remove the name"
            )
        if len(set(features)) != len(features):
            raise ValueError(f"sensitive_features lists a feature twice: {list(features)}")
        return features


class ChampionMargins(BaseModel):
    """How much worse than the current champion a challenger may be and still be promoted."""

    model_config = _SECTION
    max_roc_auc_drop: Annotated[float, Field(ge=0.0, le=0.05)]
    max_brier_increase: Annotated[float, Field(ge=0.0, le=0.01)]
    max_ece_increase: Annotated[float, Field(ge=0.0, le=0.02)]


class HoldoutPolicy(BaseModel):
    """Share of patients the platform holds out for every gate (mlops_platform.evaluation.holdout).

    Bounded so that the holdout keeps enough patients for the subgroup checks and leaves most
    patients for training.
    """

    model_config = _STRICT
    fraction: Annotated[float, Field(ge=0.1, le=0.5)]


class ThresholdRange(BaseModel):
    """Where the data-science config may put the operating threshold (it drives recall and
    equalized odds, so a threshold near 0 or 1 would make those checks vacuous)."""

    model_config = _STRICT
    min: Annotated[float, Field(ge=0.01, lt=1.0)]
    max: Annotated[float, Field(gt=0.0, le=0.9)]

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRange:
        if self.min >= self.max:
            raise ValueError(
                f"operating_threshold.min ({self.min}) must be below operating_threshold.max "
                f"({self.max})"
            )
        return self


class BaselineMargins(BaseModel):
    """How much worse than the simple (logistic) baseline a candidate may be in staging and
    production; the platform scores both models on the holdout."""

    model_config = _STRICT
    max_roc_auc_drop: Annotated[float, Field(ge=0.0, le=0.05)]
    max_brier_increase: Annotated[float, Field(ge=0.0, le=0.01)]


SHA256_PATTERN = r"^[0-9a-f]{64}$"


class EvaluationDataPolicy(BaseModel):
    """Which data files this environment's gates judge on.

    ``allow_refresh``: False (the default), a promotion evaluates on the dataset registered with
    the version at training (same SHA-256); True, another file is accepted and recorded as a
    refresh. ``approved_file_sha256``: the SHA-256 of every data file a gate outside local may
    train or judge on (the platform's hash of the file's bytes, `mlops versions` "data");
    empty accepts any real file.
    """

    model_config = _STRICT
    allow_refresh: bool
    approved_file_sha256: tuple[Annotated[str, Field(pattern=SHA256_PATTERN)], ...]

    @field_validator("approved_file_sha256", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        # YAML gives a list; strict mode would take only a tuple.
        return tuple(value) if isinstance(value, list) else value


class GatePolicy(BaseModel):
    """The whole gate policy of one environment; see ``configs/base/policy.yaml``."""

    model_config = _STRICT
    mode: Literal["enforce"]
    quality: QualityThresholds
    fairness: FairnessThresholds
    champion: ChampionMargins
    holdout: HoldoutPolicy
    operating_threshold: ThresholdRange
    baseline: BaselineMargins
    evaluation_data: EvaluationDataPolicy

    @model_validator(mode="after")
    def _registered_thresholds_only(self) -> GatePolicy:
        sections = self.sections()
        problems = [
            problem
            for name, section in sections.items()
            for problem in extra_key_problems(
                name, section.model_extra or {}, type(section).model_fields
            )
        ]
        extras = {name: section.model_extra or {} for name, section in sections.items()}
        problems += [f"{key} is not set" for key in missing_registered(extras)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def sections(self) -> dict[str, BaseModel]:
        return {"quality": self.quality, "fairness": self.fairness, "champion": self.champion}

    def registered_limits(self) -> dict[str, float]:
        """The limits of the registered checks, by dotted key."""
        return {
            f"{name}.{key}": value
            for name, section in self.sections().items()
            for key, value in (section.model_extra or {}).items()
        }


def load_policy(env: str, directory: Path | None = None) -> GatePolicy:
    """Load and validate the merged policy of ``env``; any problem raises ``PolicyError``."""
    raw = load_layered(POLICY_CONFIG, env, directory)
    try:
        return GatePolicy.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"  - {line}" for line in validation_issues(error, "policy"))
        raise PolicyError(
            f"The gate policy for environment {env!r} is invalid:\n{problems}\n"
            "Gates cannot be disabled or loosened past their bounds, and every threshold must "
            f"be set. Fix configs/{env}/{POLICY_CONFIG}.yaml or configs/base/{POLICY_CONFIG}.yaml."
        ) from error


def missing_thresholds(raw: Mapping[str, Any]) -> list[str]:
    """The ``REQUIRED_THRESHOLDS`` (and registered checks' keys) a merged raw policy lacks."""
    missing = []
    for dotted in (*REQUIRED_THRESHOLDS, *load_check_modules()):
        node: Any = raw
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            missing.append(dotted)
    return missing

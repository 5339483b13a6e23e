"""The decision on a model version's realised performance: thresholds, checks, verdict, advice.

Thresholds come from the ``outcomes`` section of ``configs/*/monitoring.yaml`` (the file documents
the rule). ``judge`` is a pure function of the measured performance, the version's validation
values and the thresholds; it never reads a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

from mlops_platform.config import ConfigError, load_layered, validation_issues

MONITORING_CONFIG = "monitoring"
OUTCOMES_SECTION = "outcomes"


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    NOT_ASSESSED = "not assessed"


class Check(StrEnum):
    MIN_LABELLED = "min_labelled"
    ROC_AUC_FLOOR = "roc_auc_floor"
    ROC_AUC_DROP = "roc_auc_drop"
    CALIBRATION_IN_THE_LARGE = "calibration_in_the_large"
    SUBGROUP_ROC_AUC_FLOOR = "subgroup_roc_auc_floor"


class OutcomeConfigError(ConfigError):
    """The outcome thresholds in ``configs/*/monitoring.yaml`` are missing or out of bounds."""


_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


@validated_dataclass(frozen=True, config=_CONFIG)
class OutcomeThresholds:
    """Limits of the rule documented in ``configs/base/monitoring.yaml``.

    Each bound keeps its check meaningful: a ROC-AUC floor at or below 0.5, a tolerated drop or
    calibration error of 0.5, or a huge minimum would silently switch a check off.
    """

    min_labelled: Annotated[int, Field(ge=50, le=100_000)]
    min_events: Annotated[int, Field(ge=5, le=10_000)]
    roc_auc_floor: Annotated[float, Field(gt=0.5, lt=1.0)]
    max_roc_auc_drop: Annotated[float, Field(gt=0.0, le=0.2)]
    max_calibration_in_the_large: Annotated[float, Field(gt=0.0, le=0.2)]
    subgroup_roc_auc_floor: Annotated[float, Field(gt=0.5, lt=1.0)]
    subgroup_min_size: Annotated[int, Field(ge=20, le=100_000)]
    subgroup_min_events: Annotated[int, Field(ge=5, le=10_000)]
    bootstrap_resamples: Annotated[int, Field(ge=50, le=5_000)]
    window: Literal["month", "week", "day"]


def load_outcome_thresholds(env: str, directory: Path | None = None) -> OutcomeThresholds:
    """The ``outcomes`` section of the layered ``monitoring`` config for ``env``."""
    config = load_layered(MONITORING_CONFIG, env, directory)
    section = config.get(OUTCOMES_SECTION)
    if not isinstance(section, Mapping):
        raise OutcomeConfigError(
            f"monitoring.yaml for {env!r} has no {OUTCOMES_SECTION!r} mapping (got "
            f"{type(section).__name__}). Add it to configs/base/monitoring.yaml."
        )
    try:
        return OutcomeThresholds(**section)
    except (ValidationError, TypeError) as error:
        problems = (
            "; ".join(validation_issues(error, OUTCOMES_SECTION))
            if isinstance(error, ValidationError)
            else str(error)
        )
        raise OutcomeConfigError(
            f"Outcome thresholds for {env!r} are invalid: {problems}. Fix the {OUTCOMES_SECTION} "
            "section of configs/base/monitoring.yaml or the environment's override."
        ) from error


def thresholds_hash(thresholds: OutcomeThresholds) -> str:
    """SHA-256 of the effective thresholds, recorded with every verdict."""
    values = dataclasses.asdict(thresholds)  # type: ignore[call-overload]
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: float | None
    limit: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "limit": self.limit,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    checks: tuple[CheckResult, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]


def judge(
    performance: Mapping[str, Any],
    validation: Mapping[str, Any],
    subgroups: Sequence[Mapping[str, Any]] | None,
    thresholds: OutcomeThresholds,
) -> Judgement:
    """Verdict on one model version.

    ``performance`` holds ``n_labelled``, ``n_events`` and, when assessable, ``roc_auc``,
    ``roc_auc_ci`` (lower, upper), ``observed_rate`` and ``mean_predicted``; ``validation`` the
    version's values at validation (``roc_auc``); ``subgroups`` the realised subgroup rows
    (feature, group, roc_auc, eligible) or None when the labels carry no group columns.
    """
    n = int(performance["n_labelled"])
    events = int(performance["n_events"])
    non_events = n - events
    enough = n >= thresholds.min_labelled and min(events, non_events) >= thresholds.min_events
    size = CheckResult(
        Check.MIN_LABELLED,
        enough,
        float(n),
        float(thresholds.min_labelled),
        f"{n} labelled encounters ({events} readmitted, {non_events} not); at least "
        f"{thresholds.min_labelled} and {thresholds.min_events} of each outcome are needed",
    )
    if not enough:
        return Judgement(Verdict.NOT_ASSESSED, (size,))
    checks = [size, *_performance_checks(performance, validation, thresholds)]
    notes: list[str] = []
    if subgroups is None:
        notes.append(
            "Subgroups not assessed: the labels file has no race, gender and age columns (add "
            "them to judge the subgroup floor)."
        )
    else:
        checks.append(_subgroup_check(subgroups, thresholds))
    verdict = Verdict.DEGRADED if any(not c.passed for c in checks) else Verdict.OK
    return Judgement(verdict, tuple(checks), tuple(notes))


def _performance_checks(
    performance: Mapping[str, Any], validation: Mapping[str, Any], thresholds: OutcomeThresholds
) -> list[CheckResult]:
    auc = _number(performance.get("roc_auc"))
    checks = [
        CheckResult(
            Check.ROC_AUC_FLOOR,
            auc is not None and auc >= thresholds.roc_auc_floor,
            auc,
            thresholds.roc_auc_floor,
            f"realised ROC-AUC {_fmt(auc)}; floor {thresholds.roc_auc_floor:.3f}",
        )
    ]
    interval = performance.get("roc_auc_ci")
    upper = _number(interval[1]) if interval else None
    validated = _number(validation.get("roc_auc"))
    if validated is None or upper is None:
        drop = None
        detail = (
            "cannot be judged: "
            + ("no validation ROC-AUC is recorded for this version" if validated is None else "")
            + (" and " if validated is None and upper is None else "")
            + ("the realised ROC-AUC has no interval" if upper is None else "")
        )
    else:
        drop = validated - upper
        detail = (
            f"validation ROC-AUC {validated:.3f} minus the interval's upper end {upper:.3f} = "
            f"{drop:.3f}; at most {thresholds.max_roc_auc_drop:.3f} tolerated"
        )
    checks.append(
        CheckResult(
            Check.ROC_AUC_DROP,
            drop is not None and drop <= thresholds.max_roc_auc_drop,
            drop,
            thresholds.max_roc_auc_drop,
            detail,
        )
    )
    observed = _number(performance.get("observed_rate"))
    predicted = _number(performance.get("mean_predicted"))
    gap = abs(observed - predicted) if observed is not None and predicted is not None else None
    checks.append(
        CheckResult(
            Check.CALIBRATION_IN_THE_LARGE,
            gap is not None and gap <= thresholds.max_calibration_in_the_large,
            gap,
            thresholds.max_calibration_in_the_large,
            f"observed rate {_fmt(observed)} vs mean predicted risk {_fmt(predicted)}: gap "
            f"{_fmt(gap)}; at most {thresholds.max_calibration_in_the_large:.3f} tolerated",
        )
    )
    return checks


def _subgroup_check(
    subgroups: Sequence[Mapping[str, Any]], thresholds: OutcomeThresholds
) -> CheckResult:
    eligible = [row for row in subgroups if row.get("eligible")]
    below = sorted(
        (
            row
            for row in eligible
            if (_number(row.get("roc_auc")) or 0.0) < thresholds.subgroup_roc_auc_floor
        ),
        key=lambda row: _number(row.get("roc_auc")) or 0.0,
    )
    lowest = min((_number(r.get("roc_auc")) or 0.0 for r in eligible), default=None)
    if not eligible:
        detail = (
            f"no subgroup has {thresholds.subgroup_min_size} encounters and "
            f"{thresholds.subgroup_min_events} of each outcome; none could be judged"
        )
    elif below:
        detail = "below the floor: " + ", ".join(
            f"{r['feature']}={r['group']} {_fmt(_number(r.get('roc_auc')))} (n={r['n']})"
            for r in below
        )
    else:
        detail = f"{len(eligible)} subgroups judged, lowest ROC-AUC {_fmt(lowest)}"
    return CheckResult(
        Check.SUBGROUP_ROC_AUC_FLOOR,
        not below,
        lowest,
        thresholds.subgroup_roc_auc_floor,
        detail,
    )


def recommendation(
    model_name: str, model_version: str, judgement: Judgement, evidence: Mapping[str, Any]
) -> str | None:
    """A retraining recommendation naming the evidence, for a degraded version; else None."""
    if judgement.verdict is not Verdict.DEGRADED:
        return None
    failed = "; ".join(f"{c.name}: {c.detail}" for c in judgement.failed())
    return (
        f"Retrain {model_name}: version {model_version} is degraded on "
        f"{evidence.get('n_labelled')} labelled encounters (labels sha256 "
        f"{str(evidence.get('labels_sha256', ''))[:16]}…, as of {evidence.get('as_of')}). "
        f"Failed: {failed}. Train on data that includes the recent encounters, compare the new "
        "version with this one (`mlops train`, then `mlops promote`), and review the outcome "
        "report."
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class StandingCheck:
    """A version's outcome verdict as it stands: the check that decides it, and the latest one."""

    standing: Any  # the audit record (`outcomes_checked`) whose verdict stands
    latest: Any  # the newest such record; the same one unless a later check did not clear it

    @property
    def overridden(self) -> bool:
        """A later check disagrees, but cannot clear the standing `degraded` verdict."""
        return self.latest is not self.standing


def standing_checks(records: Sequence[Any]) -> dict[str, StandingCheck]:
    """Per model version, the outcome check that stands, from `outcomes_checked` records (pure).

    A `degraded` verdict stands once recorded: a later `ok` (on other labels, an earlier as-of, a
    smaller window) does not clear it, because a check on other outcomes does not show that the
    degradation went away. The newest degraded check stands then; otherwise the newest check.
    A degraded version is retrained or replaced (its recommendation says how), never cleared.
    """
    by_version: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: r.seq):
        by_version.setdefault(str(record.model_version), []).append(record)
    standing = {}
    for version, checks in by_version.items():
        degraded = [c for c in checks if c.details.get("verdict") == Verdict.DEGRADED.value]
        standing[version] = StandingCheck((degraded or checks)[-1], checks[-1])
    return standing

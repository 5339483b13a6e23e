"""The pure model gate: metrics and a policy in, one decision listing every check out.

It fails closed: a missing metric, a value that is not a finite number (NaN comparisons are
always False, so they are caught explicitly), a missing fairness summary, a champion without
metrics and an empty list of checks all fail.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mlops_platform.config import ENVIRONMENTS, ConfigError

if TYPE_CHECKING:
    from mlops_platform.evaluation.fairness import FairnessSummary
    from mlops_platform.governance.policy.models import GatePolicy

Comparison = Literal[">=", "<="]

ROC_AUC = "roc_auc"
BRIER = "brier"
ECE = "ece"
RECALL = "recall"

_QUALITY_HINTS = {
    ROC_AUC: "the model ranks readmissions too poorly; improve features or the model",
    BRIER: "probabilities are too far from outcomes; improve or recalibrate the model",
    ECE: "probabilities are miscalibrated; recalibrate (isotonic or sigmoid)",
    RECALL: "too few readmissions are flagged; lower the operating threshold or improve the model",
}


@dataclass(frozen=True)
class CheckResult:
    """One gate check: ``value`` must be ``comparison`` ``limit`` for ``passed``."""

    name: str
    passed: bool
    value: float | None
    limit: float | None
    comparison: Comparison
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """All checks of one gate evaluation; it passes only if there are checks and all pass."""

    passed: bool
    checks: tuple[CheckResult, ...]
    environment: str

    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed, in evaluation order."""
        return tuple(check for check in self.checks if not check.passed)

    def message(self) -> str:
        """One readable message naming every failed check with its value, limit and a hint."""
        total = len(self.checks)
        if total == 0:
            return (
                f"Model gate failed for environment {self.environment!r}: no checks were "
                "evaluated, and a gate with nothing to check cannot pass."
            )
        failed = self.failures()
        if not failed:
            return f"Model gate passed for environment {self.environment!r} ({total} checks)."
        lines = [
            f"Model gate failed for environment {self.environment!r} "
            f"({len(failed)} of {total} checks):"
        ]
        lines.extend(f"  - {_describe_failure(check)}" for check in failed)
        return "\n".join(lines)

    def enforce(self) -> None:
        """Raise ``GateFailedError`` unless the decision passed."""
        if not self.passed:
            raise GateFailedError(self)


class GateFailedError(RuntimeError):
    """A model failed its gate; ``decision`` holds every check."""

    def __init__(self, decision: GateDecision, subject: str | None = None) -> None:
        super().__init__((f"{subject}: " if subject else "") + decision.message())
        self.decision = decision


def evaluate_quality(metrics: Mapping[str, float], policy: GatePolicy) -> list[CheckResult]:
    """Check ROC-AUC, Brier score, ECE and recall against the policy's quality limits."""
    quality = policy.quality
    limits: tuple[tuple[str, float, Comparison], ...] = (
        (ROC_AUC, quality.min_roc_auc, ">="),
        (BRIER, quality.max_brier, "<="),
        (ECE, quality.max_ece, "<="),
        (RECALL, quality.min_recall, ">="),
    )
    return [
        _compare(name, metrics.get(name), limit, comparison, _QUALITY_HINTS[name], metric=name)
        for name, limit, comparison in limits
    ]


def evaluate_fairness(summary: FairnessSummary | None, policy: GatePolicy) -> list[CheckResult]:
    """Check coverage of the sensitive features, worst subgroup ROC-AUC and the two gaps."""
    fairness = policy.fairness
    if summary is None:
        return [
            CheckResult(
                name="fairness_assessed",
                passed=False,
                value=None,
                limit=float(len(fairness.sensitive_features)),
                comparison=">=",
                detail="fairness summary missing: compute it on the test set before the gate",
            )
        ]
    return [
        _coverage(summary, policy),
        _compare(
            "subgroup_roc_auc_min",
            summary.min_subgroup_roc_auc,
            fairness.min_subgroup_roc_auc,
            ">=",
            f"the model is close to chance for {summary.worst_group or 'a group'}; see the "
            "subgroup table of the model report",
        ),
        _compare(
            "subgroup_roc_auc_gap",
            summary.max_roc_auc_gap,
            fairness.max_roc_auc_gap,
            "<=",
            f"ranking quality differs most across {summary.worst_feature!r}; see the subgroup "
            "table of the model report",
        ),
        _compare(
            "equalized_odds_difference",
            summary.equalized_odds_difference,
            fairness.max_equalized_odds_difference,
            "<=",
            "true or false positive rates differ too much between groups at the operating "
            "threshold; see the subgroup table of the model report",
        ),
    ]


NO_CHAMPION = "no champion holds the stage yet"
IS_CHAMPION = "this version holds the stage: it is the champion, not compared with itself"


def evaluate_champion(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    policy: GatePolicy,
    absent: str = NO_CHAMPION,
) -> list[CheckResult]:
    """Compare a challenger with the model holding the stage (``None``: no comparison, for the
    reason ``absent`` gives: nobody holds it, or the challenger is the holder)."""
    if champion is None:
        return [
            CheckResult(
                name="champion",
                passed=True,
                value=None,
                limit=None,
                comparison=">=",
                detail=absent,
            )
        ]
    margins = policy.champion
    hint = "the challenger is worse than the champion; keep the champion or improve the model"
    return [
        _compare(
            "roc_auc_drop_vs_champion",
            _difference(champion, challenger, ROC_AUC),
            margins.max_roc_auc_drop,
            "<=",
            hint,
            metric=ROC_AUC,
        ),
        _compare(
            "brier_increase_vs_champion",
            _difference(challenger, champion, BRIER),
            margins.max_brier_increase,
            "<=",
            hint,
            metric=BRIER,
        ),
        _compare(
            "ece_increase_vs_champion",
            _difference(challenger, champion, ECE),
            margins.max_ece_increase,
            "<=",
            hint,
            metric=ECE,
        ),
    ]


def evaluate_operating_threshold(threshold: object, policy: GatePolicy) -> list[CheckResult]:
    """The operating threshold (chosen by data science) must lie in the policy's range."""
    bounds = policy.operating_threshold
    hint = (
        "set evaluation.operating_threshold of the training config inside the policy's "
        "operating_threshold range (configs/*/policy.yaml)"
    )
    return [
        _compare("operating_threshold_min", threshold, bounds.min, ">=", hint),
        _compare("operating_threshold_max", threshold, bounds.max, "<=", hint),
    ]


def evaluate_baseline(
    candidate: Mapping[str, float], baseline: Mapping[str, float] | None, policy: GatePolicy
) -> list[CheckResult]:
    """The candidate against the simple baseline the platform scored on the same holdout.

    Applied in staging and production by `evaluate`; a missing baseline fails there.
    """
    margins = policy.baseline
    if baseline is None:
        return [
            CheckResult(
                name="baseline",
                passed=False,
                value=None,
                limit=None,
                comparison="<=",
                detail="no baseline model was scored: link the baseline model artifact to the "
                "model version (the model contract names it) so the platform can compare",
            )
        ]
    hint = (
        "the candidate is worse than the simple logistic baseline; a simpler model would serve "
        "patients better, so improve the candidate or ship the baseline"
    )
    return [
        _compare(
            "roc_auc_drop_vs_baseline",
            _difference(baseline, candidate, ROC_AUC),
            margins.max_roc_auc_drop,
            "<=",
            hint,
            metric=ROC_AUC,
        ),
        _compare(
            "brier_increase_vs_baseline",
            _difference(candidate, baseline, BRIER),
            margins.max_brier_increase,
            "<=",
            hint,
            metric=BRIER,
        ),
    ]


# Environments where the candidate must hold its own against the baseline.
BASELINE_ENVIRONMENTS: tuple[str, ...] = ("staging", "production")
_NOT_GIVEN: object = object()


def decide(checks: Iterable[CheckResult], environment: str) -> GateDecision:
    """Collect checks into a decision; no checks, or any failed check, means failed."""
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"Unknown environment {environment!r}; valid environments are "
            f"{', '.join(ENVIRONMENTS)}."
        )
    collected = tuple(checks)
    passed = bool(collected) and all(check.passed for check in collected)
    return GateDecision(passed=passed, checks=collected, environment=environment)


def evaluate(
    metrics: Mapping[str, float],
    fairness: FairnessSummary | None,
    champion: Mapping[str, float] | None,
    policy: GatePolicy,
    environment: str,
    *,
    operating_threshold: object = _NOT_GIVEN,
    baseline: Mapping[str, float] | None = None,
    champion_absent: str = NO_CHAMPION,
) -> GateDecision:
    """Run every gate and decide; the one entry point callers use.

    Quality, fairness, champion and the registered checks always; the operating threshold's range
    when the caller passes the threshold (the platform's `validate_model` always does); the
    baseline comparison in `BASELINE_ENVIRONMENTS`, where a missing baseline fails.
    """
    from mlops_platform.governance.policy.registry import GateInputs, evaluate_registered

    checks = [
        *evaluate_quality(metrics, policy),
        *evaluate_fairness(fairness, policy),
        *evaluate_champion(metrics, champion, policy, champion_absent),
        *evaluate_registered(GateInputs(metrics, fairness, champion), policy.registered_limits()),
    ]
    if operating_threshold is not _NOT_GIVEN:
        checks.extend(evaluate_operating_threshold(operating_threshold, policy))
    if environment in BASELINE_ENVIRONMENTS:
        checks.extend(evaluate_baseline(metrics, baseline, policy))
    return decide(checks, environment)


def compare(
    name: str, value: object, limit: float, comparison: Comparison, hint: str
) -> CheckResult:
    """One threshold check for a registered gate check (fails closed on a missing or NaN value)."""
    return _compare(name, value, limit, comparison, hint, metric=name)


def _compare(
    name: str,
    raw_value: object,
    limit: float,
    comparison: Comparison,
    hint: str,
    *,
    metric: str | None = None,
) -> CheckResult:
    """One threshold check that fails for a missing, non-numeric, NaN or infinite value."""
    if raw_value is None:
        detail = f"metric missing: compute {metric!r} and log it before the gate"
        if metric is None:
            detail = "value missing: it could not be computed"
        return CheckResult(name, False, None, limit, comparison, detail)
    value = _as_float(raw_value)
    if value is None or not math.isfinite(value):
        return CheckResult(
            name,
            False,
            value,
            limit,
            comparison,
            f"value {raw_value!r} is not a finite number; it could not be computed",
        )
    passed = _holds(value, limit, comparison)
    return CheckResult(name, passed, value, limit, comparison, "within limit" if passed else hint)


def _as_float(value: object) -> float | None:
    """A real number as float; None for anything else (strings and booleans included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _difference(minuend: Mapping[str, float], subtrahend: Mapping[str, float], key: str) -> object:
    """``minuend[key] - subtrahend[key]``, or None if either side lacks the metric."""
    left, right = minuend.get(key), subtrahend.get(key)
    if left is None or right is None:
        return None
    left_value, right_value = _as_float(left), _as_float(right)
    if left_value is None or right_value is None:
        return math.nan
    return left_value - right_value


def _coverage(summary: FairnessSummary, policy: GatePolicy) -> CheckResult:
    """The summary must cover every policy feature with at least the policy's group minimums."""
    fairness = policy.fairness
    assessed = set(summary.table["feature"].astype(str)) - set(summary.unassessed_features)
    problems = [
        f"feature {feature!r} not assessed"
        for feature in fairness.sensitive_features
        if feature not in assessed
    ]
    if summary.unassessed_features:
        problems.append(
            f"fewer than two groups of >= {summary.min_group_size} encounters with >= "
            f"{summary.min_group_events} of each outcome in {list(summary.unassessed_features)}; "
            "evaluate on a larger test set"
        )
    if summary.min_group_size < fairness.min_group_size:
        problems.append(
            f"summary used min_group_size {summary.min_group_size} < policy "
            f"{fairness.min_group_size}"
        )
    if summary.min_group_events < fairness.min_group_events:
        problems.append(
            f"summary used min_group_events {summary.min_group_events} < policy "
            f"{fairness.min_group_events}"
        )
    covered = sum(feature in assessed for feature in fairness.sensitive_features)
    return CheckResult(
        name="fairness_assessed",
        passed=not problems,
        value=float(covered),
        limit=float(len(fairness.sensitive_features)),
        comparison=">=",
        detail="; ".join(problems) if problems else "within limit",
    )


def _describe_failure(check: CheckResult) -> str:
    if check.value is None or not math.isfinite(check.value) or check.limit is None:
        limit = "" if check.limit is None else f" (required {check.comparison} {check.limit:.4g})"
        return f"{check.name}: {check.detail}{limit}"
    if _holds(check.value, check.limit, check.comparison):
        return f"{check.name}: {check.detail}"
    relation = "< minimum" if check.comparison == ">=" else "> maximum"
    return f"{check.name} = {check.value:.4g} {relation} {check.limit:.4g}: {check.detail}"


def _holds(value: float, limit: float, comparison: Comparison) -> bool:
    return value >= limit if comparison == ">=" else value <= limit


def unapproved_data_problem(
    env: str, approved: Sequence[str], files: Mapping[str, str | None]
) -> str | None:
    """Why a gate in ``env`` may not train or judge on ``files`` (what each is: the platform's
    SHA-256 of its bytes, None when the run had no data file), or None: outside local, with an
    approved list set (``evaluation_data.approved_file_sha256``), every file must be on it."""
    if env == "local" or not approved:
        return None
    for what, sha256 in files.items():
        if sha256 not in approved:
            return (
                f"the {env} gate trains and judges only on approved data files, and {what} "
                + (f"has sha256 {sha256}" if sha256 else "is not a file the platform hashed")
                + f", which evaluation_data.approved_file_sha256 (configs/{env}/policy.yaml or "
                "configs/base/policy.yaml) does not list; use an approved file, or have the "
                "platform team approve this one through a reviewed change of the policy"
            )
    return None

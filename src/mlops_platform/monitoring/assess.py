"""Assess every model version that served predictions: metrics, subgroups, windows, verdict (pure).

The result is plain JSON types: what `mlops monitor outcomes --json` prints, what the audit event
and the model version's metadata record, and what the HTML report shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_platform.monitoring.join import WINDOW, JoinResult
from mlops_platform.monitoring.performance import (
    calibration_points,
    realised_metrics,
    realised_subgroups,
    windows,
)
from mlops_platform.monitoring.verdict import (
    OutcomeThresholds,
    Verdict,
    judge,
    recommendation,
)

# Validation values shown beside the realised ones (keys of the version's gate metrics).
VALIDATION_KEYS = ("roc_auc", "brier", "ece", "observed_rate", "mean_predicted", "n")


@dataclass(frozen=True)
class VersionFacts:
    """What the platform recorded about a version when it was validated, read from the store."""

    model_name: str
    model_version: str
    validation: dict[str, Any] = field(default_factory=dict)
    validation_subgroups: list[dict[str, Any]] = field(default_factory=list)
    operating_threshold: float | None = None


def _text_codes(values: pd.Series) -> pd.Categorical:
    """The values as text categories (only those present): one pass over codes, not a Python
    string per row."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    name_codes, names = pd.factorize(np.array([str(u) for u in uniques], dtype=object))
    return pd.Categorical.from_codes(name_codes[codes], categories=names)


def _order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 62, version)


def assess_versions(
    joined: JoinResult,
    facts: Mapping[str, VersionFacts],
    thresholds: OutcomeThresholds,
    evidence: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One assessment per model version that has served predictions (labelled or pending)."""
    labelled = joined.labelled
    served_by = _text_codes(labelled["model_version"])
    versions = sorted(set(joined.pending) | set(served_by.categories), key=_order)
    results = []
    for version in versions:
        mask = np.asarray(served_by == version)
        rows = labelled if mask.all() else labelled.loc[mask]
        fact = facts.get(version) or VersionFacts("", version)
        results.append(_assess_one(version, rows, joined, fact, thresholds, evidence))
    return results


def _assess_one(
    version: str,
    rows: pd.DataFrame,
    joined: JoinResult,
    fact: VersionFacts,
    thresholds: OutcomeThresholds,
    evidence: Mapping[str, Any],
) -> dict[str, Any]:
    metrics = realised_metrics(rows, thresholds.bootstrap_resamples)
    latest = str(rows[WINDOW].max()) if not rows.empty else None
    subgroups = None
    if fact.operating_threshold is not None and not rows.empty:
        subgroups = realised_subgroups(
            rows,
            fact.operating_threshold,
            thresholds.subgroup_min_size,
            thresholds.subgroup_min_events,
            fact.validation_subgroups,
        )
    judgement = judge(metrics, fact.validation, subgroups, thresholds)
    model_name = fact.model_name or (
        str(rows["model_name"].iloc[0]) if not rows.empty else fact.model_name
    )
    return {
        "model_name": model_name,
        "model_version": version,
        "stages_at_scoring": sorted(_text_codes(rows["model_stage"]).categories),
        "inference_runs": sorted(_text_codes(rows["inference_run_id"]).categories),
        "n_pending": joined.pending.get(version, 0),
        **metrics,
        "validation": {k: fact.validation.get(k) for k in VALIDATION_KEYS},
        "verdict": judgement.verdict.value,
        "failed_checks": [c.as_dict() for c in judgement.failed()],
        "checks": [c.as_dict() for c in judgement.checks],
        "notes": list(judgement.notes),
        "recommendation": recommendation(
            model_name, version, judgement, {**evidence, "n_labelled": metrics["n_labelled"]}
        ),
        "subgroups": subgroups,
        "windows": _windows(rows, metrics, thresholds.bootstrap_resamples),
        "calibration_window": latest,
        "calibration_curve": calibration_points(rows.loc[rows[WINDOW] == latest]),
    }


def _windows(rows: pd.DataFrame, metrics: dict[str, Any], n_boot: int) -> list[dict[str, Any]]:
    """Metrics per scoring window; a single window is the whole version, already measured."""
    names = rows[WINDOW].unique() if not rows.empty else []
    if len(names) == 1:
        return [{"window": str(names[0]), **metrics}]
    return windows(rows, n_boot)


def overall_verdict(versions: list[dict[str, Any]]) -> str:
    """Degraded if any version is; ok if every assessed version is ok; else not assessed."""
    verdicts = {v["verdict"] for v in versions}
    if Verdict.DEGRADED.value in verdicts:
        return Verdict.DEGRADED.value
    if Verdict.OK.value in verdicts:
        return Verdict.OK.value
    return Verdict.NOT_ASSESSED.value

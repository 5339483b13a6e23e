"""Outcome monitoring step: join true outcomes to the served predictions and judge each version.

The step reads the labels file and the verified batch results, calls the pure core
(`mlops_platform.monitoring`), then records what it decided: one `outcomes_checked` audit event
per model version (mirrored onto the version's metadata), the latest assessment on the version,
an alert and a retraining recommendation when a version is degraded, and the HTML report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from zenml import get_step_context, log_metadata, step
from zenml.types import HTMLString

from mlops_platform.batch.recorded import recorded_predictions_sha256, recorded_scoring_manifest
from mlops_platform.batch.results import ResultNotFoundError
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.monitoring.assess import VersionFacts, assess_versions, overall_verdict
from mlops_platform.monitoring.join import join_outcomes
from mlops_platform.monitoring.labels import OutcomeContract, read_labels
from mlops_platform.monitoring.predictions import (
    RecordedPart,
    ServedBatch,
    load_served_log,
    load_served_predictions,
    recorded_parts_from,
    stopped_services,
)
from mlops_platform.monitoring.verdict import (
    OutcomeThresholds,
    Verdict,
    load_outcome_thresholds,
    thresholds_hash,
)
from mlops_platform.reporting.outcome_report import render_outcome_report
from mlops_platform.runtime.alerting import send_alert
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust.audit import AuditEventType
from mlops_platform.trust.events import record_event


class OutcomeArtifact:
    ASSESSMENT = "outcome_assessment"
    REPORT = "outcome_report"


class OutcomeRequest(BaseModel):
    """One check: which labels, which batch results, and the moment it is judged at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels_path: str = Field(min_length=1)
    predictions_dir: str = Field(min_length=1)
    # Where real-time prediction-log parts are kept besides where their service wrote them
    # (the state directory's log, `--served-log`); the parts that count are the ones stopped
    # services recorded in the trail, wherever they are found.
    served_log_dirs: tuple[str, ...] = ()
    as_of: str | None = None  # ISO 8601; default: when the step runs


@step(enable_cache=False)
def check_outcomes(
    request: OutcomeRequest, contract: OutcomeContract
) -> tuple[
    Annotated[dict[str, Any], OutcomeArtifact.ASSESSMENT],
    Annotated[HTMLString, OutcomeArtifact.REPORT],
]:
    governed = GovernedContext.current()
    run = get_step_context().pipeline_run
    thresholds = load_outcome_thresholds(governed.env)
    as_of = pd.Timestamp(request.as_of or datetime.now(UTC).isoformat())
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    labels = read_labels(Path(request.labels_path), contract)
    predictions, batches, unrecorded, log_dirs = served_predictions(request, contract, governed.env)
    joined = join_outcomes(predictions, labels.frame, contract.key_column, as_of, thresholds.window)
    labels_summary = {
        "path": labels.path,
        "sha256": labels.sha256,
        "rows": labels.rows,
        "outcome_column": labels.outcome_column,
    }
    # The join kept the rows that count; memory holds one copy of them while they are judged.
    del predictions, labels
    evidence = {"labels_sha256": labels_summary["sha256"], "as_of": as_of.isoformat()}
    versions = assess_versions(joined, version_facts(batches, governed.env), thresholds, evidence)
    assessment = {
        "verdict": overall_verdict(versions),
        "environment": governed.env,
        "as_of": as_of.isoformat(),
        "pipeline_run": run.name,
        "pipeline_run_id": str(run.id),
        "labels": {
            **labels_summary,
            "n_unknown": joined.n_unknown,
            "unknown_examples": joined.unknown_examples,
            "n_after_as_of": joined.n_labels_after_as_of,
        },
        "predictions": {
            "directory": request.predictions_dir,
            "batches": [b.as_dict() for b in batches],
            "n_served": joined.n_predictions,
            "n_rescored": joined.n_rescored,
            "n_after_as_of": joined.n_predictions_after_as_of,
            "served_log_dirs_read": log_dirs,
            "log_parts_not_yet_recorded": unrecorded,
        },
        "thresholds": {
            **{name: getattr(thresholds, name) for name in thresholds.__dataclass_fields__},
            "sha256": thresholds_hash(thresholds),
        },
        "versions": versions,
    }
    _record(governed, assessment, thresholds)
    return assessment, HTMLString(render_outcome_report(assessment))


def served_predictions(
    request: OutcomeRequest, contract: OutcomeContract, env: str
) -> tuple[pd.DataFrame, list[ServedBatch], list[str], list[str]]:
    """Batch results and every real-time answer the verified trail records, as one frame; plus
    the log parts left out (not yet recorded) and the log directories read.

    The real-time answers judged are those of every part a stopped service recorded, wherever
    the request says the log is: a log directory left out, moved away or emptied stops the check
    instead of leaving those answers out of the verdict (`load_served_log`)."""
    frames, batches = [], []
    recorded = recorded_log_parts(env)
    also_in = [Path(d) for d in request.served_log_dirs]
    try:
        frame, found = load_served_predictions(
            Path(request.predictions_dir),
            contract.patient_column,
            recorded_predictions_sha256,
            recorded_manifest=recorded_scoring_manifest,
        )
        frames.append(frame)
        batches += found
    except ResultNotFoundError:
        if not recorded:
            raise
    frame, found, unrecorded, directories = load_served_log(
        recorded, contract.patient_column, also_in
    )
    if len(frame):
        frames.append(frame)
        batches += found
    if not frames:
        raise ResultNotFoundError(
            f"Neither {request.predictions_dir} nor a recorded real-time prediction log holds "
            "predictions recorded by the platform."
        )
    combined = frames[0] if len(frames) == 1 else _concat(frames)
    return combined, batches, unrecorded, directories


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    combined = pd.concat(
        [f.astype({c: "object" for c in f.columns if f[c].dtype == "category"}) for f in frames],
        ignore_index=True,
    )
    for column in combined.columns:
        if combined[column].dtype == object:
            combined[column] = combined[column].astype("category")
    return combined


def recorded_log_parts(env: str) -> dict[str, RecordedPart]:
    """Digests of prediction-log parts recorded by stopped services, from the verified trail."""
    return recorded_parts_from(stopped_services(env))


def version_facts(batches: list[ServedBatch], env: str) -> dict[str, VersionFacts]:
    """Validation values of each version that scored a batch: the metrics and subgroup table of
    its newest gate record in ``env``'s verified trail (ZenML's copies of them can be edited; a
    version judged elsewhere, or before gate records kept its subgroups, has none of them here,
    and its realised values are then shown without a validation value to compare with)."""
    from mlops_platform.governance.model_stages import _records
    from mlops_platform.governance.promotion import recorded_gate_metrics
    from mlops_platform.trust.audit import AuditEventType

    facts: dict[str, VersionFacts] = {}
    metrics: dict[tuple[str, str], dict[str, float]] = {}
    subgroups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    events = [AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED]
    for name in sorted({batch.model_name for batch in batches if batch.model_name}):
        # Verified, in trail order, so the newest record holding each wins (a re-judgement
        # under the promotion lock records metrics but not the subgroup table).
        for record in _records(env, name, events):
            key = (name, str(record.model_version))
            metrics[key] = recorded_gate_metrics(record.details) or metrics.get(key, {})
            if isinstance(record.details.get("subgroups"), list):
                subgroups[key] = list(record.details["subgroups"])
    for batch in batches:
        if batch.model_version in facts:
            continue
        key = (batch.model_name, batch.model_version)
        facts[batch.model_version] = VersionFacts(
            model_name=batch.model_name,
            model_version=batch.model_version,
            validation=metrics.get(key, {}),
            validation_subgroups=subgroups.get(key, []),
            operating_threshold=batch.operating_threshold,
        )
    return facts


def _record(
    governed: GovernedContext, assessment: dict[str, Any], thresholds: OutcomeThresholds
) -> None:
    """Audit each version's verdict, keep it on the version, and alert on degradation."""
    for version in assessment["versions"]:
        summary = version_summary(version)
        details = {
            **summary,
            "as_of": assessment["as_of"],
            "labels_path": assessment["labels"]["path"],
            "labels_sha256": assessment["labels"]["sha256"],
            "inference_runs": version["inference_runs"],
            "thresholds_sha256": assessment["thresholds"]["sha256"],
            "pipeline_run_id": assessment["pipeline_run_id"],
            "recommendation": version["recommendation"],
        }
        record_event(
            governed.env,
            AuditEventType.OUTCOMES_CHECKED,
            governed.actor,
            model_name=version["model_name"],
            model_version=version["model_version"],
            details=details,
        )
        kept = {**details, "environment": governed.env}
        degraded = version["verdict"] == Verdict.DEGRADED.value
        log_metadata(
            # A degraded verdict is also kept under its own key, which a later `ok` on other
            # labels does not overwrite (`monitoring.verdict.standing_checks`).
            metadata={
                "latest_outcome_check": kept,
                **({"degraded_outcome_check": kept} if degraded else {}),
            },
            model_name=version["model_name"],
            model_version=version["model_version"],
        )
        if degraded:
            send_alert(
                f"[{governed.env}] {version['model_name']} version {version['model_version']} "
                f"is degraded on true outcomes: "
                + "; ".join(c["name"] for c in version["failed_checks"])
                + f". {version['recommendation']}",
                load_platform_settings(governed.env).alerting.webhook_env,
            )
    log_metadata(
        metadata={
            "outcome_check": {
                "verdict": assessment["verdict"],
                "as_of": assessment["as_of"],
                "versions": {v["model_version"]: v["verdict"] for v in assessment["versions"]},
                "thresholds_sha256": thresholds_hash(thresholds),
            }
        }
    )


def version_summary(version: dict[str, Any]) -> dict[str, Any]:
    """The per-version fields of the JSON output and the audit event."""
    return {
        "model_name": version["model_name"],
        "model_version": version["model_version"],
        "verdict": version["verdict"],
        "failed_checks": [c["name"] for c in version["failed_checks"]],
        "n_labelled": version["n_labelled"],
        "n_pending": version["n_pending"],
        "roc_auc": version["roc_auc"],
        "roc_auc_ci": version["roc_auc_ci"],
        "brier": version["brier"],
        "calibration_slope": version["calibration_slope"],
    }

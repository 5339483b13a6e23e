"""Shared batch-scoring step: the model of a stage scores a file into a new, versioned result.

The pipeline's ZenML model is `Model(name=..., version=<stage>)`; ZenML resolves the stage to a
version when the run starts, so a promotion changes what the next run uses without any code or
configuration change. The step loads the model and the drift reference saved with that version
(and hands the model the contract's context artifact of that version, if it names one), streams
the input through `BatchScorer`, writes the drift report, records the audit events and
publishes the result directory by one rename. On any failure the staging directory is removed,
so the results location holds only complete results.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.models import ModelVersionResponse
from zenml.types import HTMLString

from mlops_platform.batch.contract import BatchArtifact, BatchContract, BatchRequest, load_callable
from mlops_platform.batch.progress import report_progress
from mlops_platform.batch.results import (
    DRIFT_REPORT_FILE,
    MANIFEST_FORMAT,
    PREDICTIONS_FILE,
    QUARANTINE_FILE,
    ResultDirectory,
)
from mlops_platform.batch.scoring import BatchScorer, PredictionStamp, ScoringSummary
from mlops_platform.evaluation.drift import (
    DriftAccumulator,
    DriftResult,
    ReferenceProfile,
    load_drift_thresholds,
)
from mlops_platform.governance.promotion import stage_environment
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.reporting.drift_report import render_drift_report
from mlops_platform.runtime.alerting import send_alert
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust import golden
from mlops_platform.trust.artifacts import load_verified_model
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY
from mlops_platform.trust.events import record_event, version_identity
from mlops_platform.trust.outputs import version_artifact
from mlops_platform.trust.stored import CheckedArtifact

HOW_TO_PROMOTE: Final = (
    "Promote a validated version first: `mlops promote --version N --to {stage} --reason ...` "
    "(list versions with `mlops versions`)."
)
_HASH_BLOCK_BYTES: Final = 1 << 20
_REASONS_IN_ALERT: Final = 3


class ModelNotInStageError(LookupError):
    """No model version holds the requested stage, or it lacks what scoring needs."""


class StageMovedError(RuntimeError):
    """The version resolved at run start no longer holds the stage when the step runs."""


@step(enable_cache=False)
def score_batch(
    request: BatchRequest, contract: BatchContract
) -> tuple[
    Annotated[dict[str, Any], BatchArtifact.PREDICTIONS],
    Annotated[dict[str, Any], BatchArtifact.MANIFEST],
    Annotated[HTMLString, BatchArtifact.DRIFT_REPORT],
]:
    governed = GovernedContext.current()
    context = get_step_context()
    from mlops_platform.governance.model_stages import at_version_threshold

    version = scoring_version(context.model_version, request.stage)
    # Scored at the threshold its gate judged (verified training record), not the pipeline's.
    contract = at_version_threshold(contract, version, governed.env)
    _require_model_artifact(version, contract.model_artifact, request.stage)
    # Digest, signature and type allow-list, checked by the stage's environment before any output.
    model = load_verified_model(version, contract.model_artifact, stage_environment(request.stage))
    golden.verify_version(version, model)  # before any context is bound to the model
    model_context: CheckedArtifact | None = None
    # The version's context and drift reference are read from its training run, only as that
    # run signed them (`trust.outputs.version_artifact`), never through the version's links.
    if contract.context_artifact and contract.bind_context:
        model_context = _artifact(version, contract.context_artifact, request.stage)
        load_callable(contract.bind_context)(model, model_context.load())
    reference = ReferenceProfile.from_dict(
        _artifact(version, contract.reference_artifact, request.stage).load()
    )
    thresholds = load_drift_thresholds(governed.env)
    run_id = str(context.pipeline_run.id)
    stamp = PredictionStamp(version.model.name, version.name, request.stage, run_id)
    result = ResultDirectory(Path(request.output_dir), run_id)
    started_at = _now()
    try:
        drift = DriftAccumulator(reference)
        scorer = BatchScorer(contract, model, stamp, drift, request)
        with report_progress(f"Scoring {Path(request.input_path).name}") as progress:
            summary = scorer.score(
                result.path(PREDICTIONS_FILE), result.path(QUARANTINE_FILE), progress
            )
        outcome = drift.result(thresholds)
        report = render_drift_report(
            outcome,
            reference,
            {
                "model_name": stamp.model_name,
                "model_version": stamp.model_version,
                "model_stage": stamp.model_stage,
                "inference_run_id": run_id,
                "environment": governed.env,
                "input": summary.input_path,
            },
        )
        result.path(DRIFT_REPORT_FILE).write_text(report, encoding="utf-8")
        manifest = _manifest(
            governed,
            context.pipeline_run.name,
            stamp,
            request,
            contract,
            model_context,
            summary,
            outcome,
            version_identity(version).as_dict(),
        )
        manifest["output_dir"] = str(result.final)
        manifest["files"] = _files(result)
        manifest["timings"] = {
            "started_at": started_at,
            "finished_at": _now(),
            "scoring_seconds": round(summary.seconds, 3),
            "rows_per_second": summary.as_dict()["rows_per_second"],
        }
        _record(governed, stamp, manifest, outcome)
        published = result.publish(manifest)
    except BaseException:
        result.discard()
        raise
    _log(stamp, manifest, outcome)
    pointer = {
        "uri": str(published / PREDICTIONS_FILE),
        "result_dir": str(published),
        "format": "parquet",
        "rows": summary.rows_scored,
        "sha256": manifest["files"][PREDICTIONS_FILE],
        "columns": list(contract.prediction_columns()),
        "inference_run_id": run_id,
    }
    return pointer, manifest, HTMLString(report)


def scoring_version(resolved: ModelVersionResponse | None, stage: str) -> ModelVersionResponse:
    """The version ZenML resolved for `stage` at run start, if it still holds the stage."""
    if resolved is None:
        raise ModelNotInStageError(
            "The batch-scoring run has no model; configure the pipeline with "
            f"`Model(name=..., version='{stage}')` (the `mlops infer` command does)."
        )
    from mlops_platform.governance.model_stages import require_recorded_stage

    current = Client().get_model_version(resolved.model.id, resolved.id)
    if current.stage != stage:
        raise StageMovedError(
            f"Version {current.name} of {current.model.name} held '{stage}' when the run started "
            f"but is now '{current.stage}'; run again to score with the current holder."
        )
    # Only the holder the verified trail records scores (exit 9 for one moved there outside
    # `mlops promote`: ZenML's stage is writable by any ZenML user).
    require_recorded_stage(current.model.name, stage)
    return current


def _missing(version: ModelVersionResponse, name: str, stage: str) -> ModelNotInStageError:
    return ModelNotInStageError(
        f"Version {version.name} of {version.model.name} ('{stage}') has no artifact "
        f"{name!r}, the name today's scoring code asks for: the code added or renamed that "
        "output after the version was trained. If it was renamed, keep the name stored versions "
        "were trained with while one may be scored or rolled back to (docs/DEVELOPER_GUIDE.md, "
        "'Moving code a stored model refers to'); if it is new, train a version that has it and "
        "promote it. " + HOW_TO_PROMOTE.format(stage=stage, model=version.model.name)
    )


def _require_model_artifact(version: ModelVersionResponse, name: str, stage: str) -> None:
    if version.get_model_artifact(name) is None:
        raise _missing(version, name, stage)


def _artifact(version: ModelVersionResponse, name: str, stage: str) -> CheckedArtifact:
    """The version's artifact `name` as its training run signed it, loaded from checked bytes."""
    found = version_artifact(version, name, stage_environment(stage))
    if found is None:
        raise _missing(version, name, stage)
    return found


def _manifest(
    governed: GovernedContext,
    run_name: str,
    stamp: PredictionStamp,
    request: BatchRequest,
    contract: BatchContract,
    model_context: CheckedArtifact | None,
    summary: ScoringSummary,
    outcome: DriftResult,
    identity: dict[str, str],
) -> dict[str, Any]:
    scored = summary.as_dict()
    return {
        "format_version": MANIFEST_FORMAT,
        "inference_run_id": stamp.inference_run_id,
        "pipeline_run": run_name,
        "environment": governed.env,
        "actor": governed.actor,
        "code": {"git_sha": governed.git_sha, "git_dirty": governed.git_dirty},
        "model": {
            "name": stamp.model_name,
            "version": stamp.model_version,
            "stage": stamp.model_stage,
            "artifact": contract.model_artifact,
            # Which version scored, beyond its number (a number is reused after a deletion).
            VERSION_IDENTITY_KEY: identity,
            "context_artifact": (
                {
                    "name": model_context.name,
                    "version": str(model_context.version),
                    "id": str(model_context.id),
                }
                if model_context
                else None
            ),
        },
        "input": scored["input"],
        "rows": scored["rows"],
        "chunks": scored["chunks"],
        "chunk_rows": request.chunk_rows,
        "workers": request.workers,
        "shard": str(request.shard),
        "quarantine": request.quarantine,
        "contract": {
            "id_columns": list(contract.id_columns),
            "score_column": contract.score_column,
            "operating_threshold": contract.operating_threshold,
            "band_labels": list(contract.band_labels),
            "columns": list(contract.prediction_columns()),
        },
        "drift": drift_summary(outcome),
    }


def drift_summary(outcome: DriftResult) -> dict[str, Any]:
    """JSON-safe drift outcome: the decision, its reasons and the finite statistics."""
    return {
        "detected": outcome.drift_detected,
        "insufficient_data": outcome.insufficient_data,
        "drifted_features": list(outcome.drifted_features),
        "reasons": list(outcome.reasons),
        "metrics": outcome.metrics(),
    }


def _files(result: ResultDirectory) -> dict[str, str]:
    """SHA-256 of every file of the result, so a later reader can tell if one was changed."""
    return {path.name: _sha256(path) for path in sorted(result.staging.iterdir()) if path.is_file()}


def _record(
    governed: GovernedContext,
    stamp: PredictionStamp,
    manifest: dict[str, Any],
    outcome: DriftResult,
) -> None:
    """Audit the run (and the drift, with an alert) before the result becomes visible."""
    rows = manifest["rows"]
    details = {
        "inference_run_id": stamp.inference_run_id,
        "pipeline_run": manifest["pipeline_run"],
        "output_dir": manifest["output_dir"],
        "input_path": manifest["input"]["path"],
        "input_sha256": manifest["input"]["sha256"],
        "rows_read": rows["read"],
        "rows_scored": rows["scored"],
        "rows_rejected": rows["rejected"],
        "shard": manifest["shard"],
        "drift_detected": outcome.drift_detected,
        "drift_assessed": not outcome.insufficient_data,
        VERSION_IDENTITY_KEY: manifest["model"][VERSION_IDENTITY_KEY],
    }
    record_event(
        governed.env,
        "batch_inference",
        governed.actor,
        model_name=stamp.model_name,
        model_version=stamp.model_version,
        stage=stamp.model_stage,
        details=details,
    )
    if not outcome.drift_detected:
        return
    record_event(
        governed.env,
        "drift_detected",
        governed.actor,
        model_name=stamp.model_name,
        model_version=stamp.model_version,
        stage=stamp.model_stage,
        details={
            "inference_run_id": stamp.inference_run_id,
            "output_dir": manifest["output_dir"],
            "drifted_features": list(outcome.drifted_features),
            "reasons": list(outcome.reasons),
            "metrics": outcome.metrics(),
        },
    )
    reasons = "; ".join(outcome.reasons[:_REASONS_IN_ALERT])
    send_alert(
        f"[{governed.env}] drift detected in batch {stamp.inference_run_id} scored by "
        f"{stamp.model_name} version {stamp.model_version} ({stamp.model_stage}): {reasons}. "
        f"Report: {manifest['output_dir']}/{DRIFT_REPORT_FILE}",
        load_platform_settings(governed.env).alerting.webhook_env,
    )


def _log(stamp: PredictionStamp, manifest: dict[str, Any], outcome: DriftResult) -> None:
    """Step metadata (mirrored to MLflow by the platform hook) and the version's latest drift."""
    rows = manifest["rows"]
    summary = {
        "inference_run_id": stamp.inference_run_id,
        "output_dir": manifest["output_dir"],
        "input_sha256": manifest["input"]["sha256"],
        "rows_read": rows["read"],
        "rows_scored": rows["scored"],
        "rows_rejected": rows["rejected"],
        "rows_per_second": manifest["timings"]["rows_per_second"] or 0,
        "model_stage": stamp.model_stage,
    }
    log_metadata(metadata={"batch_inference": summary, "drift": outcome.metrics()})
    log_metadata(
        metadata={"latest_batch_inference": {**summary, "drift": drift_summary(outcome)}},
        model_name=stamp.model_name,
        model_version=stamp.model_version,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

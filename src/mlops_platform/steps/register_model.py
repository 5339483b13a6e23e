"""Last step of every training pipeline: publish a model that passed its gates.

It marks the ZenML model version as validated (the only state promotion accepts), records where the
model came from (data, code, run), pins and signs the stored model file (its SHA-256, signed with
the environment's key: `mlops_platform.trust.artifacts`), logs the model to MLflow in the skops
format, registers it in the MLflow model registry, and writes the `training_completed` audit event.
Every later load of the model checks the file against that signed pin.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from typing import Annotated, Any

import pandas as pd
from sklearn.base import BaseEstimator
from zenml import get_step_context, log_metadata, step
from zenml.client import Client

from mlops_platform.governance.gate_origin import GateOriginError, require_gate_origin
from mlops_platform.governance.promotion import (
    MLFLOW_REGISTERED_VERSION_KEY,
    MODEL_VERSION_ID_KEY,
    OPERATING_THRESHOLD_KEY,
)
from mlops_platform.names import VALIDATED_TAG, PlatformArtifact
from mlops_platform.runtime.run_context import ExistingVersionRefused, GovernedContext
from mlops_platform.trust import golden
from mlops_platform.trust.artifacts import (
    GATE_MODEL_SHA256,
    MODEL_FILE_KEY,
    ModelFileIntegrityError,
    ModelFilePin,
    compact_skops_schema,
    judged_file_problem,
    model_types,
    read_artifact_file,
    sign_model_file,
)
from mlops_platform.trust.events import record_event

MLFLOW_MODEL_NAME = "model"
MODEL_INPUT = "model"
# MLflow model-version tags holding the pin of the ZenML artifact the version was registered from.
MLFLOW_SHA256_TAG = "model_sha256"
MLFLOW_KEY_ID_TAG = "model_signature_key_id"


def _pip_requirements() -> list[str]:
    packages = ("scikit-learn", "skops", "numpy", "pandas", "scipy")
    return [f"{name}=={version(name)}" for name in packages]


def log_model_to_mlflow(
    governed: GovernedContext,
    model: BaseEstimator,
    registered_name: str,
    zenml_version: str,
    pin: ModelFilePin,
    trusted: list[str],
) -> dict[str, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(governed.mlflow_uri)
    with mlflow.start_run(run_id=governed.mlflow_run_id), compact_skops_schema():
        info = mlflow.sklearn.log_model(
            model,
            name=MLFLOW_MODEL_NAME,
            serialization_format="skops",
            skops_trusted_types=trusted,
            pip_requirements=_pip_requirements(),
            registered_model_name=registered_name,
        )
    registered_version = str(info.registered_model_version)
    client = MlflowClient(governed.mlflow_uri)
    for key, value in (
        ("zenml_model_version", zenml_version),
        (MLFLOW_SHA256_TAG, pin.sha256),
        (MLFLOW_KEY_ID_TAG, pin.key_id),
    ):
        client.set_model_version_tag(registered_name, registered_version, key, value)
    return {"model_uri": info.model_uri, "registered_version": registered_version}


@step
def register_model(
    model: BaseEstimator,
    metrics: dict[str, Any],
    data_provenance: dict[str, Any],
    gate_decision: dict[str, Any],
    golden_sample: pd.DataFrame,
) -> Annotated[dict[str, Any], PlatformArtifact.REGISTRATION]:
    """Publish the model; `golden_sample` (synthetic inputs) is scored and kept with it.

    `metrics` are data science's own numbers (kept as `reported_metrics`); the registration's
    `metrics` are those the platform gate measured on its holdout."""
    governed = GovernedContext.current()
    require_gate_origin("gate_decision")
    if not gate_decision.get("passed") or gate_decision.get("environment") != governed.env:
        raise GateOriginError(
            "register_model received a gate decision that did not pass under the "
            f"{governed.env!r} policy; only a model that passed this run's gate is published."
        )
    context = get_step_context()
    model_version = context.model_version
    if model_version is None:
        raise RuntimeError("Training pipelines must declare a ZenML Model to register into.")
    name, number = model_version.model.name, model_version.name
    if model_version.run_metadata.get("registration") is not None or model_version.stage:
        # A registered version's model is fixed by its signed pin: a run never publishes another
        # model under it (a pipeline whose Model names an existing version or a stage).
        raise ExistingVersionRefused(
            f"Version {number} of {name} is already registered"
            + (f" and holds {model_version.stage}" if model_version.stage else "")
            + ": a training run registers only the new version it creates. Remove the version "
            "(or stage) from the pipeline's Model."
        )
    stored = context.inputs[MODEL_INPUT][0]
    data = read_artifact_file(stored)
    problem = judged_file_problem(
        gate_decision.get(GATE_MODEL_SHA256), hashlib.sha256(data).hexdigest(), "Registration"
    )
    if problem is not None:
        raise ModelFileIntegrityError(problem)
    pin = sign_model_file(governed.env, name, number, str(stored.id), data, str(model_version.id))
    golden_record = golden.record_for_registration(model, golden_sample)
    mlflow_info = (
        log_model_to_mlflow(governed, model, name, number, pin, model_types(data))
        if governed.mlflow_run_id
        else {}
    )
    registration = {
        "model_name": name,
        "model_version": number,
        "environment": governed.env,
        "trained_by": governed.actor,
        "trained_by_source": governed.actor_source,
        "trained_by_identity": governed.identity_record(),
        "pipeline_run_id": str(context.pipeline_run.id),
        "code": {"git_sha": governed.git_sha, "git_dirty": governed.git_dirty},
        # The loader's provenance, and the platform's own hash of the file it was given.
        "data": {**data_provenance, "file_sha256": governed.data_file_sha256},
        "metrics": gate_decision.get("metrics", {}),
        "baseline_metrics": gate_decision.get("baseline_metrics"),
        "evaluation": gate_decision.get("evaluation"),
        "reported_metrics": {k: v for k, v in metrics.items() if k != "split"},
        "mlflow": {"run_id": governed.mlflow_run_id, **mlflow_info},
        "gate_status": "passed",
        MODEL_FILE_KEY: pin.as_dict(),
        golden.REGISTRATION_KEY: golden_record,
    }
    log_metadata(metadata={MODEL_FILE_KEY: pin.as_dict()}, artifact_version_id=stored.id)
    log_metadata(metadata={"registration": registration}, infer_model=True)
    Client().update_model_version(
        model_version.model.id, model_version.id, add_tags=[VALIDATED_TAG]
    )
    record_event(
        governed.env,
        "training_completed",
        governed.actor,
        model_name=name,
        model_version=number,
        details={
            "pipeline_run_id": registration["pipeline_run_id"],
            # Who trained it is this record's actor; the id ties it to this ZenML version.
            MODEL_VERSION_ID_KEY: str(model_version.id),
            "data_sha256": data_provenance.get("sha256"),
            "data_file_sha256": governed.data_file_sha256,
            "data_source": data_provenance.get("source"),
            "git_sha": governed.git_sha,
            "git_dirty": governed.git_dirty,
            "roc_auc": gate_decision.get("metrics", {}).get("roc_auc"),
            "evaluation_sha256": (gate_decision.get("evaluation") or {}).get("sha256"),
            "mlflow_run_id": governed.mlflow_run_id,
            # The MLflow registry version its stage aliases must point at (`mlops check`).
            MLFLOW_REGISTERED_VERSION_KEY: mlflow_info.get("registered_version"),
            # The threshold its gate judged: scoring and serving use it (`version_threshold`).
            OPERATING_THRESHOLD_KEY: gate_decision.get(OPERATING_THRESHOLD_KEY),
            "model_artifact_id": pin.artifact_id,
            "model_sha256": pin.sha256,
            "model_signature_key_id": pin.key_id,
            "model_signature": pin.signature,
            "golden_sample_sha256": golden_record["inputs_sha256"],
        },
    )
    return registration

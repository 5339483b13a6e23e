"""Mirror governed ZenML runs into MLflow with explicit logging (autologging costs 11-33 s here).

One MLflow run per ZenML pipeline run: the runner opens it, the step hooks add each step's parameters
and metrics, and the model registration step logs the model in the skops format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MAX_PARAM_LENGTH = 6000


def stack_tracking_uri() -> str | None:
    """Tracking URI of the active stack's MLflow experiment tracker, or None without one."""
    from zenml.client import Client

    from mlops_platform.workspace import use_project_source_root

    use_project_source_root()  # the stack's flavor sources resolve against src/, from any caller
    tracker = Client().active_stack.experiment_tracker
    if tracker is None or tracker.flavor != "mlflow":
        return None
    tracker.configure_mlflow()
    return str(tracker.get_tracking_uri())


def prepare_store(uri: str) -> None:
    """Create the MLflow store at ``uri`` if it is new (a new SQLite store takes seconds to
    create its tables); an existing store is only opened."""
    MlflowClient(uri).search_experiments(max_results=1)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys, as MLflow has a flat namespace."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def split_metrics(values: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Finite numbers are metrics; everything else is kept as text."""
    metrics: dict[str, float] = {}
    text: dict[str, str] = {}
    for key, value in flatten(values).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            text[key] = str(value)
        elif math.isfinite(value):
            metrics[key] = float(value)
        else:
            text[key] = str(value)
    return metrics, text


def artifact_location(uri: str) -> str | None:
    """Beside a local SQLite store, keep MLflow artifacts next to the database, not in `./mlruns`.

    Remote tracking servers choose their own artifact root.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def start_run(uri: str, experiment: str, run_name: str, tags: Mapping[str, str]) -> str:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(experiment, artifact_location=artifact_location(uri))
    )
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    return run.info.run_id


def log_values(
    uri: str,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """One batched call: cheap enough to run after every step."""
    import time

    now = int(time.time() * 1000)
    MlflowClient(uri).log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (tags or {}).items()],
    )


def finish_run(uri: str, run_id: str, failed: bool) -> None:
    MlflowClient(uri).set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def run_data(uri: str, run_id: str) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Metrics, params and tags of one MLflow run (for checks and tests)."""
    run = MlflowClient(uri).get_run(run_id)
    return dict(run.data.metrics), dict(run.data.params), dict(run.data.tags)


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    MlflowClient(uri).log_text(run_id, text, artifact_file)


def register_rejected_version(
    uri: str,
    run_id: str,
    model_name: str,
    zenml_version: str,
    tags: Mapping[str, str],
    description: str,
) -> str:
    """List a version the training gate rejected in the MLflow model registry; its number.

    Its source is the training run's artifact directory, which holds the model report and no
    `MLmodel` file: MLflow shows the version, its tags and its report, but cannot load or serve
    it. Promotion reads ZenML's tags, never this entry (a rejected version never moves).
    """
    client = MlflowClient(uri)
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name)
    created = client.create_model_version(
        model_name,
        source=client.get_run(run_id).info.artifact_uri,
        run_id=run_id,
        tags={**tags, "zenml_model_version": zenml_version},
        description=description,
    )
    return str(created.version)

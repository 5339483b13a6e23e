"""Pipeline hooks the platform runner attaches to every governed run.

In static ZenML pipelines these hooks fire once per step. The success hook mirrors the step's
parameters and metadata into the run's MLflow run; the failure hook records the failure in the audit
trail, raises an alert and discards a model version that no gate judged.
Checks that must block live in platform steps, not here: ZenML ignores exceptions in success hooks.
"""

from __future__ import annotations

from zenml import get_step_context
from zenml.client import Client

from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.runtime import tracking
from mlops_platform.runtime.alerting import send_alert
from mlops_platform.runtime.model_versions import discard_if_never_judged
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust.events import record_event


def mirror_step_to_mlflow() -> None:
    """Success hook: the step's parameters become MLflow params, its numeric metadata metrics."""
    governed = GovernedContext.current()
    if not governed.mlflow_run_id:
        return
    context = get_step_context()
    step = Client().get_run_step(context.step_run.id)
    params = tracking.flatten(step.config.parameters, prefix=f"{step.name}.")
    metrics, text = tracking.split_metrics(step.run_metadata)
    tracking.log_values(
        governed.mlflow_uri, governed.mlflow_run_id, params=params, metrics=metrics, tags=text
    )


def record_step_failure(exception: BaseException) -> None:
    """Failure hook: audit, alert, mark the MLflow run failed, drop a version no gate judged."""
    governed = GovernedContext.current()
    context = get_step_context()
    step_name = context.step_run.name
    run_name = context.pipeline_run.name
    error = f"{type(exception).__name__}: {exception}"
    model_version = context.model_version
    discarded = (
        discard_if_never_judged(model_version.model.id, model_version.id, context.pipeline_run.id)
        is not None
        if model_version
        else False
    )
    record_event(
        governed.env,
        "pipeline_failed",
        governed.actor,
        model_name=model_version.model.name if model_version and not discarded else None,
        model_version=model_version.name if model_version and not discarded else None,
        details={
            "pipeline_run_id": str(context.pipeline_run.id),
            "pipeline_run": run_name,
            "step": step_name,
            "error": error[:4000],
            "discarded_model_version": model_version.name if discarded else None,
        },
    )
    settings = load_platform_settings(governed.env)
    send_alert(
        f"[{governed.env}] pipeline run {run_name} failed in step {step_name}: {error[:500]}",
        settings.alerting.webhook_env,
    )
    if governed.mlflow_run_id:
        tracking.log_values(
            governed.mlflow_uri,
            governed.mlflow_run_id,
            tags={"failed_step": step_name, "error": error},
        )
        tracking.finish_run(governed.mlflow_uri, governed.mlflow_run_id, failed=True)

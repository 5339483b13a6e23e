"""Shared model gate: quality, calibration, fairness and champion/challenger, then a model report.

The platform recomputes every metric from the held-out predictions instead of trusting the
numbers a training step reports. The report and subgroup table are saved even when the gate fails,
so a rejected model can be reviewed; the version is then tagged `rejected` and never `validated`.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from zenml import get_step_context, log_metadata, save_artifact, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import HTMLString

from mlops_platform.evaluation.fairness import sensitive_groups, summarize_fairness
from mlops_platform.evaluation.metrics import classification_metrics
from mlops_platform.governance.policy.evaluate import GateDecision, GateFailedError, evaluate
from mlops_platform.governance.policy.models import load_policy
from mlops_platform.names import REJECTED_TAG, PlatformArtifact
from mlops_platform.reporting.model_report import ModelReportContext, render_model_report
from mlops_platform.runtime import tracking
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust import golden
from mlops_platform.trust.artifacts import load_verified_model
from mlops_platform.trust.events import record_version_event

Y_TRUE, Y_PROB = "y_true", "y_prob"
KEY_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision")


class ModelContract(BaseModel):
    """What the platform needs to know about a team's model to judge it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_artifact: str  # name of the model artifact in the ZenML model version
    patient_column: str  # patients are the clusters of the bootstrap confidence intervals
    label_columns: tuple[str, ...]  # dropped before a champion scores the test rows
    operating_threshold: float
    predictors: tuple[str, ...] = ()


def decision_record(decision: GateDecision) -> dict[str, Any]:
    return {
        "passed": decision.passed,
        "environment": decision.environment,
        "checks": [
            {
                "name": c.name,
                "passed": c.passed,
                "value": c.value,
                "limit": c.limit,
                "comparison": c.comparison,
                "detail": c.detail,
            }
            for c in decision.checks
        ],
    }


def champion_scores(
    model_name: str, stage: str, contract: ModelContract, test: pd.DataFrame, env: str
) -> tuple[str, np.ndarray] | None:
    """The current holder of `stage` scored on the same held-out rows, or None if none holds it.

    The champion's file is checked against its signed pin with `env`'s trusted keys first.
    """
    try:
        champion = Client().get_model_version(model_name, ModelStages(stage))
    except KeyError:
        return None
    model = load_verified_model(champion, contract.model_artifact, env)
    golden.verify_version(champion, model)
    features = test.drop(columns=[c for c in contract.label_columns if c in test.columns])
    return champion.name, model.predict_proba(features)[:, 1]


def judge(
    predictions: pd.DataFrame,
    test: pd.DataFrame,
    contract: ModelContract,
    model_name: str,
    env: str,
    champion_stage: str,
    *,
    compare_with_champion: bool = True,
) -> tuple[GateDecision, Any, dict[str, Any], dict[str, Any] | None]:
    """Compute the metrics, fairness summary and champion comparison, and decide."""
    policy = load_policy(env)
    y = predictions[Y_TRUE].to_numpy().astype(int)
    p = predictions[Y_PROB].to_numpy(dtype=float)
    metrics = classification_metrics(y, p, contract.operating_threshold)
    fairness = summarize_fairness(
        y,
        p,
        sensitive_groups(predictions),
        contract.operating_threshold,
        policy.fairness.min_group_size,
        min_group_events=policy.fairness.min_group_events,
    )
    scored = (
        champion_scores(model_name, champion_stage, contract, test, env)
        if compare_with_champion
        else None
    )
    champion = None
    if scored is not None:
        version, champion_p = scored
        champion = {
            **classification_metrics(y, champion_p, contract.operating_threshold),
            "model_version": version,
            "stage": champion_stage,
        }
    decision = evaluate(metrics, fairness, champion, policy, env)
    return decision, fairness, metrics, champion


def rejudge_stored(
    version: Any,
    env: str,
    contract: ModelContract,
    predictions_artifact: str,
    test_artifact: str,
) -> tuple[GateDecision, dict[str, Any], dict[str, Any] | None]:
    """Judge a stored version again under today's policy of `env`, moving and recording nothing.

    It reads the version's own held-out predictions and test split (as its last training or
    promotion run stored them), recomputes every metric and the fairness summary with today's
    policy, and compares with today's holder of the stage `env` promotes to (production for local),
    unless the version holds that stage itself.
    """
    champion_stage = (
        env
        if env in (ModelStages.STAGING.value, ModelStages.PRODUCTION.value)
        else (ModelStages.PRODUCTION.value)
    )
    predictions = version.get_artifact(predictions_artifact).load()
    test = version.get_artifact(test_artifact).load()
    holder_is_self = version.stage == champion_stage
    decision, _, metrics, champion = judge(
        predictions,
        test,
        contract,
        version.model.name,
        env,
        champion_stage,
        compare_with_champion=not holder_is_self,
    )
    return decision, metrics, champion


@step
def validate_model(
    predictions: pd.DataFrame,
    test: pd.DataFrame,
    data_provenance: dict[str, Any],
    contract: ModelContract,
    baseline_metrics: dict[str, Any] | None = None,
    champion_stage: str = ModelStages.PRODUCTION.value,
    reject_on_failure: bool = True,
) -> Annotated[dict[str, Any], PlatformArtifact.GATE_DECISION]:
    """Judge the model version of this run; `reject_on_failure` tags it `rejected` for good.

    Training runs reject a failing model; a promotion run only denies the promotion, because the
    same model may still be fit for a less demanding stage.
    """
    governed = GovernedContext.from_environment()
    context = get_step_context()
    version = context.model_version
    if version is None:
        raise RuntimeError("Training pipelines must declare a ZenML Model for the gate to judge.")
    if (version.run_metadata or {}).get("registration"):
        # A registered version judged again (promotion): its stored model must still give the
        # answers it was registered with under this code, or the scores judged mean nothing.
        golden.verify_version(version, version.get_model_artifact(contract.model_artifact).load())
    decision, fairness, metrics, champion = judge(
        predictions, test, contract, version.model.name, governed.env, champion_stage
    )
    report = render_model_report(
        ModelReportContext(
            model_name=version.model.name,
            model_version=version.name,
            environment=governed.env,
            y_true=predictions[Y_TRUE].to_numpy().astype(int),
            y_prob=predictions[Y_PROB].to_numpy(dtype=float),
            patient_ids=predictions[contract.patient_column].to_numpy(),
            operating_threshold=contract.operating_threshold,
            metrics=metrics,
            fairness=fairness,
            decision=decision,
            provenance=data_provenance,
            code_version={"git_sha": governed.git_sha, "git_dirty": governed.git_dirty},
            training_run_id=str(context.pipeline_run.id),
            baseline_metrics={k: v for k, v in (baseline_metrics or {}).items() if k != "split"}
            or None,
            predictors=contract.predictors,
        )
    )
    save_artifact(HTMLString(report), name=PlatformArtifact.MODEL_REPORT)
    save_artifact(fairness.table, name=PlatformArtifact.SUBGROUP_TABLE)
    # The holder the candidate was compared with; the promotion checks it still holds the stage.
    record = {
        **decision_record(decision),
        "champion_version": champion["model_version"] if champion else None,
    }
    table = fairness.table.astype(object).where(fairness.table.notna(), None)
    log_metadata(
        metadata={
            "gate_decision": record,
            # Kept per environment too, so a promotion's verdict does not hide training's.
            f"gate_decision_{decision.environment}": record,
            "gate_metrics": metrics,
            "champion": champion or {"stage": champion_stage, "model_version": "none"},
            "subgroups": table.to_dict(orient="records"),
        },
        infer_model=True,
    )
    if governed.mlflow_run_id:
        tracking.log_text(governed.mlflow_uri, governed.mlflow_run_id, report, "model_report.html")
        # The MLflow run is named after the model version and pipeline (rejected ones too), with
        # the key metrics and the verdict as columns of the runs table.
        tracking.log_values(
            governed.mlflow_uri,
            governed.mlflow_run_id,
            metrics={
                k: float(metrics[k])
                for k in KEY_METRICS
                if isinstance(metrics.get(k), int | float) and not isinstance(metrics[k], bool)
            },
            tags={
                "mlflow.runName": f"{version.model.name}-v{version.name}-{context.pipeline.name}",
                "model_version": version.name,
                "gate": "passed" if decision.passed else "failed",
            },
        )
    event = "gate_passed" if decision.passed else "gate_failed"
    record_version_event(
        governed.env,
        event,
        governed.actor,
        version,
        details={
            "failed_checks": [c.name for c in decision.failures()],
            "champion_version": champion["model_version"] if champion else None,
            "champion_stage": champion_stage,
            "pipeline_run_id": str(context.pipeline_run.id),
        },
    )
    if not decision.passed:
        if reject_on_failure:
            Client().update_model_version(version.model.id, version.id, add_tags=[REJECTED_TAG])
        raise GateFailedError(decision)
    return record

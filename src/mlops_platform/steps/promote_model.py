"""Last step of every promotion pipeline: move the run's model version to the target stage.

It runs only after `validate_model` passed under the target environment's policy. It checks the
approval policy again on approvals read from the audit trail (the command checks them before it
launches anything, but this step is what every launcher passes through, so it fails closed on
its own), records an emergency override when one replaces the approvals, moves the ZenML stage
(the previous holder is archived), mirrors the MLflow aliases and records the `promotion` event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from zenml import get_step_context, step
from zenml.client import Client

from mlops_platform.governance.model_stages import (
    check_promotion,
    deny,
    move_stage,
    sync_mlflow_aliases,
)
from mlops_platform.governance.promotion import PromotionDenied, PromotionOrder, stage_environment
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust.audit import AuditEventType
from mlops_platform.trust.events import record_version_event

PROMOTION_ARTIFACT = "promotion_record"


def _gate_problems(gate_decision: dict[str, Any], env: str) -> list[str]:
    if gate_decision.get("environment") != env:
        return [
            f"the gate judged the model under the {gate_decision.get('environment')!r} policy, "
            f"but this stage is governed by {env!r}"
        ]
    if not gate_decision.get("passed"):
        return ["the model gate did not pass"]
    return []


@step
def promote_model(
    gate_decision: dict[str, Any], target_stage: str, request: PromotionOrder
) -> Annotated[dict[str, Any], PROMOTION_ARTIFACT]:
    governed = GovernedContext.from_environment()
    context = get_step_context()
    if context.model_version is None:
        raise RuntimeError(
            "Promotion pipelines must run on the candidate's ZenML model version: configure "
            "them with `model=Model(name=..., version=<number>)`."
        )
    env = stage_environment(target_stage)
    if governed.env != env:
        raise PromotionDenied(
            "promotion",
            [
                f"this run was started for environment {governed.env!r}, but {target_stage} is "
                f"governed by {env!r}; start it with run_governed(..., env={env!r})"
            ],
        )
    version = Client().get_model_version(context.model_version.model.id, context.model_version.id)
    run_id = str(context.pipeline_run.id)
    common = {
        "reason": request.reason,
        "ticket": request.ticket,
        "run_url": request.run_url,
        "pipeline_run_id": run_id,
    }
    problems = _gate_problems(gate_decision, env)
    decision = check_promotion(version, target_stage, governed.actor, request, datetime.now(UTC))
    if problems or not decision.allowed:
        raise deny(
            "promotion",
            governed.actor,
            version,
            target_stage,
            [*problems, *decision.reasons],
            common,
        )
    override = (
        {"approver": request.override_approver, "reason": request.override_reason}
        if decision.override_approver
        else None
    )
    if override is not None:
        record_version_event(
            env,
            AuditEventType.OVERRIDE,
            governed.actor,
            version,
            stage=target_stage,
            details={**common, "override": override, "decision": list(decision.reasons)},
        )
    previous = move_stage(version, target_stage)
    aliases = (
        sync_mlflow_aliases(governed.mlflow_uri, version.model.name) if governed.mlflow_uri else {}
    )
    details = {
        **common,
        "target_stage": target_stage,
        "previous_holder": previous,
        "archived": previous is not None,
        "approvals": decision.approvals_record(),
        "override": override,
        "mlflow_aliases": aliases,
    }
    record_version_event(
        env,
        AuditEventType.PROMOTION,
        governed.actor,
        version,
        stage=target_stage,
        details=details,
    )
    return {"model_name": version.model.name, "model_version": version.name, **details}

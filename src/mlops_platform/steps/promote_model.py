"""Last step of every promotion pipeline: move the run's model version to the target stage.

It accepts only the decision `validate_model` produced in the same run (`governance/gate_origin.py`)
and runs only after it passed under the target environment's policy. It first checks that the
candidate's stored model file is the one signed at registration (`mlops_platform.trust.artifacts`).
Everything else is the promotion transaction (`mlops_platform.governance.transaction.promote`):
under the lock of (environment, model) it resolves crashed promotions, checks the approval policy
again on verified records (the command checks them before it launches anything, but this step is
what every launcher passes through, so it fails closed on its own), checks the gate compared the
candidate with the holder it really replaces (when the stage changed after this run's gate, the
transaction judges the candidate again, on the gate step's own inputs, against the real holder),
records an emergency override when a
countersignature replaces the approvals, records `promotion_started`, moves the ZenML stage (the
previous holder is archived), mirrors the MLflow aliases and records the `promotion` event, which
names the approval or countersignature records it consumed.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, step
from zenml.client import Client

from mlops_platform.governance import transaction
from mlops_platform.governance.gate_origin import require_gate_origin
from mlops_platform.governance.promotion import PromotionDenied, PromotionOrder, stage_environment
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.trust.artifacts import (
    GATE_MODEL_SHA256,
    ModelFileIntegrityError,
    judged_file_problem,
    verify_registered_model,
)

PROMOTION_ARTIFACT = "promotion_record"


@step
def promote_model(
    gate_decision: dict[str, Any], target_stage: str, request: PromotionOrder
) -> Annotated[dict[str, Any], PROMOTION_ARTIFACT]:
    governed = GovernedContext.current()
    require_gate_origin("gate_decision")
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
    # The file that takes the stage must be the one signed at registration (fails closed).
    pin = verify_registered_model(version, env).pin
    problem = judged_file_problem(gate_decision.get(GATE_MODEL_SHA256), pin.sha256, "Promotion")
    if problem is not None:
        raise ModelFileIntegrityError(problem)
    common = {
        "reason": request.reason,
        "ticket": request.ticket,
        "run_url": request.run_url,
        "pipeline_run_id": str(context.pipeline_run.id),
        "identity": governed.identity_details(),
        "model_sha256": pin.sha256,
        "model_signature_key_id": pin.key_id,
        "evaluation_sha256": (gate_decision.get("evaluation") or {}).get("sha256"),
    }
    details = transaction.promote(
        version,
        request,
        transaction.PromotionRequest(
            target_stage=target_stage,
            actor=governed.actor,
            actor_source=governed.actor_source,
            gate_decision=gate_decision,
            common=common,
            mlflow_uri=governed.mlflow_uri,
        ),
    )
    return {"model_name": version.model.name, "model_version": version.name, **details}

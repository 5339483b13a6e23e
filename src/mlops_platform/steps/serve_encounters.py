"""The served pipeline's step: score one request with the service the init hook started.

Under ZenML's `/invoke` route each request is a pipeline run and this step does the scoring; the
deployment's `/score` route calls the same `ServingService.score` without a run per request.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, step

from mlops_platform.serving.service import ServingService

SERVED_PREDICTIONS = "served_predictions"


@step(enable_cache=False)
def serve_encounters(
    encounters: list[dict[str, Any]] | None = None,
) -> Annotated[dict[str, Any], SERVED_PREDICTIONS]:
    service = get_step_context().pipeline_state
    if not isinstance(service, ServingService):
        raise RuntimeError(
            "readmission_realtime serves only as a deployment started by `mlops serve start`; "
            "its init hook loads the verified production model."
        )
    scored = service.score(list(encounters or []))
    return {"request_id": scored.request_id, "predictions": scored.predictions}

"""What an inference run recorded in the ZenML store about its result: the SHA-256 of its
predictions and its manifest. Checks of a result directory compare the files beside the
predictions with these, never trust them alone."""

from __future__ import annotations

from typing import Any, Final

from mlops_platform.batch.contract import BatchArtifact

SCORING_STEP: Final = "score_batch"


def _scoring_output(inference_run_id: str, name: str) -> Any:
    from zenml.client import Client

    from mlops_platform.trust.stored import guard_artifact_loads

    guard_artifact_loads()
    try:
        scoring = Client().get_pipeline_run(inference_run_id).steps[SCORING_STEP]
        return scoring.outputs[name][0].load()
    except (KeyError, IndexError, ValueError):
        return None


def recorded_predictions_sha256(inference_run_id: str) -> str | None:
    """SHA-256 of the predictions that the inference run recorded in the ZenML store."""
    pointer = _scoring_output(inference_run_id, BatchArtifact.PREDICTIONS)
    value = pointer.get("sha256") if isinstance(pointer, dict) else None
    return str(value) if value else None


def recorded_scoring_manifest(inference_run_id: str) -> dict[str, Any] | None:
    """The manifest the inference run stored in the ZenML store (its scoring step's output)."""
    manifest = _scoring_output(inference_run_id, BatchArtifact.MANIFEST)
    return manifest if isinstance(manifest, dict) else None

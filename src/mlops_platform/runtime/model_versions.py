"""Model-version housekeeping shared by the failure hook and the runner."""

from __future__ import annotations

import logging
from uuid import UUID

from zenml.client import Client
from zenml.enums import ArtifactType

logger = logging.getLogger(__name__)


def discard_if_no_own_model(model_id: UUID, model_version_id: UUID, run_id: UUID) -> str | None:
    """Delete a model version that never received a model; returns its name if deleted.

    A run that failed before producing a model must not leave a version behind that looks like a
    candidate. A version is kept when it holds a model made for it: by the failed run `run_id`
    itself, or by the run that created the version (a failed promotion or scoring run of a trained
    version keeps it; a gate failure tags it `rejected` instead). A model only reused from an
    earlier version's run (a cached step, which ZenML links to the new version before any step
    runs: the baseline) does not count.
    """
    client = Client()
    try:
        version = client.get_model_version(model_id, model_version_id)
    except KeyError:
        return None
    models = client.list_artifact_versions(
        model_version_id=version.id, type=ArtifactType.MODEL, size=1000
    )
    producers = {
        str(m.producer_pipeline_run_id) for m in models.items if m.producer_pipeline_run_id
    }
    if str(run_id) in producers or any(_made_for(version.id, run) for run in producers):
        return None
    client.delete_model_version(version.id)
    logger.warning(
        "Discarded model version %s of %s: its run failed before a model was produced.",
        version.name,
        version.model.name,
    )
    return version.name


def _made_for(model_version_id: UUID, run_id: str) -> bool:
    """Whether pipeline run `run_id` ran for model version `model_version_id`."""
    try:
        run = Client().get_pipeline_run(UUID(run_id), hydrate=False)
    except KeyError:
        return False
    version = run.model_version
    return version is not None and str(version.id) == str(model_version_id)

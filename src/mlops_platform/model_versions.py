"""Model-version housekeeping shared by the failure hook and the runner."""

from __future__ import annotations

import logging
from uuid import UUID

from zenml.client import Client
from zenml.enums import ArtifactType

logger = logging.getLogger(__name__)


def discard_if_empty(model_id: UUID, model_version_id: UUID, run_id: UUID) -> str | None:
    """Delete a model version that never received a model from its run; returns its name if
    deleted.

    A run that failed before producing a model must not leave a version behind that looks like a
    candidate. Versions holding a model made by their run `run_id` are kept (a gate failure tags
    them `rejected` instead). A model the run reused from an earlier run (a cached step, linked to
    the version before any step ran: the baseline) does not count: it is that earlier run's.
    """
    client = Client()
    try:
        version = client.get_model_version(model_id, model_version_id)
    except KeyError:
        return None
    models = client.list_artifact_versions(
        model_version_id=version.id, type=ArtifactType.MODEL, size=1000
    )
    if any(str(model.producer_pipeline_run_id) == str(run_id) for model in models.items):
        return None
    client.delete_model_version(version.id)
    logger.warning(
        "Discarded model version %s of %s: its run failed before a model was produced.",
        version.name,
        version.model.name,
    )
    return version.name

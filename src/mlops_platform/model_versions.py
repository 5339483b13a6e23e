"""Model-version housekeeping shared by the failure hook and the runner."""

from __future__ import annotations

import logging
from uuid import UUID

from zenml.client import Client
from zenml.enums import ArtifactType

logger = logging.getLogger(__name__)


def discard_if_empty(model_id: UUID, model_version_id: UUID) -> str | None:
    """Delete a model version that never received a model; returns its name if deleted.

    A run that failed before producing a model must not leave a version behind that looks like a
    candidate. Versions holding a model are kept (a gate failure tags them `rejected` instead).
    """
    client = Client()
    try:
        version = client.get_model_version(model_id, model_version_id)
    except KeyError:
        return None
    models = client.list_artifact_versions(
        model_version_id=version.id, type=ArtifactType.MODEL, size=1
    )
    if models.total:
        return None
    client.delete_model_version(version.id)
    logger.warning(
        "Discarded model version %s of %s: its run failed before a model was produced.",
        version.name,
        version.model.name,
    )
    return version.name

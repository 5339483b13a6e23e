"""Model-version housekeeping shared by the failure hook and the runner."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from zenml.client import Client
from zenml.enums import ArtifactType

from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG, PlatformArtifact

logger = logging.getLogger(__name__)


def discard_if_never_judged(model_id: UUID, model_version_id: UUID, run_id: UUID) -> str | None:
    """Delete the model version of failed run ``run_id`` if no gate ever judged a model for it;
    returns its name if deleted.

    A run that failed before the platform's gate judged its model must not leave a version behind
    that looks like a candidate: the version is kept only when the gate judged it (it holds the
    gate's decision, or is tagged ``validated`` or ``rejected``: the gate tags a failing model
    before it stops the run), when it holds or held a stage, or when it holds a model an earlier
    run made for it (a failed promotion or scoring run of a trained version). A model the failed
    run made itself (the baseline, fitted before the candidate failed) or reused from another
    version's run (a cached step, which ZenML links to the new version before any step runs)
    does not keep it: the version could never be promoted, and its artifacts stay in the store.
    """
    client = Client()
    try:
        version = client.get_model_version(model_id, model_version_id)
    except KeyError:
        return None
    if _holds_a_stage(version) or _judged(client, version):
        return None
    if _made_for_it_earlier(client, version, run_id):
        return None
    client.delete_model_version(version.id)
    logger.warning(
        "Discarded model version %s of %s: its run failed with no verdict of the gate on its model.",
        version.name,
        version.model.name,
    )
    return version.name


def _holds_a_stage(version: Any) -> bool:
    """A version that holds (or held: archived) a stage is never discarded, whatever its tags or
    its runs (a training run deleted with ZenML's own CLI leaves its model's producer unknown)."""
    stage = getattr(version.stage, "value", version.stage)
    return stage is not None and str(stage).lower() not in ("", "none")


def _judged(client: Client, version: Any) -> bool:
    tags = {getattr(tag, "name", tag) for tag in version.tags}
    if tags & {VALIDATED_TAG, REJECTED_TAG}:
        return True
    decisions = client.list_artifact_versions(
        model_version_id=version.id, name=PlatformArtifact.GATE_DECISION, size=1
    )
    return decisions.total > 0


def _made_for_it_earlier(client: Client, version: Any, run_id: UUID) -> bool:
    models = client.list_artifact_versions(
        model_version_id=version.id, type=ArtifactType.MODEL, size=1000
    )
    producers = {
        str(m.producer_pipeline_run_id) for m in models.items if m.producer_pipeline_run_id
    } - {str(run_id)}
    return any(_made_for(version.id, run) for run in producers)


def _made_for(model_version_id: UUID, run_id: str) -> bool:
    """Whether pipeline run `run_id` ran for model version `model_version_id`."""
    try:
        run = Client().get_pipeline_run(UUID(run_id), hydrate=False)
    except KeyError:
        return False
    version = run.model_version
    return version is not None and str(version.id) == str(model_version_id)

"""A failed run's model version is dropped unless the gate judged a model for it, or an earlier run
made its model: a model the failed run made itself before the gate (the baseline) or reused from
another version's run (a cached step) does not keep it, and a failed promotion never drops a
trained version."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import pytest
from zenml import ArtifactConfig, Model, pipeline, save_artifact, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.model.utils import link_artifact_version_to_model_version
from zenml.models import ModelVersionResponse

from mlops_platform.names import REJECTED_TAG, PlatformArtifact
from mlops_platform.runtime.model_versions import discard_if_never_judged
from mlops_platform.workspace import use_project_source_root

pytestmark = pytest.mark.usefixtures("isolated_state")


@step
def make_model() -> Annotated[
    int, ArtifactConfig(name="probe_model", artifact_type=ArtifactType.MODEL)
]:
    return 7


@pipeline(model=Model(name="probe-model"), enable_cache=False)
def produces_a_model() -> None:
    make_model()


def _new_run() -> tuple[ModelVersionResponse, UUID]:
    """Run the pipeline; its model version (holding the model the run made) and the run's id."""
    produces_a_model()
    client = Client()
    run = client.get_pipeline_run(client.list_pipeline_runs(size=1).items[0].id)
    assert run.model_version is not None
    return run.model_version, run.id


def _exists(version: ModelVersionResponse) -> bool:
    try:
        Client().get_model_version(version.model.id, version.id)
    except KeyError:
        return False
    return True


def test_a_failed_run_keeps_its_version_only_when_it_was_judged_or_trained_earlier() -> None:
    use_project_source_root()  # as the CLI does: the steps of this module load by import path
    client = Client()
    first, first_run = _new_run()
    other_run = UUID(int=first_run.int ^ 1)  # any other run
    # A later run of the trained version that fails (a promotion, a scoring run) keeps it.
    assert discard_if_never_judged(first.model.id, first.id, other_run) is None
    assert _exists(first)

    # A version holding only an earlier run's model, linked the way ZenML links a cached step's
    # outputs before any step runs: dropped.
    reused = first.get_model_artifact("probe_model")
    second = client.create_model_version(first.model.id, name="second")
    link_artifact_version_to_model_version(reused, second)
    assert discard_if_never_judged(second.model.id, second.id, other_run) == "second"
    assert not _exists(second)

    # The failed run made a model itself (the baseline) but no gate judged one: dropped.
    third, third_run = _new_run()
    assert discard_if_never_judged(third.model.id, third.id, third_run) == third.name
    assert not _exists(third)

    # The gate judged it: tagged rejected (a failing model), or holding the gate's decision.
    rejected, rejected_run = _new_run()
    client.update_model_version(rejected.model.id, rejected.id, add_tags=[REJECTED_TAG])
    assert discard_if_never_judged(rejected.model.id, rejected.id, rejected_run) is None
    passed, passed_run = _new_run()
    decision = save_artifact({"passed": True}, name=PlatformArtifact.GATE_DECISION)
    link_artifact_version_to_model_version(decision, passed)
    assert discard_if_never_judged(passed.model.id, passed.id, passed_run) is None
    assert _exists(rejected) and _exists(passed) and _exists(first)

    # A stage holder is never dropped, even with its training run deleted (the attack: `zenml
    # pipeline runs delete` on the holder's training run, then a scoring run that fails).
    holder, holder_run = _new_run()
    client.update_model_version(holder.model.id, holder.id, stage="production", force=True)
    client.delete_pipeline_run(holder_run)
    assert discard_if_never_judged(holder.model.id, holder.id, other_run) is None
    assert _exists(holder)

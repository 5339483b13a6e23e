"""A failed run's model version is dropped unless it holds a model made for it (by the failed run,
or by the run that created the version): a model reused from an earlier version's run (a cached
step, such as the baseline) does not keep it, and a failed promotion never drops a trained
version."""

from __future__ import annotations

from typing import Annotated

import pytest
from zenml import ArtifactConfig, Model, pipeline, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.model.utils import link_artifact_version_to_model_version

from mlops_platform.runtime.model_versions import discard_if_no_own_model
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


def test_a_version_holding_only_a_model_reused_from_another_run_is_discarded() -> None:
    use_project_source_root()  # as the CLI does: the steps of this module load by import path
    produces_a_model()
    client = Client()
    first_run = client.get_pipeline_run(client.list_pipeline_runs(size=1).items[0].id)
    first = first_run.model_version
    assert first is not None
    reused = first.get_model_artifact("probe_model")

    # The second run's version before its own model exists, holding the earlier run's model the
    # way ZenML links a cached step's outputs.
    second = client.create_model_version(first.model.id, name="second")
    link_artifact_version_to_model_version(reused, second)
    assert client.list_artifact_versions(model_version_id=second.id, size=5).total == 1

    assert discard_if_no_own_model(first.model.id, first.id, first_run.id) is None  # its own model
    other_run = first_run.id.__class__(int=first_run.id.int ^ 1)  # any other run
    # A later run of the trained version that fails (a promotion, a scoring run) keeps it.
    assert discard_if_no_own_model(first.model.id, first.id, other_run) is None
    assert discard_if_no_own_model(second.model.id, second.id, other_run) == "second"
    with pytest.raises(KeyError):
        client.get_model_version(first.model.id, "second")
    assert client.get_model_version(first.model.id, first.name).id == first.id  # kept

"""Load the model that holds a stage for serving: the same checks as batch scoring.

The holder is asked of the ZenML store when the service starts and whenever it checks for a
switch; the file is loaded only through `load_verified_model` (digest, signature, type
allow-list of the stage's environment), its golden sample is re-scored, and the version's context
artifact (patient history) is bound as batch scoring binds it.
"""

from __future__ import annotations

from typing import Any

from mlops_platform.batch.contract import BatchContract, load_callable
from mlops_platform.serving.scorer import ServedModel


class NoStageHolderError(LookupError):
    """No version of the model holds the stage the service needs."""


def stage_holder(model_name: str, stage: str) -> Any:
    """The ZenML model version holding `stage`; `NoStageHolderError` when none does."""
    from zenml.client import Client

    from mlops_platform.governance.model_stages import require_recorded_stage

    try:
        return Client().get_model_version(model_name, stage)
    except KeyError as error:
        # Emptied outside the platform: `StageChangedOutsideError` (exit 9), not "promote one".
        require_recorded_stage(model_name, stage)
        raise NoStageHolderError(
            f"No version of {model_name} holds '{stage}', so there is nothing to serve. Promote "
            f"a validated version first: `mlops promote --version N --to {stage} --reason ...`."
        ) from error


def load_served_model(
    contract: BatchContract, version: Any, stage: str, *, shadow: bool = False
) -> ServedModel:
    """`version`'s verified model, golden-checked and bound to its context artifact.

    A served version must have been judged at the service's operating threshold; a ``shadow``
    one's answers go to nobody, and are compared at the service's threshold."""
    from mlops_platform.governance.model_stages import require_recorded_stage, version_threshold
    from mlops_platform.governance.promotion import OperatingThresholdError, stage_environment
    from mlops_platform.trust import golden
    from mlops_platform.trust.artifacts import load_verified_model
    from mlops_platform.trust.outputs import version_artifact

    name = version.model.name
    # Only the holder the verified trail records is served (ZenML's stage is writable by any
    # ZenML user): a version moved there outside `mlops promote` is refused (exit 9).
    require_recorded_stage(name, stage)
    judged = version_threshold(
        version, contract.operating_threshold, stage_environment(stage), say=False
    )
    if judged != contract.operating_threshold and not shadow:
        raise OperatingThresholdError(
            f"version {version.name} of {name} ('{stage}') was judged at operating threshold "
            f"{judged}, but this service scores at {contract.operating_threshold} (the threshold "
            "of the version it started with); restart the service (`mlops serve stop`, then "
            "`mlops serve start`) to serve it at its own threshold"
        )
    if version.get_model_artifact(contract.model_artifact) is None:
        raise NoStageHolderError(
            f"Version {version.name} of {name} ('{stage}') has no model artifact "
            f"{contract.model_artifact!r}; train and promote a new version."
        )
    model = load_verified_model(version, contract.model_artifact, stage_environment(stage))
    golden.verify_version(version, model)
    if contract.context_artifact and contract.bind_context:
        # Read from the version's training run, only as that run signed it (`trust.outputs`).
        context = version_artifact(version, contract.context_artifact, stage_environment(stage))
        if context is None:
            raise NoStageHolderError(
                f"Version {version.name} of {name} ('{stage}') has no artifact "
                f"{contract.context_artifact!r}; train and promote a new version."
            )
        load_callable(contract.bind_context)(model, context.load())
    return ServedModel(
        model=model,
        model_name=name,
        model_version=str(version.name),
        model_stage=stage,
        model_version_id=str(version.id),
    )

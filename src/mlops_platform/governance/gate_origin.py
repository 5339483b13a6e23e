"""Gate decisions cannot be handed in: a state-changing step accepts only the decision artifact
that the platform's `validate_model` produced in the same pipeline run.

A step input is an artifact version; ZenML records which step run produced it and in which
pipeline run. `register_model` and `promote_model` call `require_gate_origin` on their decision
input, so a dict built by other code, a literal parameter, a decision from an earlier run or one
produced by a look-alike step is refused before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass

# Import path of the only step whose output counts as a gate decision.
GATE_SOURCE = "mlops_platform.steps.validate_model.validate_model"


class GateOriginError(RuntimeError):
    """A gate decision did not come from the platform gate of this pipeline run."""


@dataclass(frozen=True)
class DecisionOrigin:
    """Where ZenML says the decision artifact came from (None: it is not an artifact at all)."""

    artifact_id: str | None
    producer_source: str | None
    producer_run_id: str | None


def gate_origin_problems(origin: DecisionOrigin, current_run_id: str) -> list[str]:
    """Why `origin` is not a decision of this run's platform gate (empty: it is)."""
    if origin.artifact_id is None:
        return [
            "the gate decision was not an artifact produced by a step (a value given in code or "
            "configuration); pass the output of mlops_platform.steps.validate_model"
        ]
    problems = []
    if origin.producer_source != GATE_SOURCE:
        problems.append(
            f"the gate decision was produced by {origin.producer_source or 'an unknown step'}, "
            f"not by the platform gate {GATE_SOURCE}"
        )
    if origin.producer_run_id != current_run_id:
        problems.append(
            f"the gate decision was produced in pipeline run {origin.producer_run_id}, not in "
            f"this run ({current_run_id}); the gate must judge the model in the same run"
        )
    return problems


def input_origin(input_name: str) -> DecisionOrigin:
    """The producing step and run of the current step's input `input_name`, read from ZenML."""
    from zenml import get_step_context
    from zenml.client import Client

    inputs = get_step_context().inputs.get(input_name) or []
    if len(inputs) != 1:
        return DecisionOrigin(None, None, None)
    artifact = inputs[0]
    producer_id = artifact.producer_step_run_id
    if producer_id is None:
        return DecisionOrigin(str(artifact.id), None, None)
    producer = Client().get_run_step(producer_id)
    source = producer.spec.source.import_path if producer.spec else None
    return DecisionOrigin(str(artifact.id), source, str(producer.pipeline_run_id))


def require_gate_origin(input_name: str) -> None:
    """Raise `GateOriginError` unless input `input_name` is this run's `validate_model` output."""
    from zenml import get_step_context

    run_id = str(get_step_context().pipeline_run.id)
    problems = gate_origin_problems(input_origin(input_name), run_id)
    if problems:
        raise GateOriginError(
            "Refused: the gate decision cannot be handed in; " + "; ".join(problems) + "."
        )

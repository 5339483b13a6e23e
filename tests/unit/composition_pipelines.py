"""Pipelines ZenML refuses to run, for `mlops check`'s composition rule and `mlops train`."""

from __future__ import annotations

from typing import Annotated

from zenml import pipeline, step


@step
def produce() -> Annotated[int, "number"]:
    return 1


@step
def consume(number: int) -> None:
    del number


@step
def gather_history() -> None:
    """Renamed from `collect_history`; the `after` list below still names the old name."""


@pipeline(name="after_a_renamed_step")
def after_a_renamed_step() -> None:
    gather_history()
    consume(produce(), after=["collect_history"])


@pipeline(name="miswired_input")
def miswired_input() -> None:
    consume(None)  # type: ignore[arg-type]  # the mistake under test


class Threshold:
    """A parameter type the check cannot build a placeholder of (it needs an argument)."""

    def __init__(self, value: float) -> None:
        self.value = value


@pipeline(name="unbuildable_parameter")
def unbuildable_parameter(threshold: Threshold) -> None:
    del threshold
    consume(produce())

"""Composing a pipeline's step graph (nothing runs), and the graphs ZenML refuses to run.

Two mistakes of a pipeline's author stop a run before any step starts: the pipeline function
fails while it composes (a step given `None`, or the wrong kind of value, for an input), or a
step is told to run `after=` a step the pipeline does not have (a step renamed in its file and
its call, but not in the `after` list). `mlops check` reports either as a finding and
`mlops train` as one message (exit 7), both naming the pipeline, the step and the name.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zenml.pipelines.pipeline_definition import Pipeline


class PipelineCompositionError(Exception):
    """A pipeline whose step graph cannot be composed, or names a step it does not have."""


def _source_file(pipeline: Pipeline) -> str | None:
    try:
        return inspect.getsourcefile(pipeline.entrypoint)
    except TypeError:
        return None


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _where(pipeline: Pipeline, error: BaseException) -> str:
    """The innermost line of the pipeline's own file in ``error``'s traceback ('' if none)."""
    source = _source_file(pipeline)
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if source and Path(f.filename) == Path(source)]
    return f" (at {_shown(mine[-1].filename)}:{mine[-1].lineno})" if mine else ""


def compose(pipeline: Pipeline, arguments: Mapping[str, Any]) -> Pipeline:
    """Compose ``pipeline``'s step graph with ``arguments`` (nothing runs); any error of its
    function is a `PipelineCompositionError` naming the pipeline, the error and the line."""
    try:
        pipeline.prepare(**dict(arguments))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise PipelineCompositionError(
            f"pipeline {pipeline.name} cannot be composed, so nothing of it can run: "
            f"{type(error).__name__}: {first.rstrip('.')}{_where(pipeline, error)}. Fix the pipeline "
            "function: give each step's input the output of the step that produces it (not "
            "None or a literal of another type), then run `mlops check` again."
        ) from error
    return pipeline


def unknown_upstream_steps(invocations: Mapping[str, Any]) -> dict[str, list[str]]:
    """Step -> the names it must run after (`after=`) that no step of the pipeline has."""
    known = set(invocations)
    unknown = {
        name: sorted(set(invocation.upstream_steps) - known)
        for name, invocation in invocations.items()
    }
    return {name: names for name, names in unknown.items() if names}


def unknown_upstream_problems(composed: Pipeline) -> list[str]:
    """One sentence per step of a composed pipeline that names an upstream step it lacks."""
    source = _source_file(composed)
    where = f" in {_shown(source)}" if source else ""
    steps = ", ".join(sorted(composed.invocations))
    return [
        f"step `{step}` of pipeline {composed.name} is to run after "
        f"{', '.join(repr(n) for n in names)}, but the pipeline has no step of that name "
        "(renamed or removed?), so ZenML refuses to run the pipeline. In the call of "
        f"`{step}`{where}, put the step's current name in `after=[...]` or remove it (the "
        f"pipeline's steps: {steps})"
        for step, names in sorted(unknown_upstream_steps(composed.invocations).items())
    ]


def refuse_unknown_upstream(composed: Pipeline) -> None:
    """Raise `PipelineCompositionError` when a step names an upstream step the pipeline lacks."""
    problems = unknown_upstream_problems(composed)
    if problems:
        raise PipelineCompositionError("; ".join(problems) + ". Nothing ran.")

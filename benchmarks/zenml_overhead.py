"""ZenML's fixed cost per step and per artifact on this machine (plain ZenML, no governance).

Two pipelines of pass-through steps run in a fresh store: `steps` steps that each return a small
DataFrame (one artifact per step), against one step; and one step returning `steps` DataFrames
against one returning one. The differences divided by the extra steps (or artifacts) are the
per-step and per-artifact costs that decide when splitting work into steps pays
(docs/ARCHITECTURE.md, "Steps and reuse").
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import pipeline, step

STEPS = 6


@step(enable_cache=False)
def source() -> pd.DataFrame:
    return pd.DataFrame({"a": range(1000), "b": [0.5] * 1000})


@step(enable_cache=False)
def passthrough(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@step(enable_cache=False)
def fan_out() -> tuple[
    Annotated[pd.DataFrame, "f1"],
    Annotated[pd.DataFrame, "f2"],
    Annotated[pd.DataFrame, "f3"],
    Annotated[pd.DataFrame, "f4"],
    Annotated[pd.DataFrame, "f5"],
    Annotated[pd.DataFrame, "f6"],
]:
    frame = pd.DataFrame({"a": range(1000), "b": [0.5] * 1000})
    return frame, frame, frame, frame, frame, frame


@pipeline(enable_cache=False)
def one_step() -> None:
    source()


@pipeline(enable_cache=False)
def many_steps() -> None:
    frame = source()
    for _ in range(STEPS - 1):
        frame = passthrough(frame)


@pipeline(enable_cache=False)
def many_artifacts() -> None:
    fan_out()


def _timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def run(repeats: int) -> dict[str, Any]:
    from mlops_platform.runtime.zenml_tuning import cache_package_lookups
    from mlops_platform.workspace import reset_zenml_clients, use_project_source_root

    with tempfile.TemporaryDirectory() as tmp:
        saved = dict(os.environ)
        os.environ["ZENML_CONFIG_PATH"] = str(Path(tmp) / "zenml")
        reset_zenml_clients()
        use_project_source_root()
        cache_package_lookups()  # as run_governed does
        try:
            one_step()  # first call pays imports and store creation
            single = [_timed(one_step) for _ in range(repeats)]
            chain = [_timed(many_steps) for _ in range(repeats)]
            fanned = [_timed(many_artifacts) for _ in range(repeats)]
        finally:
            os.environ.clear()
            os.environ.update(saved)
            reset_zenml_clients()
    one, many, wide = (statistics.median(v) for v in (single, chain, fanned))
    return {
        "repeats": repeats,
        "steps": STEPS,
        "one_step_run_median_s": one,
        "many_steps_run_median_s": many,
        "many_artifacts_run_median_s": wide,
        "per_step_s": (many - one) / (STEPS - 1),
        "per_artifact_s": (wide - one) / (STEPS - 1),
    }

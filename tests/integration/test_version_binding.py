"""A model version reads only what its own training run signed; a reused step only the same work.

Attacks by someone who can write ZenML's database (no keys), done with raw SQL on the store:

- the version's artifact links (`model_versions_artifacts`) are pointed at another governed
  run's signed outputs: the version's holdout, baseline, patient history and drift reference
  are read from its training run, so judging and scoring do not change;
- the training run's own step outputs (`step_run_output_artifact`) are pointed at another run's
  signed output: refused with exit 8 (not in the training run's signed list), nothing moved;
- step-run cache keys are copied so that a training on one file reuses a step that ran on
  another file: the gate refuses with exit 8 (the reused output's run signed another launch),
  no gate pass is recorded and nothing is registered.

One module state: version 1 trained on file A and put in production, version 2 on file B.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from zenml.client import Client

from mlops_cli.errors import ExitCode
from mlops_platform.batch.contract import BatchArtifact
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import PlatformArtifact
from mlops_platform.runtime import runner
from mlops_platform.trust import outputs
from mlops_platform.trust.audit import AuditTrail
from readmission.names import MODEL_NAME, Artifact
from tests.integration.helpers import invoke, invoke_json, write_synthetic_csv, zenml_sql

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("version_binding")]

# The version artifacts a relink could swap: the training step that makes each, and the command
# that reads it (judging a stored version, or batch scoring with the production holder).
BOUND = {
    PlatformArtifact.HOLDOUT_SET.value: ("split_holdout", "gate"),
    Artifact.BASELINE_MODEL.value: ("train_baseline", "gate"),
    Artifact.PATIENT_HISTORY.value: ("collect_patient_history", "infer"),
    BatchArtifact.DRIFT_REFERENCE.value: ("build_drift_reference", "infer"),
}


@dataclass(frozen=True)
class World:
    root: Path
    file_a: Path
    file_b: Path
    first: str  # trained on file A, holds production
    second: str  # trained on file B
    sample: Path


@pytest.fixture(scope="module")
def world(module_state: Path) -> Iterator[World]:
    root = module_state.parent
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    with pytest.MonkeyPatch.context() as patch:
        # Reuse needs code named by a commit; a developer's checkout may be dirty while this runs.
        patch.setattr(runner, "source_tree_clean", lambda: True)
        file_a = write_synthetic_csv(root / "a.csv", patients=12000, seed=31)
        file_b = write_synthetic_csv(root / "b.csv", patients=12000, seed=32)
        first = str(invoke_json("train", "--env", "local", "--data", str(file_a))["model_version"])
        second = str(invoke_json("train", "--env", "local", "--data", str(file_b))["model_version"])
        Client().update_model_version(MODEL_NAME, first, stage="production", force=True)
        sample = write_synthetic_csv(root / "sample.csv", patients=300, seed=33)
        yield World(root, file_a, file_b, first, second, sample)


def _training_output(version: str, name: str) -> Any:
    """The artifact `name` as the training run of `version` stored it (through ZenML's API)."""
    model_version = Client().get_model_version(MODEL_NAME, version)
    run = Client().get_pipeline_run(model_version.run_metadata["registration"]["pipeline_run_id"])
    step = run.steps[BOUND[name][0]]
    (artifact,) = step.outputs[name]
    return step, artifact


def _gate(version: str) -> Any:
    return invoke("gate", "--version", version, "--env", "local", "--json")


def _scores(world: World, out: str) -> tuple[pd.Series, Any]:
    """The production holder's risks for the sample, and the batch's drift figures."""
    scored = invoke_json("infer", "--input", str(world.sample), "--output", str(world.root / out))
    frame = pd.read_parquet(Path(scored["output_dir"]) / "predictions.parquet")
    return frame.set_index("encounter_id")["readmission_risk"].sort_index(), scored["drift"]


def _trail() -> list[Any]:
    return AuditTrail(load_platform_settings("local").audit.url).records()


def test_relinked_version_artifacts_change_neither_judging_nor_scoring(world: World) -> None:
    judged = _gate(world.first)
    assert judged.exit_code == 0, judged.output
    scores, drift = _scores(world, "before-relink")
    version = Client().get_model_version(MODEL_NAME, world.first)
    relinks = []
    for name in BOUND:
        _, own = _training_output(world.first, name)
        _, other = _training_output(world.second, name)
        assert own.id != other.id
        relinks.append(
            (
                "UPDATE model_versions_artifacts SET artifact_version_id = :other "
                "WHERE model_version_id = :version AND artifact_version_id = :own",
                {"other": other.id.hex, "version": version.id.hex, "own": own.id.hex},
            )
        )
    assert all(count >= 1 for count in zenml_sql(*relinks))
    relinked = Client().get_model_version(MODEL_NAME, world.first)
    for name in BOUND:  # the links now name version 2's artifacts
        assert relinked.get_artifact(name).id == _training_output(world.second, name)[1].id
    outputs.forget_verified()  # as a new process: the CLI runs in this one

    again = _gate(world.first)
    assert again.exit_code == 0, again.output
    assert again.stdout == judged.stdout  # the same holdout and baseline were judged
    scores_after, drift_after = _scores(world, "after-relink")
    pd.testing.assert_series_equal(scores_after, scores)  # the same patient history
    assert drift_after == drift  # the same drift reference


@pytest.mark.parametrize("name", list(BOUND))
def test_a_training_runs_step_output_pointed_elsewhere_is_refused(world: World, name: str) -> None:
    step, own = _training_output(world.first, name)
    _, other = _training_output(world.second, name)
    swap = (
        "UPDATE step_run_output_artifact SET artifact_id = :to WHERE step_id = :step "
        "AND artifact_id = :from"
    )
    records = len(_trail())
    assert zenml_sql((swap, {"to": other.id.hex, "step": step.id.hex, "from": own.id.hex})) == [1]
    try:
        outputs.forget_verified()  # as a new process: the CLI runs in this one
        if BOUND[name][1] == "infer":
            refused = invoke(
                "infer", "--input", str(world.sample), "--output", str(world.root / "refused")
            )
            assert not (world.root / "refused").exists() or not any(
                (world.root / "refused").rglob("predictions.parquet")
            )
        else:
            refused = _gate(world.first)
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert name in refused.output and "training run" in refused.output
        assert Client().get_model_version(MODEL_NAME, world.first).stage == "production"
        # The refusal may be recorded (a failed batch run), nothing else.
        added = [r.event_type for r in _trail()[records:]]
        assert added in ([], ["pipeline_failed"]), added
    finally:
        zenml_sql((swap, {"to": own.id.hex, "step": step.id.hex, "from": other.id.hex}))
        outputs.forget_verified()


def test_a_cache_key_copied_onto_another_files_step_is_refused(world: World) -> None:
    from zenml.enums import ExecutionStatus

    def run_of(version: str) -> Any:
        registration = Client().get_model_version(MODEL_NAME, version).run_metadata
        return Client().get_pipeline_run(registration["registration"]["pipeline_run_id"])

    run_a, run_b = run_of(world.first), run_of(world.second)
    reusable = load_platform_settings("local").caching.reusable_steps
    statements = []
    for name in reusable:  # file A's step runs take file B's keys; B's own lose theirs
        a, b = run_a.steps[name], run_b.steps[name]
        assert a.status == b.status == ExecutionStatus.COMPLETED
        assert a.cache_key != b.cache_key
        statements += [
            ("UPDATE step_run SET cache_key = :key WHERE id = :id", {"key": "x", "id": b.id.hex}),
            (
                "UPDATE step_run SET cache_key = :key WHERE id = :id",
                {"key": b.cache_key, "id": a.id.hex},
            ),
        ]
    zenml_sql(*statements)
    trail = AuditTrail(load_platform_settings("local").audit.url)
    passed = len([r for r in trail.records() if r.event_type == "gate_passed"])
    versions = {v.name for v in Client().list_model_versions(MODEL_NAME, size=100)}
    outputs.forget_verified()  # as a new process: the CLI runs in this one

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "source_tree_clean", lambda: True)
        refused = invoke("train", "--env", "local", "--data", str(world.file_b))

    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert "launch" in refused.output and str(run_a.id) in refused.output
    assert len([r for r in trail.records() if r.event_type == "gate_passed"]) == passed
    for name in {v.name for v in Client().list_model_versions(MODEL_NAME, size=100)} - versions:
        assert "registration" not in Client().get_model_version(MODEL_NAME, name).run_metadata

"""A model version reads only what its own training run signed; a reused step only the same work.

Attacks by someone who can write ZenML's database (no keys), done with raw SQL on the store:

- the version's artifact links (`model_versions_artifacts`), its training run's step outputs
  (`step_run_output_artifact`) or the artifacts' names are changed to point at other signed
  outputs: the version's holdout, baseline, patient history and drift reference are found by
  the names its training run signed, so judging and scoring do not change;
- an artifact is recorded with another materializer: refused with exit 8, nothing moved;
- step-run cache keys are copied so that a training reuses a step that ran on other work (another
  file, or the same file with other parameters): the gate refuses with exit 8, no gate pass is
  recorded and nothing is registered;
- the training run's signed statement is detached from it: judging and scoring refuse (exit 8).

And by someone who can write the artifact store, between a check and the load that follows it:
a version's artifacts, or a training's own holdout under its gate, are swapped; what is loaded
and judged is what was checked, and the next read refuses.

One module state: version 1 trained on file A and put in production, version 2 on file B.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from zenml.client import Client
from zenml.enums import ExecutionStatus

from mlops_cli.errors import ExitCode
from mlops_platform.batch.contract import BatchArtifact
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import PlatformArtifact
from mlops_platform.runtime import runner
from mlops_platform.steps import validate_model
from mlops_platform.trust import outputs
from mlops_platform.trust.artifacts import loaded_digest
from mlops_platform.trust.audit import AuditTrail
from mlops_platform.trust.signing import LOCAL_PUBLIC_KEY_SUFFIX
from readmission.core.cohort import LABEL
from readmission.names import MODEL_NAME, Artifact
from tests.integration.helpers import (
    hold_stage,
    invoke,
    invoke_json,
    write_synthetic_csv,
    zenml_sql,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("version_binding")]

# The version artifacts an attack could swap: the training step that makes each, and another
# artifact of the same run (a different role) a rename could put in its place.
BOUND = {
    PlatformArtifact.HOLDOUT_SET.value: ("split_holdout", PlatformArtifact.DEVELOPMENT_SET.value),
    Artifact.BASELINE_MODEL.value: ("train_baseline", None),
    Artifact.PATIENT_HISTORY.value: (
        "collect_patient_history",
        PlatformArtifact.VALIDATED_DATA.value,
    ),
    BatchArtifact.DRIFT_REFERENCE.value: ("build_drift_reference", None),
}


@dataclass(frozen=True)
class World:
    root: Path
    file_a: Path
    file_b: Path
    first: str  # trained on file A, holds production
    second: str  # trained on file B
    sample: Path
    judged: str  # `mlops gate --version <first> --json` before any attack
    scores: pd.Series  # the production holder's risks for the sample before any attack
    drift: Any


def _scores(sample: Path, out: Path) -> tuple[pd.Series, Any]:
    """The production holder's risks for the sample, and the batch's drift figures."""
    scored = invoke_json("infer", "--input", str(sample), "--output", str(out))
    frame = pd.read_parquet(Path(scored["output_dir"]) / "predictions.parquet")
    return frame.set_index("encounter_id")["readmission_risk"].sort_index(), scored["drift"]


def _gate(version: str) -> Any:
    return invoke("gate", "--version", version, "--env", "local", "--json")


def _train(data: Path, *options: str, clean: bool = True, before_gate: Any = None) -> Any:
    """`mlops train` as from a clean commit (reuse needs one; a developer's tree may be dirty),
    or a dirty one (`clean=False`: nothing reused). `before_gate(run_id)` runs inside the gate
    step, before its checks: an attack made while the run is under way."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "source_tree_clean", lambda: clean)
        if before_gate is not None:
            check = validate_model.check_reused_outputs

            def attacked(run_id: Any, env: str, launch: str) -> int:
                before_gate(run_id)
                return check(run_id, env, launch)

            patch.setattr(validate_model, "check_reused_outputs", attacked)
        return invoke("train", "--env", "local", "--data", str(data), *options)


@pytest.fixture(scope="module")
def world(module_state: Path) -> Iterator[World]:
    root = module_state.parent
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    file_a = write_synthetic_csv(root / "a.csv", patients=12000, seed=31)
    file_b = write_synthetic_csv(root / "b.csv", patients=12000, seed=32)
    trained = []
    for data in (file_a, file_b):
        result = _train(data, "--json")
        assert result.exit_code == 0, result.output
        trained.append(str(json.loads(result.stdout)["model_version"]))
    first, second = trained
    hold_stage(first, "production")
    sample = write_synthetic_csv(root / "sample.csv", patients=300, seed=33)
    judged = _gate(first)
    assert judged.exit_code == 0, judged.output
    scores, drift = _scores(sample, root / "before")
    yield World(root, file_a, file_b, first, second, sample, judged.stdout, scores, drift)


def _run_of(version: str) -> Any:
    registration = Client().get_model_version(MODEL_NAME, version).run_metadata["registration"]
    return Client().get_pipeline_run(registration["pipeline_run_id"])


def _output(version: str, name: str) -> tuple[Any, Any]:
    """The step of `version`'s training run that made `name`, and the artifact (ZenML's API)."""
    step = _run_of(version).steps[BOUND[name][0]]
    (artifact,) = step.outputs[name]
    return step, artifact


def _trail() -> list[Any]:
    return AuditTrail(load_platform_settings("local").audit.url).records()


def _judged_and_scored_as_before(world: World, out: str) -> None:
    outputs.forget_statements()  # as a new process would: the CLI runs in this one
    again = _gate(world.first)
    assert again.exit_code == 0, again.output
    assert again.stdout == world.judged  # the same holdout and baseline were judged
    scores, drift = _scores(world.sample, world.root / out)
    pd.testing.assert_series_equal(scores, world.scores)  # the same patient history
    assert drift == world.drift  # the same drift reference


def test_what_a_run_wrote_is_forgotten_once_its_statement_is_signed(world: World) -> None:
    """The in-process record of written files does not grow with every run: once a run is signed,
    its statement vouches for its outputs, also for a reader naming the run as its own (a
    promotion judged again after its run ended): an edited file is refused."""
    runs = {str(_run_of(version).id) for version in (world.first, world.second)}
    assert runs <= outputs._RUNS_HERE  # both trainings ran their steps in this process
    assert not [w for w in outputs._WRITTEN.values() if w.run_id in runs]
    _, reference = _output(world.first, BatchArtifact.DRIFT_REFERENCE.value)
    run_id = reference.producer_pipeline_run_id
    assert outputs.check_output(reference, "local", run_id).digest
    (stored,) = [p for p in Path(reference.uri).rglob("*") if p.is_file()][:1]
    saved = stored.read_bytes()
    try:
        stored.write_bytes(saved + b" ")
        with pytest.raises(outputs.OutputIntegrityError, match="Refused to read"):
            outputs.check_output(reference, "local", run_id)
    finally:
        stored.write_bytes(saved)


def test_relinked_version_artifacts_change_neither_judging_nor_scoring(world: World) -> None:
    version = Client().get_model_version(MODEL_NAME, world.first)
    relink = (
        "UPDATE model_versions_artifacts SET artifact_version_id = :to "
        "WHERE model_version_id = :version AND artifact_version_id = :from"
    )
    pairs = [(_output(world.first, n)[1], _output(world.second, n)[1]) for n in BOUND]
    changed = zenml_sql(
        *[(relink, {"to": o.id.hex, "version": version.id.hex, "from": a.id.hex}) for a, o in pairs]
    )
    assert all(count >= 1 for count in changed)
    relinked = Client().get_model_version(MODEL_NAME, world.first)
    for name, (_, other) in zip(BOUND, pairs, strict=True):  # the links name version 2's now
        assert relinked.get_artifact(name).id == other.id
    try:
        _judged_and_scored_as_before(world, "after-relink")
    finally:
        zenml_sql(
            *[
                (relink, {"to": a.id.hex, "version": version.id.hex, "from": o.id.hex})
                for a, o in pairs
            ]
        )


def test_training_step_outputs_pointed_elsewhere_change_nothing(world: World) -> None:
    swap = (
        "UPDATE step_run_output_artifact SET artifact_id = :to WHERE step_id = :step "
        "AND artifact_id = :from"
    )
    moves = []
    for name in BOUND:
        step, own = _output(world.first, name)
        moves.append((step, own, _output(world.second, name)[1]))
    changed = zenml_sql(
        *[(swap, {"to": o.id.hex, "step": s.id.hex, "from": a.id.hex}) for s, a, o in moves]
    )
    assert changed == [1] * len(moves)
    try:
        _judged_and_scored_as_before(world, "after-step-swap")
    finally:
        zenml_sql(
            *[(swap, {"to": a.id.hex, "step": s.id.hex, "from": o.id.hex}) for s, a, o in moves]
        )


def test_renamed_artifacts_change_nothing(world: World) -> None:
    """Swapping names: the holdout is called `development_set` and the reverse, the patient
    history `validated_data` and the reverse. The signed names decide, not ZenML's."""
    rename = "UPDATE artifact SET name = :to WHERE name = :from"
    pairs = [(name, other) for name, (_, other) in BOUND.items() if other]
    statements = []
    for name, other in pairs:
        statements += [
            (rename, {"to": "zz-swap", "from": name}),
            (rename, {"to": name, "from": other}),
            (rename, {"to": other, "from": "zz-swap"}),
        ]
    zenml_sql(*statements)
    _, holdout = _output(world.first, PlatformArtifact.HOLDOUT_SET.value)
    assert Client().get_artifact_version(holdout.id).name == PlatformArtifact.DEVELOPMENT_SET
    try:
        _judged_and_scored_as_before(world, "after-rename")
    finally:
        zenml_sql(*statements)  # each swap undoes itself


def test_an_artifact_recorded_with_another_materializer_is_refused(world: World) -> None:
    _, holdout = _output(world.first, PlatformArtifact.HOLDOUT_SET.value)
    model = (
        Client().get_model_version(MODEL_NAME, world.first).get_model_artifact(Artifact.MODEL.value)
    )
    (before,) = zenml_sql_rows("SELECT materializer FROM artifact_version WHERE id = :id", holdout)
    swap = "UPDATE artifact_version SET materializer = :m WHERE id = :id"
    (chosen,) = zenml_sql_rows("SELECT materializer FROM artifact_version WHERE id = :id", model)
    assert zenml_sql((swap, {"m": chosen, "id": holdout.id.hex})) == [1]
    records = len(_trail())
    try:
        outputs.forget_statements()
        refused = _gate(world.first)
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert "materializer" in refused.output and "holdout_set" in refused.output
        assert Client().get_model_version(MODEL_NAME, world.first).stage == "production"
        assert len(_trail()) == records  # `mlops gate` records nothing, refused or not
    finally:
        zenml_sql((swap, {"m": before, "id": holdout.id.hex}))


def zenml_sql_rows(query: str, artifact: Any) -> list[Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(str(Client().zen_store.url))
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text(query), {"id": artifact.id.hex})]
    finally:
        engine.dispose()


def _copy_keys(into: Any, source: Any, steps: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """SQL that gives `into`'s step runs `source`'s cache keys (and `source`'s a dead key), so
    that a launch computing `source`'s keys is served `into`'s outputs; and the SQL undoing it."""
    update = "UPDATE step_run SET cache_key = :key WHERE id = :id"
    attack, undo = [], []
    for name in steps:
        victim, original = into.steps[name], source.steps[name]
        assert victim.status == original.status == ExecutionStatus.COMPLETED
        assert victim.cache_key != original.cache_key
        attack += [
            (update, {"key": "dead", "id": original.id.hex}),
            (update, {"key": original.cache_key, "id": victim.id.hex}),
        ]
        undo += [
            (update, {"key": original.cache_key, "id": original.id.hex}),
            (update, {"key": victim.cache_key, "id": victim.id.hex}),
        ]
    return attack, undo


def _refused_training(world: World, data: Path, named: str, **options: Any) -> None:
    passed = len([r for r in _trail() if r.event_type == "gate_passed"])
    versions = {v.name for v in Client().list_model_versions(MODEL_NAME, size=100)}
    outputs.forget_statements()
    refused = _train(data, **options)
    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert named in refused.output, refused.output
    assert len([r for r in _trail() if r.event_type == "gate_passed"]) == passed
    for name in {v.name for v in Client().list_model_versions(MODEL_NAME, size=100)} - versions:
        assert "registration" not in Client().get_model_version(MODEL_NAME, name).run_metadata


DISGUISED = (
    "UPDATE step_run SET status = :to WHERE pipeline_run_id = :run AND status = :status "
    "AND original_step_run_id IS NOT NULL"
)


def _shown_as_run_here(run_id: Any) -> None:
    """ZenML's records say the run's reused steps ran in it (status `completed`, not `cached`)."""
    run = Client().get_pipeline_run(run_id).id.hex
    (changed,) = zenml_sql((DISGUISED, {"to": "completed", "run": run, "status": "cached"}))
    assert changed >= 1  # the training reused steps, now recorded as run here
    _DISGUISED_RUNS.append(run)


_DISGUISED_RUNS: list[str] = []


@pytest.mark.parametrize("disguised", [False, True], ids=["as-cached", "shown-as-run-here"])
def test_a_cache_key_copied_onto_a_step_with_other_parameters_is_refused(
    world: World, disguised: bool
) -> None:
    """Same file, commit and holdout (the same launch), but a baseline fitted with a crippling
    parameter: its step run gets the key of a normal fit, and the next training reuses it; in
    the second case the reused steps are also recorded as run during the training."""
    # Its gate may pass or fail; each case fits its own (so neither reuses the other's).
    _train(world.file_b, "--set", f"model.baseline_c={2e-6 if disguised else 1e-6}")
    (run,) = Client().list_pipeline_runs(sort_by="desc:created", size=1).items
    assert run.config.parameters is not None
    assert run.steps["train_baseline"].status == ExecutionStatus.COMPLETED
    attack, undo = _copy_keys(run, _run_of(world.second), ["train_baseline"])
    zenml_sql(*attack)
    try:
        _refused_training(
            world, world.file_b, "cache key", before_gate=_shown_as_run_here if disguised else None
        )
    finally:
        zenml_sql(*undo)
        while _DISGUISED_RUNS:  # or those step runs would serve the copied work again
            run = _DISGUISED_RUNS.pop()
            zenml_sql((DISGUISED, {"to": "cached", "run": run, "status": "completed"}))


def test_a_cache_key_copied_onto_another_files_step_is_refused(world: World) -> None:
    reusable = list(load_platform_settings("local").caching.reusable_steps)
    attack, undo = _copy_keys(_run_of(world.first), _run_of(world.second), reusable)
    zenml_sql(*attack)
    try:
        _refused_training(world, world.file_b, "launch")
    finally:
        zenml_sql(*undo)


def test_an_output_edited_while_its_run_is_under_way_is_refused(world: World) -> None:
    """The run's own holdout gets other outcomes in the artifact store after its step wrote it
    and before the gate checks (nothing is reused: a dirty tree)."""
    edited: list[str] = []

    def flip_outcomes(run_id: Any) -> None:
        run = Client().get_pipeline_run(run_id)
        (holdout,) = run.steps["split_holdout"].outputs[PlatformArtifact.HOLDOUT_SET.value]
        assert str(holdout.producer_pipeline_run_id) == str(run.id)  # made by this run
        for path in Path(holdout.uri).rglob("*.parquet*"):
            frame = pd.read_parquet(path)
            frame[LABEL] = 1 - frame[LABEL]
            frame.to_parquet(path)
            edited.append(str(path))

    _refused_training(
        world, world.file_a, "changed in the artifact store", clean=False, before_gate=flip_outcomes
    )
    assert edited


def _files(folder: str) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in Path(folder).rglob("*") if path.is_file()}


def _same(name: str, loaded: Any, before: Any) -> None:
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, before)
    elif name == Artifact.BASELINE_MODEL.value:  # the same bytes were deserialised
        assert loaded_digest(loaded) == loaded_digest(before) is not None
    else:
        assert loaded == before


def test_files_swapped_after_their_check_are_not_what_is_loaded(world: World) -> None:
    """Between the check of a version's artifact and its load, its files are replaced by the
    files of version 2's artifact of the same name (valid, coherent content): what is loaded is
    what was checked; a new read refuses."""
    version = Client().get_model_version(MODEL_NAME, world.first)
    for name in BOUND:
        outputs.forget_statements()
        checked = outputs.version_artifact(version, name, "local")
        assert checked is not None
        before = checked.load()
        original = _files(checked.uri)
        other = _output(world.second, name)[1]
        replacement = {
            Path(checked.uri) / p.relative_to(other.uri): b for p, b in _files(other.uri).items()
        }
        assert set(replacement) == set(original) and replacement != original
        for path, data in replacement.items():
            path.write_bytes(data)
        try:
            _same(name, checked.load(), before)
            with pytest.raises(outputs.OutputIntegrityError, match=name):
                outputs.version_artifact(version, name, "local")
        finally:
            for path, data in original.items():
                path.write_bytes(data)
    _judged_and_scored_as_before(world, "after-swap-after-check")


def test_an_input_swapped_after_the_gate_checked_it_is_not_what_it_judges(world: World) -> None:
    """A training's own holdout gets flipped outcomes right after the gate read and checked it:
    the gate judges what it checked (the metrics of version 1, trained on the same file), the
    run signs the holdout as written and alerts, and the version cannot be judged again."""
    swapped: list[str] = []
    real = validate_model.checked_inputs

    def swap_after_check(context: Any, env: str) -> Any:
        inputs = real(context, env)
        for path in Path(inputs["evaluation_data"].uri).rglob("*.parquet*"):
            frame = pd.read_parquet(path)
            frame[LABEL] = 1 - frame[LABEL]
            frame.to_parquet(path)
            swapped.append(str(path))
        return inputs

    outputs.forget_statements()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "source_tree_clean", lambda: False)  # nothing reused
        patch.setattr(validate_model, "checked_inputs", swap_after_check)
        trained = invoke("train", "--env", "local", "--data", str(world.file_a), "--json")
    assert swapped
    assert trained.exit_code == 0, trained.output
    attacked = str(json.loads(trained.stdout)["model_version"])
    judged = Client().get_model_version(MODEL_NAME, attacked).run_metadata["gate_metrics"]
    first = Client().get_model_version(MODEL_NAME, world.first).run_metadata["gate_metrics"]
    assert judged["roc_auc"] == first["roc_auc"]
    outputs.forget_statements()
    refused = _gate(attacked)
    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert "holdout_set" in refused.output


def test_a_training_run_whose_signed_statement_is_detached_is_refused(world: World) -> None:
    """ZenML's record of the training run's `output_pins` is moved off the run (raw SQL):
    judging it again and scoring with it refuse (exit 8), and nothing moves."""
    run = _run_of(world.first).id.hex
    move = (
        "UPDATE run_metadata_resource SET resource_id = :to WHERE resource_id = :from "
        "AND resource_type = 'pipeline_run' AND run_metadata_id IN "
        f"(SELECT id FROM run_metadata WHERE key = '{outputs.OUTPUTS_KEY}')"
    )
    (moved,) = zenml_sql((move, {"to": "0" * 32, "from": run}))
    assert moved == 1
    records = len(_trail())
    try:
        assert outputs.OUTPUTS_KEY not in _run_of(world.first).run_metadata
        outputs.forget_statements()
        refused = _gate(world.first)
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert len(_trail()) == records
        outputs.forget_statements()
        out = world.root / "detached"
        scoring = invoke("infer", "--input", str(world.sample), "--output", str(out))
        assert scoring.exit_code == ExitCode.AUDIT_BROKEN, scoring.output
        assert not out.exists() or not list(out.rglob("predictions.parquet"))
        assert Client().get_model_version(MODEL_NAME, world.first).stage == "production"
    finally:
        zenml_sql((move, {"to": run, "from": "0" * 32}))
    _judged_and_scored_as_before(world, "after-statement-restored")


def test_a_withdrawn_key_stops_vouching_in_a_process_that_read_the_statement(
    world: World,
) -> None:
    """A long-running process (a server) read and verified a run's statement; the environment
    then stops trusting the key that signed it: the next read in the same process refuses."""
    _, holdout = _output(world.first, PlatformArtifact.HOLDOUT_SET.value)
    outputs.forget_statements()
    outputs.check_output(holdout, "local")  # read and verified once in this process
    folder = Path(os.environ["MLOPS_STATE_DIR"]) / "keys"
    keys = sorted(folder.glob(f"*{LOCAL_PUBLIC_KEY_SUFFIX}"))
    assert keys
    for key in keys:
        key.rename(key.with_name(key.name + ".withdrawn"))
    try:
        with pytest.raises(outputs.OutputIntegrityError, match="does not verify"):
            outputs.check_output(holdout, "local")
    finally:
        for key in keys:
            key.with_name(key.name + ".withdrawn").rename(key)
    outputs.check_output(holdout, "local")  # trusted again


def _planted(artifact: Any, marker: Path) -> tuple[list[Any], list[Any]]:
    """A pickle that would create `marker` put beside `artifact`'s files, and ZenML's record of
    it changed to the cloudpickle materializer: SQL for the attack and for undoing it."""
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    (Path(artifact.uri) / "artifact.pkl").write_bytes(pickle.dumps(Payload()))
    (before,) = zenml_sql_rows("SELECT materializer FROM artifact_version WHERE id = :id", artifact)
    cloudpickle = json.dumps(
        {
            "module": "zenml.materializers.cloudpickle_materializer",
            "attribute": "CloudpickleMaterializer",
            "type": "internal",
        }
    )
    update = "UPDATE artifact_version SET materializer = :m WHERE id = :id"
    return [(update, {"m": cloudpickle, "id": artifact.id.hex})], [
        (update, {"m": before, "id": artifact.id.hex})
    ]


def test_a_pickle_planted_under_a_reused_input_never_runs(world: World) -> None:
    """The reused holdout of the run that trained version 2 gets a pickle beside its files and a
    record naming the cloudpickle materializer (raw SQL): a training that reuses it refuses
    (exit 8) before any step loads it, and the pickle never runs."""
    _, holdout = _output(world.second, PlatformArtifact.HOLDOUT_SET.value)
    marker = world.root / "pickle-ran"
    attack, undo = _planted(holdout, marker)
    zenml_sql(*attack)
    try:
        _refused_training(world, world.file_b, "Refused to read artifact holdout_set")
        assert not marker.exists()
    finally:
        zenml_sql(*undo)
        (Path(holdout.uri) / "artifact.pkl").unlink()


def test_an_input_swapped_while_a_step_loads_it_is_refused(world: World) -> None:
    """While `train_model` loads its training frame, the frame's file holds other rows, put back
    right after (an attacker racing the load): the step refuses (exit 8), nothing registered."""
    from zenml.orchestrators.step_runner import StepRunner

    outputs.check_step_inputs()
    guarded = StepRunner._load_input_artifact
    swapped: list[str] = []

    def racing(step_runner: Any, artifact: Any, data_type: Any) -> Any:
        if artifact.name != "train_set" or swapped:
            return guarded(step_runner, artifact, data_type)
        (path,) = Path(artifact.uri).rglob("*.parquet*")
        original = path.read_bytes()
        frame = pd.read_parquet(path)
        frame[LABEL] = 1 - frame[LABEL]
        frame.to_parquet(path)
        swapped.append(str(path))
        try:
            return guarded(step_runner, artifact, data_type)
        finally:
            path.write_bytes(original)

    racing._mlops_checks_inputs = True  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StepRunner, "_load_input_artifact", racing)
        _refused_training(world, world.file_a, "changed in the artifact store", clean=False)
    assert swapped


def _flipped_copy(artifact: Any, root: Path) -> str:
    import shutil

    copy = root / f"planted-{artifact.id.hex}"
    shutil.copytree(artifact.uri, copy)
    for path in copy.rglob("*.parquet*"):
        frame = pd.read_parquet(path)
        frame[LABEL] = 1 - frame[LABEL]
        frame.to_parquet(path)
    return str(copy)


REPOINT = "UPDATE artifact_version SET uri = :uri WHERE id = :id"


def test_an_own_output_pointed_at_other_files_during_its_run_is_refused(world: World) -> None:
    """While `train_model` loads its inputs, ZenML's record of the run's holdout is pointed at an
    edited copy the run never wrote (raw SQL): the gate refuses to load it (exit 8), nothing is
    registered."""
    from zenml import get_step_context
    from zenml.orchestrators.step_runner import StepRunner

    outputs.check_step_inputs()
    guarded = StepRunner._load_input_artifact
    repointed: list[str] = []

    def racing(step_runner: Any, artifact: Any, data_type: Any) -> Any:
        if artifact.name == "train_set" and not repointed:
            run = get_step_context().pipeline_run
            steps = Client().get_pipeline_run(run.id).steps
            (holdout,) = steps["split_holdout"].outputs[PlatformArtifact.HOLDOUT_SET.value]
            copy = _flipped_copy(holdout, world.root)
            assert zenml_sql((REPOINT, {"uri": copy, "id": holdout.id.hex})) == [1]
            repointed.append(copy)
        return guarded(step_runner, artifact, data_type)

    racing._mlops_checks_inputs = True  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StepRunner, "_load_input_artifact", racing)
        _refused_training(world, world.file_a, "pointed at other files", clean=False)
    assert repointed


def test_a_candidate_pointed_at_the_baseline_s_files_is_refused(world: World) -> None:
    """Inside the gate, before its checks, the candidate model's record is pointed at the
    baseline's own files, which this run wrote with the same materializer: refused (exit 8)."""

    def repoint(run_id: Any) -> None:
        steps = Client().get_pipeline_run(run_id).steps
        (model,) = steps["train_model"].outputs[Artifact.MODEL.value]
        (baseline,) = steps["train_baseline"].outputs[Artifact.BASELINE_MODEL.value]
        assert zenml_sql((REPOINT, {"uri": baseline.uri, "id": model.id.hex})) == [1]

    _refused_training(
        world, world.file_a, "another output's files", clean=False, before_gate=repoint
    )

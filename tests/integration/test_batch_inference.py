"""Real batch-inference runs through the CLI, on one trained state shared by this module.

The module trains once (synthetic encounters with the UCI schema) into its own temporary ZenML,
MLflow and audit state, puts the version in `production`, and scores several files. Tests that
change the state (a second version taking production) only add to it, so their order does not
matter to the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from sqlalchemy import create_engine, text
from zenml import log_metadata
from zenml.client import Client
from zenml.enums import ModelStages

from mlops_cli.commands import training_config
from mlops_cli.errors import ExitCode
from mlops_platform.batch.contract import BatchArtifact
from mlops_platform.batch.results import INCOMPLETE_PREFIX, list_results
from mlops_platform.governance.check import trail_findings
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditTrail
from readmission.core import uci
from readmission.core.cohort import build_cohort
from readmission.core.data import read_encounters
from readmission.core.model import predict_risk
from readmission.core.synthetic import generate_encounters, iter_synthetic_chunks
from readmission.names import MODEL_NAME, Artifact
from readmission.pipelines.batch_inference import RISK_COLUMN
from tests.conftest import isolated
from tests.integration.helpers import (
    assert_one_clean_error,
    copy_configs,
    hold_stage,
    invoke,
    invoke_json,
    run_cli,
    write_synthetic_csv,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("batch_inference")]

PREDICTION_COLUMNS = [
    "encounter_id",
    "patient_nbr",
    "readmission_risk",
    "risk_band",
    "model_name",
    "model_version",
    "model_stage",
    "inference_run_id",
    "scored_at",
]
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_lineage_demo.ipynb"
ELDERLY_BANDS = ("[70-80)", "[80-90)", "[90-100)")
EMERGENCY_ADMISSION = 1


@dataclass(frozen=True)
class State:
    root: Path
    training_file: Path
    training: dict[str, Any]
    sample_file: Path  # a random sample of the training population


@dataclass(frozen=True)
class Scored:
    output: Path
    summary: dict[str, Any]


def set_production(version: str) -> None:
    hold_stage(version, "production")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    root = tmp_path_factory.mktemp("batch-inference")
    with isolated(root / "state") as state:  # restores the environment afterwards
        # Scoring by stage checks the model file with that stage's environment: on this
        # "checkout" every stage records to the one local trail, as the demo sets it up.
        os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{state / 'audit.db'}"
        training_file = write_synthetic_csv(root / "encounters.csv")
        training = invoke_json("train", "--env", "local", "--data", str(training_file))
        set_production(training["model_version"])
        sample = pd.read_csv(training_file, dtype=str, keep_default_na=False).sample(
            3000, random_state=5
        )
        sample_file = root / "sample.csv"
        sample.to_csv(sample_file, index=False)
        yield State(root, training_file, training, sample_file)


@pytest.fixture(scope="module")
def scored(state: State) -> Scored:
    output = state.root / "results"
    summary = invoke_json("infer", "--input", str(state.sample_file), "--output", str(output))
    return Scored(output, summary)


def production_version() -> str:
    return Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION).name


def audit_records(event_type: str) -> list[Any]:
    trail = AuditTrail(load_platform_settings("local").audit.url)
    return trail.records(model_name=MODEL_NAME, event_types=[event_type])


def test_scoring_end_to_end_with_the_production_model(state: State, scored: Scored) -> None:
    summary = scored.summary
    for key in (
        "output_dir",
        "rows_scored",
        "rows_rejected",
        "model_version",
        "model_stage",
        "inference_run_id",
        "drift_detected",
        "drift",
    ):
        assert key in summary
    assert summary["model_stage"] == "production"
    version = Client().get_model_version(MODEL_NAME, summary["model_version"])
    result = Path(summary["output_dir"])
    assert result == scored.output / summary["inference_run_id"]

    predictions = pd.read_parquet(result / "predictions.parquet")
    sample = pd.read_csv(state.sample_file, usecols=[uci.ENCOUNTER_ID])
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert predictions[uci.ENCOUNTER_ID].tolist() == sample[uci.ENCOUNTER_ID].tolist()
    risk = predictions[RISK_COLUMN].to_numpy()
    assert np.all((risk > 0) & (risk < 1))
    threshold = training_config("local", None).evaluation.operating_threshold
    assert (
        predictions["risk_band"].tolist()
        == np.where(risk >= threshold, "high", "standard").tolist()
    )
    assert set(predictions["model_version"]) == {version.name}
    assert set(predictions["inference_run_id"]) == {summary["inference_run_id"]}

    manifest = json.loads((result / "manifest.json").read_text())
    history = version.get_artifact(Artifact.PATIENT_HISTORY)
    assert manifest["rows"]["read"] == manifest["rows"]["scored"] == len(sample)
    assert manifest["input"]["sha256"] == hashlib.sha256(state.sample_file.read_bytes()).hexdigest()
    assert manifest["model"] == {
        "name": MODEL_NAME,
        "version": version.name,
        "stage": "production",
        "artifact": "readmission_model",
        # Which version scored, beyond its number: its ZenML id and signed model file.
        "version_identity": {
            "model_version_id": str(version.id),
            "model_sha256": version.run_metadata["registration"]["model_file"]["sha256"],
        },
        "context_artifact": {
            "name": Artifact.PATIENT_HISTORY,
            "version": str(history.version),
            "id": str(history.id),
        },
    }
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((result / name).read_bytes()).hexdigest() == digest
    assert manifest["timings"]["started_at"] <= manifest["timings"]["finished_at"]

    pointer = version.get_artifact(BatchArtifact.PREDICTIONS).load()
    assert pointer["result_dir"] == str(result)
    assert pointer["sha256"] == manifest["files"]["predictions.parquet"]
    assert version.get_artifact(BatchArtifact.MANIFEST).load() == manifest
    assert "Drift report" in version.get_artifact(BatchArtifact.DRIFT_REPORT).load()
    latest = version.run_metadata["latest_batch_inference"]
    assert latest["inference_run_id"] == summary["inference_run_id"]
    event = [e for e in audit_records("batch_inference") if e.details["output_dir"] == str(result)]
    assert len(event) == 1
    assert event[0].details["rows_scored"] == len(sample)
    assert event[0].model_version == version.name


def test_a_threshold_changed_in_the_training_config_does_not_change_who_is_flagged(
    state: State, scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operating threshold decides which patients production flags. Raised in the training
    config (data science's file) to 0.99, it would flag nobody without any gate or approval;
    the version is scored at the threshold its gate judged, from its verified training record."""
    import yaml

    from mlops_platform.config import config_dir

    judged = training_config("local", None).evaluation.operating_threshold
    training = yaml.safe_load((config_dir() / "local" / "training.yaml").read_text("utf-8"))
    raised = {**training, "evaluation": {**(training.get("evaluation") or {})}}
    raised["evaluation"]["operating_threshold"] = 0.99
    configs = copy_configs(state.root / "raised-threshold", {"local/training.yaml": raised})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    assert training_config("local", None).evaluation.operating_threshold == 0.99

    summary = invoke_json(
        "infer", "--input", str(state.sample_file), "--output", str(state.root / "raised")
    )

    result = Path(summary["output_dir"])
    manifest = json.loads((result / "manifest.json").read_text())
    assert manifest["contract"]["operating_threshold"] == judged != 0.99
    flagged = pd.read_parquet(result / "predictions.parquet")["risk_band"]
    before = pd.read_parquet(Path(scored.summary["output_dir"]) / "predictions.parquet")
    assert (flagged == "high").sum() > 0
    assert flagged.tolist() == before["risk_band"].tolist()


def test_lineage_says_the_encounter_was_scored_in_other_results(
    state: State, tmp_path: Path
) -> None:
    """Day-one review: lineage traced the newest scoring of an encounter and said nothing of
    the others (outcome monitoring had judged another one)."""
    output = tmp_path / "twice"
    first = invoke_json("infer", "--input", str(state.sample_file), "--output", str(output))
    second = invoke_json("infer", "--input", str(state.sample_file), "--output", str(output))
    key = str(pd.read_parquet(Path(first["output_dir"]) / "predictions.parquet").iloc[3, 0])
    chain = invoke_json("lineage", "--predictions", str(output), "--encounter-id", key)
    assert chain["result_dir"] == second["output_dir"]  # the newest
    (note,) = [n for n in chain["notes"] if "also scored" in n]
    assert "1 other result(s)" in note and Path(first["output_dir"]).name in note
    alone = invoke_json("lineage", "--predictions", first["output_dir"], "--encounter-id", key)
    assert not [n for n in alone["notes"] if "also scored" in n]


def test_lineage_takes_the_newest_result_from_the_trail_and_refuses_edited_or_stray_ones(
    state: State, tmp_path: Path
) -> None:
    """Insider review: "the newest" result was the one whose manifest.json on disk said the
    latest `finished_at` (set to 2099, an older result was traced as the newest), the drift
    report was never checked, and a stray folder beside the results crashed lineage with a
    KeyError or JSONDecodeError traceback (exit 1)."""
    output = tmp_path / "ordered"
    first = invoke_json("infer", "--input", str(state.sample_file), "--output", str(output))
    second = invoke_json("infer", "--input", str(state.sample_file), "--output", str(output))
    older, newer = Path(first["output_dir"]), Path(second["output_dir"])
    key = str(pd.read_parquet(older / "predictions.parquet").iloc[5, 0])
    trace = ("lineage", "--predictions", str(output), "--encounter-id", key)
    recorded = {r.details["inference_run_id"]: r.seq for r in audit_records("batch_inference")}
    assert recorded[second["inference_run_id"]] > recorded[first["inference_run_id"]]

    # The attack: the older result's finishing time moved past the newer one's, on disk.
    manifest = older / "manifest.json"
    original = manifest.read_bytes()
    edited = json.loads(original)
    edited["timings"]["finished_at"] = "2099-01-01T00:00:00+00:00"
    manifest.write_text(json.dumps(edited, indent=2, sort_keys=True))
    try:
        forged = invoke(*trace)
    finally:
        manifest.write_bytes(original)
    assert forged.exit_code == ExitCode.AUDIT_BROKEN, forged.output
    assert "Traceback" not in forged.output
    message = forged.stderr.replace("\n", "")
    assert str(manifest) in message and "timings" in message and "2099" in message

    # The attack: the newest result's drift report rewritten.
    report = newer / "drift_report.html"
    kept = report.read_bytes()
    report.write_bytes(kept.replace(b"</body>", b"<p>No drift.</p></body>"))
    try:
        forged = invoke(*trace)
    finally:
        report.write_bytes(kept)
    assert forged.exit_code == ExitCode.AUDIT_BROKEN, forged.output
    assert str(report) in forged.stderr.replace("\n", "") and "changed after scoring" in (
        forged.stderr.replace("\n", " ")
    )

    chain = invoke_json(*trace)  # restored: the run the trail recorded last is the newest
    assert chain["result_dir"] == str(newer)
    (note,) = [n for n in chain["notes"] if "also scored" in n]
    assert older.name in note and "batch_inference records" in note
    assert not [n for n in chain["notes"] if "later scoring" in n]

    # The attack (review of the ordering): the newest result hidden (a dot folder is no
    # result): the older one is traced, and the trail's later scoring is named as missing.
    hidden = output / f".{newer.name}"
    newer.rename(hidden)
    try:
        older_chain = invoke_json(*trace)
    finally:
        hidden.rename(newer)
    assert older_chain["result_dir"] == str(older)
    (missing,) = [n for n in older_chain["notes"] if "later scoring" in n]
    assert newer.name in missing and "moved, hidden or deleted" in missing

    # A folder made by hand beside the results: one message naming it, exit 3.
    stray = output / "00000000-0000-0000-0000-000000000000"
    stray.mkdir()
    (stray / "predictions.parquet").touch()
    for content, named in (("{}\n", "no 'inference_run_id'"), ("not json\n", "not readable")):
        (stray / "manifest.json").write_text(content, encoding="utf-8")
        refused = invoke(*trace)
        assert refused.exit_code == ExitCode.BAD_INPUT, refused.output
        assert "Traceback" not in refused.output
        assert str(stray) in refused.stderr.replace("\n", "") and named in refused.stderr
    # One that copies a real result's manifest but not its predictions claims to be that
    # result and is not: exit 8, naming it.
    (stray / "manifest.json").write_bytes(original)
    refused = invoke(*trace)
    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert str(stray) in refused.stderr.replace("\n", "")


def test_lineage_traces_one_prediction_to_training_data_and_code(
    state: State, scored: Scored, tmp_path: Path
) -> None:
    result = Path(scored.summary["output_dir"])
    row = pd.read_parquet(result / "predictions.parquet").iloc[17]

    chain = invoke_json(
        "lineage", "--predictions", str(scored.output), "--encounter-id", str(row.encounter_id)
    )

    assert chain["prediction"][uci.ENCOUNTER_ID] == row.encounter_id
    assert chain["prediction"][RISK_COLUMN] == pytest.approx(row.readmission_risk)
    assert chain["result_dir"] == str(result)
    assert chain["inference_run"]["id"] == scored.summary["inference_run_id"]
    assert chain["inference_run"]["input"]["path"] == str(state.sample_file)
    assert chain["model_version"]["version"] == scored.summary["model_version"]
    assert chain["model_version"]["stage_at_scoring"] == "production"
    history = Client().get_model_version(MODEL_NAME, scored.summary["model_version"])
    context = chain["model_version"]["context_artifact"]
    assert context["id"] == str(history.get_artifact(Artifact.PATIENT_HISTORY).id)
    registration = (
        Client().get_model_version(MODEL_NAME, scored.summary["model_version"]).run_metadata
    )["registration"]
    assert chain["training_run"]["id"] == registration["pipeline_run_id"]
    shown = {k: v for k, v in chain["training_data"].items() if k != "unverified"}
    assert shown == registration["data"]
    assert chain["training_data"]["unverified"] == ["location", "patients", "rows"]
    assert chain["code"]["git_sha"] == registration["code"]["git_sha"]
    assert not chain["notes"]

    # The attack: ZenML's registration metadata rewritten (any ZenML user can) to name another
    # data file, commit and training run. Lineage shows the verified training record's, says
    # that the metadata disagrees, and `mlops check` names each edit.
    version = scored.summary["model_version"]
    forged_registration = {
        **registration,
        "data": {**registration["data"], "sha256": "a" * 64, "location": "/approved/clean.csv"},
        "code": {**registration["code"], "git_sha": "1" * 40},
        "pipeline_run_id": chain["inference_run"]["id"],  # another run of the store
    }
    log_metadata(
        {"registration": forged_registration}, model_name=MODEL_NAME, model_version=version
    )
    try:
        edited = invoke_json(
            "lineage", "--predictions", str(scored.output), "--encounter-id", str(row.encounter_id)
        )
        checked = {f.rule for f in trail_findings(MODEL_NAME)}
    finally:
        log_metadata({"registration": registration}, model_name=MODEL_NAME, model_version=version)
    assert edited["training_data"]["sha256"] == registration["data"]["sha256"]
    assert "location" not in edited["training_data"]  # the forged file is not shown as evidence
    assert edited["code"]["git_sha"] == registration["code"]["git_sha"]
    assert edited["training_run"]["id"] == registration["pipeline_run_id"]
    disagreeing = " ".join(edited["notes"])
    for forged in ("a" * 64, "1" * 40, chain["inference_run"]["id"]):
        assert forged in disagreeing
    assert {"data-vs-trail", "code-vs-trail", "run-vs-trail"} <= checked
    scoring = chain["inference_run"]["scoring_code"]["git_sha"]
    shown = invoke(
        "lineage", "--predictions", str(scored.output), "--encounter-id", str(row.encounter_id)
    )
    assert f"scoring code: git {scoring}" in shown.stdout.replace("\n", ""), shown.output
    events = [e["event_type"] for e in chain["governance"]]
    assert "training_completed" in events

    unknown = invoke(
        "lineage", "--predictions", str(scored.output), "--encounter-id", "999999999999"
    )
    assert unknown.exit_code == ExitCode.NOT_FOUND, unknown.output
    assert "999999999999" in unknown.stderr

    # The attack: one governance record edited with raw SQL. Lineage shows only verified records.
    engine = create_engine(load_platform_settings("local").audit.url)
    seq_actor = "SELECT seq, actor FROM audit_events WHERE event_type = 'training_completed'"
    edit = text("UPDATE audit_events SET actor = :actor WHERE seq = :seq")
    try:
        with engine.begin() as connection:
            seq, actor = connection.execute(text(seq_actor + " ORDER BY seq DESC")).first()
            connection.execute(edit, {"actor": "mallory", "seq": seq})
        forged = invoke(
            "lineage", "--predictions", str(scored.output), "--encounter-id", str(row.encounter_id)
        )
        assert forged.exit_code == ExitCode.AUDIT_BROKEN, forged.output
        assert "mallory" not in forged.stdout
    finally:
        with engine.begin() as connection:
            connection.execute(edit, {"actor": actor, "seq": seq})
        engine.dispose()

    # A copy of the result whose manifest now names another model version, or whose scores were
    # edited: lineage refuses both (exit 8) rather than tracing what the files claim.
    for name, forge in (("manifest", "model"), ("scores", "risk")):
        copy = tmp_path / name / result.name
        shutil.copytree(result, copy)
        if forge == "model":
            manifest = json.loads((copy / "manifest.json").read_text())
            manifest["model"]["version"] = "1" if manifest["model"]["version"] != "1" else "2"
            (copy / "manifest.json").write_text(json.dumps(manifest))
            expected = "manifest was edited after scoring"
        else:
            table = pd.read_parquet(copy / "predictions.parquet")
            table[RISK_COLUMN] = 1.0 - table[RISK_COLUMN]
            table.to_parquet(copy / "predictions.parquet", index=False)
            expected = "changed after scoring"
        forged_trace = invoke(
            "lineage", "--predictions", str(copy), "--encounter-id", str(row.encounter_id)
        )
        assert forged_trace.exit_code == ExitCode.AUDIT_BROKEN, forged_trace.output
        assert expected in forged_trace.stderr


def test_returning_patients_keep_the_history_known_at_training(
    state: State, scored: Scored
) -> None:
    version = Client().get_model_version(MODEL_NAME, scored.summary["model_version"])
    raw, _ = read_encounters(state.training_file)
    cohort = build_cohort(raw)
    history = version.get_artifact(Artifact.PATIENT_HISTORY).load()
    assert len(history) == len(cohort)
    # The oracle: the model on the whole cohort, where each encounter's earlier ones are in the
    # frame, as in training. Patients with an encounter outside the cohort are left out: the
    # scored file holds that encounter, the cohort does not.
    model = version.get_model_artifact(Artifact.MODEL).load()
    expected = pd.Series(predict_risk(model, cohort), index=cohort[uci.ENCOUNTER_ID])
    outside = raw.loc[~raw[uci.ENCOUNTER_ID].isin(cohort[uci.ENCOUNTER_ID]), uci.PATIENT_ID]
    predictions = pd.read_parquet(Path(scored.summary["output_dir"]) / "predictions.parquet")
    compared = predictions[
        predictions[uci.ENCOUNTER_ID].isin(expected.index)
        & ~predictions[uci.PATIENT_ID].isin(outside)
    ]
    earlier = history.merge(compared[[uci.PATIENT_ID, uci.ENCOUNTER_ID]], on=uci.PATIENT_ID)
    returning = earlier[earlier[f"{uci.ENCOUNTER_ID}_x"] < earlier[f"{uci.ENCOUNTER_ID}_y"]]
    sampled = set(compared[uci.ENCOUNTER_ID])
    history_outside_the_file = returning[~returning[f"{uci.ENCOUNTER_ID}_x"].isin(sampled)]

    np.testing.assert_allclose(
        compared[RISK_COLUMN].to_numpy(),
        expected.loc[compared[uci.ENCOUNTER_ID]].to_numpy(),
        rtol=0,
        atol=1e-12,
    )
    assert len(compared) > 0.9 * len(predictions)
    assert history_outside_the_file[f"{uci.ENCOUNTER_ID}_y"].nunique() > 0.1 * len(compared)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_drift_flags_a_shifted_batch_and_passes_a_random_one(state: State, scored: Scored) -> None:
    population = generate_encounters(30000, seed=41)
    shifted = population[
        (population["admission_type_id"] == EMERGENCY_ADMISSION)
        & population["age"].isin(ELDERLY_BANDS)
    ]
    path = write_csv(state.root / "elderly_emergencies.csv", shifted)

    result = invoke("infer", "--input", str(path), "--output", str(state.root / "drift"), "--json")

    assert result.exit_code == 0, result.output
    flagged = json.loads(result.stdout)  # the alert goes to stderr: stdout is the JSON only

    assert scored.summary["drift_detected"] is False
    assert flagged["drift_detected"] is True
    assert flagged["rows_scored"] == len(shifted)
    drifted = flagged["drift"]
    assert drifted["drift_psi_age"] > scored.summary["drift"]["drift_psi_age"]
    assert drifted["drift_psi_admission_type_id"] > drifted["drift_psi_gender"]
    events = audit_records("drift_detected")
    assert [e.details["inference_run_id"] for e in events] == [flagged["inference_run_id"]]
    report = Path(flagged["output_dir"]) / "drift_report.html"
    assert "admission_type_id" in report.read_text()


BAD_INPUTS = {
    "missing-column": (lambda f: f.drop(columns=["num_medications"]), "num_medications"),
    "unknown-category": (
        lambda f: f.assign(race=f["race"].where(f.index != 40, "Martian")),
        "race",
    ),
    "negative-count": (
        lambda f: f.assign(number_emergency=f["number_emergency"].where(f.index != 7, -2)),
        "number_emergency",
    ),
    "wrong-type": (
        lambda f: f.astype({"num_procedures": "str"}).assign(
            num_procedures=lambda g: g["num_procedures"].where(g.index != 3, "three")
        ),
        "num_procedures",
    ),
    "duplicate-id": (
        lambda f: f.assign(
            encounter_id=f["encounter_id"].where(f.index != 650, f["encounter_id"].iat[2])
        ),
        "encounter_id",
    ),
}


@pytest.mark.parametrize("kind", [*BAD_INPUTS, "empty-file", "not-utf8", "header-only"])
def test_bad_input_stops_the_run_and_writes_nothing(state: State, kind: str) -> None:
    frame = generate_encounters(600, seed=13)
    path = state.root / f"{kind}.csv"
    if kind in BAD_INPUTS:
        change, expected = BAD_INPUTS[kind]
        write_csv(path, change(frame))
    else:
        text = frame.to_csv(index=False).encode()
        path.write_bytes(
            {
                "empty-file": b"",
                "not-utf8": text.replace(b"Caucasian", b"Cauc\xe4sian", 1),
                "header-only": text.split(b"\n", 1)[0] + b"\n",
            }[kind]
        )
        expected = {"empty-file": "empty", "not-utf8": "UTF-8", "header-only": "no data rows"}[kind]
    output = state.root / f"results-{kind}"

    result = invoke("infer", "--input", str(path), "--output", str(output), "--chunk-rows", "500")

    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert expected in result.stderr
    assert not output.exists()


def test_no_model_in_the_stage_says_how_to_promote_and_writes_nothing(state: State) -> None:
    output = state.root / "results-staging"

    result = invoke(
        "infer", "--input", str(state.sample_file), "--output", str(output), "--stage", "staging"
    )

    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "mlops promote --version N --to staging" in result.stderr
    assert not output.exists()


def test_quarantine_scores_the_valid_rows_and_sets_the_rest_aside(state: State) -> None:
    frame = generate_encounters(600, seed=17)
    frame.loc[[5, 300], "gender"] = "Robot"
    frame.loc[480, "num_lab_procedures"] = 999
    path = write_csv(state.root / "some_bad_rows.csv", frame)

    summary = invoke_json(
        "infer", "--input", str(path), "--output", str(state.root / "quarantined"), "--quarantine"
    )

    assert summary["rows_rejected"] == 3
    assert summary["rows_scored"] == len(frame) - 3
    assert summary["rejected_by_rule"] == {
        "gender: allowed_values": 2,
        "num_lab_procedures: in_range": 1,
    }
    quarantine = pd.read_parquet(summary["quarantine_file"])
    assert quarantine["input_row"].tolist() == [6, 301, 481]
    assert (
        quarantine[uci.ENCOUNTER_ID].tolist()
        == frame.loc[[5, 300, 480], uci.ENCOUNTER_ID].astype(str).tolist()
    )
    predictions = pd.read_parquet(Path(summary["output_dir"]) / "predictions.parquet")
    assert not set(predictions[uci.ENCOUNTER_ID]) & set(frame.loc[[5, 300, 480], uci.ENCOUNTER_ID])
    manifest = json.loads((Path(summary["output_dir"]) / "manifest.json").read_text())
    assert manifest["rows"]["rejected"] == 3
    assert "quarantine.parquet" in manifest["files"]


def write_large_csv(path: Path, rows: int) -> Path:
    writer = None
    for chunk in iter_synthetic_chunks(rows, 100_000, seed=3):
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if writer is None:
            writer = pa_csv.CSVWriter(
                path, table.schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def test_a_killed_run_leaves_no_complete_looking_result(state: State) -> None:
    path = write_large_csv(state.root / "large.csv", 300_000)
    output = state.root / "results-killed"
    command = [
        str(Path(sys.executable).parent / "mlops"),
        "infer",
        "--input",
        str(path),
        "--output",
        str(output),
        "--chunk-rows",
        "2000",
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while not list(output.glob(f"{INCOMPLETE_PREFIX}*/predictions.parquet")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    assert process.returncode == -signal.SIGKILL
    assert list_results(output) == []
    assert all(p.name.startswith(INCOMPLETE_PREFIX) for p in output.iterdir())
    lineage = invoke("lineage", "--predictions", str(output), "--encounter-id", "12000")
    assert lineage.exit_code == ExitCode.NOT_FOUND


def test_a_new_production_version_scores_the_same_file_without_changes(
    state: State, scored: Scored
) -> None:
    before = scored.summary["model_version"]
    # The same encounters as the first version: the challenger then equals its champion, so the
    # champion/challenger gate (tested in test_gates.py) cannot turn on chance differences here.
    data = write_synthetic_csv(state.root / "encounters-2.csv")
    second = invoke_json("train", "--env", "local", "--data", str(data))
    set_production(second["model_version"])

    again = invoke_json("infer", "--input", str(state.sample_file), "--output", str(scored.output))

    assert production_version() == second["model_version"] != before
    assert again["model_version"] == second["model_version"]
    assert again["inference_run_id"] != scored.summary["inference_run_id"]
    predictions = pd.read_parquet(Path(again["output_dir"]) / "predictions.parquet")
    assert set(predictions["model_version"]) == {second["model_version"]}
    first = json.loads((Path(scored.summary["output_dir"]) / "manifest.json").read_text())
    assert first["model"]["version"] == before
    assert len(list_results(scored.output)) == 2


def test_the_lineage_notebook_runs_headless(
    scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAGE_PREDICTIONS_DIR", str(scored.output))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")

    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()

    text = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "completed" in text


def _frame_text(change: Any = None, **to_csv: Any) -> bytes:
    frame = generate_encounters(600, seed=13)
    return (change(frame) if change else frame).to_csv(index=False, **to_csv).encode()


def _with_field(size: int) -> bytes:
    return _frame_text(lambda f: f.assign(diag_1=f["diag_1"].where(f.index != 10, "x" * size)))


# id -> (file name, file bytes or None for the clean file, extra arguments, text the error names)
BAD_SCORING_CASES: dict[str, tuple[str, Any, tuple[str, ...], str]] = {
    "empty-file": ("in.csv", lambda: b"", (), "empty"),
    "missing-column": (
        "in.csv",
        lambda: _frame_text(lambda f: f.drop(columns=["num_medications"])),
        (),
        "num_medications",
    ),
    "unknown-category": (
        "in.csv",
        lambda: _frame_text(lambda f: f.assign(race=f["race"].where(f.index != 40, "Martian"))),
        (),
        "race",
    ),
    "negative-count": (
        "in.csv",
        lambda: _frame_text(
            lambda f: f.assign(number_emergency=f["number_emergency"].where(f.index != 7, -2))
        ),
        (),
        "number_emergency",
    ),
    "text-in-number-column": (
        "in.csv",
        lambda: _frame_text(
            lambda f: f.astype({"num_procedures": "str"}).assign(
                num_procedures=lambda g: g["num_procedures"].where(g.index != 3, "three")
            )
        ),
        (),
        "num_procedures",
    ),
    "duplicate-encounter": (
        "in.csv",
        lambda: _frame_text(
            lambda f: f.assign(
                encounter_id=f["encounter_id"].where(f.index != 50, f["encounter_id"].iat[2])
            )
        ),
        (),
        "encounter_id",
    ),
    "all-null-column": (
        "in.csv",
        lambda: _frame_text(lambda f: f.assign(diabetesMed="?")),
        (),
        "diabetesMed",
    ),
    "age-out-of-range": (
        "in.csv",
        lambda: _frame_text(lambda f: f.assign(age=f["age"].where(f.index != 5, "[100-110)"))),
        (),
        "age",
    ),
    "semicolon-delimited": ("in.csv", lambda: _frame_text(sep=";"), (), "missing"),
    "truncated-rows": ("in.csv", lambda: _frame_text()[:-40], (), "columns"),
    "binary-garbage": (
        "in.csv",
        lambda: np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        (),
        "UTF-8",
    ),
    "csv-gz-not-gzip": ("in.csv.gz", lambda: _frame_text(), (), "not gzip"),
    "field-over-csv-limit": ("in.csv", lambda: _with_field(200_000), (), "131,072 characters"),
    "field-of-50-mb": ("in.csv", lambda: _with_field(50 << 20), (), "1,048,576 bytes"),
    "shard-3-of-2": ("in.csv", None, ("--shard", "3/2"), "--shard 3/2"),
    "shard-0-of-0": ("in.csv", None, ("--shard", "0/0"), "--shard 0/0"),
    "output-inside-state": ("in.csv", None, ("--output", "{state}/zenml/results"), "state"),
    "output-is-a-file": ("in.csv", None, ("--output", "{root}/taken.txt"), "existing file"),
}


def model_versions() -> list[str]:
    return sorted(v.name for v in Client().list_model_versions(MODEL_NAME, size=100))


@pytest.mark.parametrize("case", list(BAD_SCORING_CASES))
def test_every_bad_scoring_input_is_one_message_before_any_pipeline(
    state: State, tmp_path: Path, case: str
) -> None:
    name, content, extra, named = BAD_SCORING_CASES[case]
    path = tmp_path / name
    path.write_bytes(content() if content else state.sample_file.read_bytes())
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    places = {"state": str(state.root / "state"), "root": str(tmp_path)}
    args = [arg.format(**places) for arg in extra]
    output = Path(args[args.index("--output") + 1]) if "--output" in args else tmp_path / "out"
    if "--output" not in args:
        args += ["--output", str(output)]
    before = model_versions()

    run = run_cli(state.root / "state", "infer", "--input", str(path), *args)

    assert_one_clean_error(run, ExitCode.BAD_INPUT, named)
    assert not run.imported_zenml, "refused only after ZenML was imported"
    if output == taken:
        assert taken.read_text() == "keep me"
    else:
        assert not output.exists()
    assert model_versions() == before


def test_a_bad_row_past_the_first_chunk_stops_the_pipeline_with_one_message(
    state: State, tmp_path: Path
) -> None:
    frame = pd.read_csv(state.training_file, dtype=str, keep_default_na=False).head(8000)
    frame.loc[7000, "encounter_id"] = frame.loc[2, "encounter_id"]  # past the pre-flight rows
    path = write_csv(tmp_path / "late-duplicate.csv", frame)
    output = tmp_path / "out"
    before = model_versions()

    run = run_cli(state.root / "state", "infer", "--input", str(path), "--output", str(output))

    assert_one_clean_error(run, ExitCode.BAD_INPUT, "encounter_id")
    assert (
        run.imported_zenml
    )  # this one is found by the pipeline, whose report stays off the console
    assert "Failed to run step" not in run.stdout + run.stderr
    assert not output.exists()
    assert model_versions() == before

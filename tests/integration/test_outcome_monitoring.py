"""Outcome monitoring end to end: train, put the version in production, score the held-out
patients, feed their true outcomes back with `mlops monitor outcomes`, and judge.

The module trains once into its own state: on the UCI development file when READMISSION_DATA
points at it, else on synthetic encounters with the UCI schema. The held-out patients are the
test split of that training run (patients the model never saw); their raw rows are scored by the
real batch-inference pipeline, and their true `readmitted` codes are the labels.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from zenml.client import Client

from mlops_cli.errors import ExitCode
from mlops_platform.batch.results import PREDICTIONS_FILE, list_results
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.monitoring.verdict import Check, load_outcome_thresholds, standing_checks
from mlops_platform.trust.audit import AuditEventType, AuditTrail
from mlops_platform.workspace import state_dir
from readmission.core.uci import ENCOUNTER_ID, PATIENT_ID, TARGET_COLUMN, TARGET_POSITIVE
from readmission.names import MODEL_NAME, Artifact
from tests.conftest import DATA_ENV, isolated
from tests.integration.helpers import hold_stage, invoke, invoke_json, tamper, write_synthetic_csv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("outcome_monitoring")]

LABEL_COLUMNS = [ENCOUNTER_ID, TARGET_COLUMN, "race", "gender", "age"]
UNLABELLED = 50  # held-out encounters whose outcome is not known yet
UNKNOWN_IDS = (10**12, 10**12 + 1, 10**12 + 2)  # outcomes of encounters never scored


@dataclass(frozen=True)
class Served:
    root: Path
    results: Path
    held_out: pd.DataFrame  # raw rows of the held-out encounters, as scored
    version: str


def _training_file(root: Path) -> Path:
    value = os.environ.get(DATA_ENV)
    if value and Path(value).is_file():
        return Path(value)
    return write_synthetic_csv(root / "encounters.csv")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("outcomes")
    with isolated(root / "state"):
        # Scoring by stage checks the model file with that stage's environment; on this
        # "checkout" every stage records to the one local trail, as the demo sets it up.
        os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{root / 'state' / 'audit.db'}"
        data = _training_file(root)
        training = invoke_json("train", "--env", "local", "--data", str(data))
        version = training["model_version"]
        hold_stage(str(version), "production")
        model_version = Client().get_model_version(MODEL_NAME, version)
        held_out_ids = model_version.get_artifact(Artifact.TEST_SET).load()[ENCOUNTER_ID]
        raw = pd.read_csv(data, dtype=str, keep_default_na=False)
        raw[ENCOUNTER_ID] = raw[ENCOUNTER_ID].astype("int64")
        raw[PATIENT_ID] = raw[PATIENT_ID].astype("int64")
        held_out = raw[raw[ENCOUNTER_ID].isin(set(held_out_ids))].reset_index(drop=True)
        scoring_file = root / "held_out.csv"
        held_out.to_csv(scoring_file, index=False)
        results = root / "results"
        invoke_json("infer", "--input", str(scoring_file), "--output", str(results))
        yield Served(root, results, held_out, version)


def write_labels(served: Served, name: str, labels: pd.DataFrame) -> Path:
    path = served.root / name
    labels.to_csv(path, index=False)
    return path


def true_labels(served: Served) -> pd.DataFrame:
    labels = served.held_out[LABEL_COLUMNS].iloc[UNLABELLED:].copy()
    unknown = labels.iloc[: len(UNKNOWN_IDS)].copy()
    unknown[ENCOUNTER_ID] = UNKNOWN_IDS
    return pd.concat([labels, unknown], ignore_index=True)


def outcome_events() -> list[Any]:
    trail = AuditTrail(load_platform_settings("local").audit.url)
    try:
        return trail.records(model_name=MODEL_NAME, event_types=[AuditEventType.OUTCOMES_CHECKED])
    finally:
        trail.close()


def only_version(summary: dict[str, Any]) -> dict[str, Any]:
    (version,) = summary["versions"]
    return version


def monitor(labels: Path, served: Served, *extra: str) -> dict[str, Any]:
    return invoke_json(
        "monitor", "outcomes", "--labels", str(labels), "--predictions", str(served.results), *extra
    )


def test_true_outcomes_give_scikit_learns_roc_auc_and_ok(served: Served) -> None:
    labels = true_labels(served)
    summary = monitor(write_labels(served, "true.csv", labels), served)
    version = only_version(summary)
    (result,) = list_results(served.results)
    scored = pd.read_parquet(result / PREDICTIONS_FILE)
    joined = scored.merge(labels, on=ENCOUNTER_ID, how="inner")
    expected = roc_auc_score(joined[TARGET_COLUMN] == TARGET_POSITIVE, joined["readmission_risk"])
    assert version["roc_auc"] == pytest.approx(expected, abs=1e-9)
    assert version["verdict"] == "ok", version["failed_checks"]
    assert version["failed_checks"] == []
    assert version["model_version"] == served.version
    assert version["n_labelled"] == len(joined) == len(served.held_out) - UNLABELLED
    assert version["n_pending"] == UNLABELLED
    assert summary["labels"]["n_unknown"] == len(UNKNOWN_IDS)
    low, high = version["roc_auc_ci"]
    assert low < version["roc_auc"] < high
    for key in ("brier", "calibration_slope"):
        assert isinstance(version[key], float)
    assert {row["feature"] for row in version["subgroups"]} == {"race", "gender", "age_band"}
    assert Path(summary["report"]).read_text(encoding="utf-8").count("<h3>Subgroups") == 1
    (event,) = [
        e for e in outcome_events() if e.details["labels_sha256"] == summary["labels"]["sha256"]
    ]
    assert event.model_version == served.version and event.details["verdict"] == "ok"
    metadata = Client().get_model_version(MODEL_NAME, served.version).run_metadata
    assert metadata["latest_outcome_check"]["verdict"] == "ok"


def test_validation_values_come_from_the_gate_record_not_zenml_metadata(served: Served) -> None:
    """The drop check compares realised ROC-AUC with the version's validation ROC-AUC. It read
    ZenML's `gate_metrics` and `subgroups`, which anyone with write access to ZenML can edit:
    lowered, a real drop looks like none. They come from the version's verified gate record now;
    the edited metadata changes nothing. It is put back afterwards."""
    from zenml import log_metadata

    from mlops_platform.governance.promotion import recorded_gate_metrics

    trail = AuditTrail(load_platform_settings("local").audit.url)
    try:
        gates = trail.records(
            model_name=MODEL_NAME,
            event_types=[AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED],
        )
    finally:
        trail.close()
    gate = max((g for g in gates if g.model_version == served.version), key=lambda g: g.seq)
    recorded = recorded_gate_metrics(gate.details)
    metadata = Client().get_model_version(MODEL_NAME, served.version).run_metadata
    kept = {key: metadata[key] for key in ("gate_metrics", "subgroups")}
    log_metadata(
        metadata={"gate_metrics": {**kept["gate_metrics"], "roc_auc": 0.0}, "subgroups": []},
        model_name=MODEL_NAME,
        model_version=served.version,
    )
    try:
        version = only_version(
            monitor(write_labels(served, "true-edited.csv", true_labels(served)), served)
        )
    finally:
        log_metadata(metadata=kept, model_name=MODEL_NAME, model_version=served.version)
    assert version["validation"]["roc_auc"] == recorded["roc_auc"] > 0.0
    assert any(row.get("validation_roc_auc") is not None for row in version["subgroups"] or [])


def smallest_judged_race(labels: pd.DataFrame) -> str:
    """The smallest race group the subgroup check judges (enough rows and outcomes of each
    kind). On the UCI file that is a minority; on the small synthetic holdout it may be the only
    group big enough."""
    limits = load_outcome_thresholds("local")
    positive = labels[TARGET_COLUMN] == TARGET_POSITIVE
    counts = labels.assign(positive=positive).groupby("race")["positive"].agg(["size", "sum"])
    judged = counts[
        (counts["size"] >= limits.subgroup_min_size)
        & (counts["sum"] >= limits.subgroup_min_events)
        & (counts["size"] - counts["sum"] >= limits.subgroup_min_events)
    ].sort_values("size")
    assert len(judged) >= 1, f"no race group is big enough to be judged: {counts}"
    return str(judged.index[0])


@pytest.mark.parametrize("wrong", ["subgroup", "half_of_patients"])
def test_wrong_outcomes_are_degraded_with_the_failing_check(served: Served, wrong: str) -> None:
    labels = served.held_out[[*LABEL_COLUMNS, PATIENT_ID]].copy()
    if wrong == "subgroup":
        flip = labels["race"] == smallest_judged_race(labels)
        expected = Check.SUBGROUP_ROC_AUC_FLOOR
    else:
        patients = labels[PATIENT_ID].unique()
        chosen = np.random.default_rng(0).choice(patients, len(patients) // 2, replace=False)
        flip = labels[PATIENT_ID].isin(chosen)
        expected = Check.ROC_AUC_FLOOR
    positive = labels[TARGET_COLUMN] == TARGET_POSITIVE
    labels.loc[flip & positive, TARGET_COLUMN] = "NO"
    labels.loc[flip & ~positive, TARGET_COLUMN] = TARGET_POSITIVE
    summary = monitor(
        write_labels(served, f"wrong-{wrong}.csv", labels.drop(columns=PATIENT_ID)), served
    )
    version = only_version(summary)
    assert summary["verdict"] == version["verdict"] == "degraded"
    assert expected in {check["name"] for check in version["failed_checks"]}
    assert version["recommendation"].startswith(f"Retrain {MODEL_NAME}")
    assert any(e.details["verdict"] == "degraded" for e in outcome_events())
    if wrong == "subgroup":
        return
    # A later `ok` on other labels (the true ones) does not clear the degraded verdict.
    later = only_version(
        monitor(write_labels(served, "true-again.csv", true_labels(served)), served)
    )
    assert later["verdict"] == "ok"
    metadata = Client().get_model_version(MODEL_NAME, served.version).run_metadata
    assert metadata["latest_outcome_check"]["verdict"] == "ok"
    kept = metadata["degraded_outcome_check"]
    assert (kept["verdict"], kept["labels_sha256"]) == ("degraded", summary["labels"]["sha256"])
    standing = standing_checks(outcome_events())[served.version]
    assert standing.standing.details["verdict"] == "degraded" and standing.overridden


def test_ten_labelled_rows_are_not_assessed(served: Served) -> None:
    labels = served.held_out[LABEL_COLUMNS].head(10)
    version = only_version(monitor(write_labels(served, "ten.csv", labels), served))
    assert version["verdict"] == "not assessed"
    assert version["n_labelled"] == 10
    assert version["n_pending"] == len(served.held_out) - 10
    assert [c["name"] for c in version["failed_checks"]] == [Check.MIN_LABELLED]


def test_a_bad_labels_file_stops_with_exit_3_and_records_nothing(served: Served) -> None:
    labels = served.held_out[LABEL_COLUMNS].head(20)
    duplicated = write_labels(served, "dup.csv", pd.concat([labels, labels.head(1)]))
    before = len(outcome_events())
    result = invoke(
        "monitor", "outcomes", "--labels", str(duplicated), "--predictions", str(served.results)
    )
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "appear more than once" in result.stderr
    assert len(outcome_events()) == before


def test_changed_predictions_are_refused_and_nothing_is_recorded(served: Served) -> None:
    (result,) = list_results(served.results)
    forged = served.root / "forged"
    shutil.copytree(result, forged / result.name)
    path = forged / result.name / PREDICTIONS_FILE
    table = pq.read_table(path)
    risk = table.column("readmission_risk").to_numpy()
    flipped = pa.array(1.0 - risk)  # every score inverted: a perfect inverse ranking
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("readmission_risk"), "readmission_risk", flipped
        ),
        path,
    )
    before = len(outcome_events())
    labels = write_labels(served, "forged-labels.csv", true_labels(served))
    outcome = invoke("monitor", "outcomes", "--labels", str(labels), "--predictions", str(forged))
    assert outcome.exit_code == ExitCode.AUDIT_BROKEN, outcome.output
    assert "changed after scoring" in outcome.stderr
    assert len(outcome_events()) == before
    manifest = json.loads((forged / result.name / "manifest.json").read_text())
    assert manifest["inference_run_id"]  # the forged copy still names the real run


def test_an_edited_manifest_is_refused_and_nothing_is_recorded(served: Served) -> None:
    """The attack: the predictions are untouched, but the manifest beside them now names
    another model version and a lower threshold, so that the verdict lands elsewhere."""
    (result,) = list_results(served.results)
    edited = served.root / "edited-manifest"
    shutil.copytree(result, edited / result.name)
    path = edited / result.name / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["model"]["version"] = "999"
    manifest["contract"]["operating_threshold"] = 0.01
    path.write_text(json.dumps(manifest))
    before = len(outcome_events())
    labels = write_labels(served, "edited-labels.csv", true_labels(served))
    outcome = invoke("monitor", "outcomes", "--labels", str(labels), "--predictions", str(edited))
    assert outcome.exit_code == ExitCode.AUDIT_BROKEN, outcome.output
    assert "manifest was edited after scoring" in outcome.stderr
    assert len(outcome_events()) == before


def test_a_cut_trail_is_not_reported_as_verified_evidence(served: Served, tmp_path: Path) -> None:
    """The attack: record a degraded check, then delete it and every later record from the
    trail with raw SQL and remove this machine's checkpoints. `mlops report` must not call the
    cut trail verified (the check's ZenML anchor is still there) and says, in the outcomes
    section, that a degraded verdict may be missing. The trail is restored afterwards."""
    inverted = true_labels(served)
    positive = inverted[TARGET_COLUMN] == TARGET_POSITIVE
    inverted.loc[positive, TARGET_COLUMN] = "NO"
    inverted.loc[~positive, TARGET_COLUMN] = TARGET_POSITIVE
    assert (
        only_version(monitor(write_labels(served, "inverted.csv", inverted), served))["verdict"]
        == "degraded"
    )
    degraded = outcome_events()[-1]
    url = load_platform_settings("local").audit.url
    database = Path(url.removeprefix("sqlite:///"))
    checkpoints = state_dir() / "audit-checkpoints"
    assert invoke("audit", "verify", "--env", "local").exit_code == 0  # saves a checkpoint
    shutil.copyfile(database, tmp_path / "audit.db")
    shutil.copytree(checkpoints, tmp_path / "checkpoints")
    try:
        tamper(url, f"DELETE FROM audit_events WHERE seq >= {degraded.seq}")
        shutil.rmtree(checkpoints)

        report = invoke_json("report", "--out", str(tmp_path / "report"), "--env", "local")

        assert report["audit_verified"] is False
        html = (tmp_path / "report" / "governance_report.html").read_text(encoding="utf-8")
        outcomes = html[html.index("Realised performance on true outcomes") :]
        assert "a recorded degraded verdict may be missing" in outcomes
    finally:
        shutil.copyfile(tmp_path / "audit.db", database)
        shutil.rmtree(checkpoints, ignore_errors=True)
        shutil.copytree(tmp_path / "checkpoints", checkpoints)
    assert invoke("audit", "verify", "--env", "local").exit_code == 0

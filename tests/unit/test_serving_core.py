"""Real-time scoring without ZenML: request models, validation, scores, the log, shadow stats, grant.

A small real model is trained once on synthetic encounters. Served scores are compared with the
batch scorer's on the same encounters; the log is written and read from a temporary directory.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _raw_frames import csv_bytes, raw_frame
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from scipy.stats import spearmanr

from mlops_platform.batch.contract import BatchRequest
from mlops_platform.batch.scoring import BatchScorer, PredictionStamp
from mlops_platform.evaluation.drift import DriftAccumulator, build_reference
from mlops_platform.serving.contract import request_model, response_model
from mlops_platform.serving.log import PredictionLog, PredictionLogError, parts, read_log
from mlops_platform.serving.scorer import RealtimeScorer, RequestRejected, ServedModel
from mlops_platform.serving.service import (
    ServingGrant,
    ServingGrantError,
    _log_schema,
    contract_sha256,
)
from mlops_platform.serving.shadow import compare_by_shadow_version, compare_scores
from mlops_platform.trust.signing import Signer, Verifier
from readmission.core import uci
from readmission.core.cohort import build_cohort, split_by_patient
from readmission.core.model import predict_risk, train_readmission_model
from readmission.core.params import ModelParams, SplitParams
from readmission.monitoring import MONITORED_CATEGORICAL, MONITORED_NUMERIC
from readmission.pipelines.batch_inference import RISK_COLUMN
from readmission.pipelines.realtime import realtime_contract

THRESHOLD = 0.15
CONTRACT = realtime_contract(THRESHOLD)


def as_request(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Encounters as a client sends them: integers as numbers, the rest as the file's text."""
    return [
        {k: (int(v) if k in uci.INTEGER_COLUMNS else str(v)) for k, v in row.items()}
        for row in frame.drop(columns=[uci.TARGET_COLUMN]).to_dict(orient="records")
    ]


@pytest.fixture(scope="module")
def model() -> Any:
    train, validation, _ = split_by_patient(
        build_cohort(raw_frame(2500, seed=3)), SplitParams(seed=1)
    )
    return train_readmission_model(train, validation, ModelParams(max_iter=25))


@pytest.fixture(scope="module")
def served(model: Any) -> ServedModel:
    return ServedModel(model, "readmission", "7", "production", "id-7")


def test_request_model_has_every_uci_column_and_refuses_unknown_keys() -> None:
    request = request_model(CONTRACT)
    schema = request.model_json_schema()
    encounter = schema["$defs"]["Encounter"]
    assert set(encounter["properties"]) == set(uci.COLUMNS)
    assert set(encounter["required"]) == set(uci.COLUMNS) - {uci.TARGET_COLUMN}
    assert encounter["properties"][uci.ENCOUNTER_ID]["type"] == "integer"
    good = as_request(raw_frame(5))[0]
    request.model_validate({"encounters": [good]})
    with pytest.raises(ValidationError, match="agee"):
        request.model_validate({"encounters": [dict(good, agee="x")]})
    with pytest.raises(ValidationError, match="num_medications"):
        request.model_validate({"encounters": [dict(good, num_medications="many")]})
    with pytest.raises(ValidationError, match="at least 1"):
        request.model_validate({"encounters": []})
    with pytest.raises(ValidationError, match=f"at most {CONTRACT.max_encounters}"):
        request.model_validate({"encounters": [good] * (CONTRACT.max_encounters + 1)})
    fields = response_model(CONTRACT).model_json_schema()["$defs"]["Prediction"]["properties"]
    assert {uci.ENCOUNTER_ID, RISK_COLUMN, "risk_band", "model_version"} <= set(fields)


def test_served_scores_equal_the_batch_scorer(
    served: ServedModel, model: Any, tmp_path: Path
) -> None:
    frame = raw_frame(200, seed=29)
    path = tmp_path / "batch.csv"
    path.write_bytes(csv_bytes(frame))
    request = BatchRequest(input_path=str(path), output_dir=str(tmp_path), stage="production")
    cohort = build_cohort(frame)
    reference = build_reference(
        cohort, predict_risk(model, cohort), MONITORED_NUMERIC, MONITORED_CATEGORICAL
    )
    BatchScorer(
        CONTRACT.batch,
        model,
        PredictionStamp("readmission", "7", "production", "run"),
        DriftAccumulator(reference),
        request,
    ).score(tmp_path / "p.parquet", tmp_path / "q.parquet")
    batch = pq.read_table(tmp_path / "p.parquet").to_pandas()
    scorer = RealtimeScorer(CONTRACT)
    request_frame = scorer.frame(as_request(frame))
    scores = scorer.score(served, request_frame)
    np.testing.assert_allclose(scores, batch[RISK_COLUMN].to_numpy(), rtol=0, atol=1e-12)
    predictions = scorer.predictions(served, request_frame, scores)
    assert [p[uci.ENCOUNTER_ID] for p in predictions] == batch[uci.ENCOUNTER_ID].tolist()
    assert [p["risk_band"] for p in predictions] == batch["risk_band"].tolist()


def test_validation_names_encounter_field_and_rule() -> None:
    encounters = as_request(raw_frame(5))
    encounters[1]["age"] = "[200-210)"
    encounters[2]["gender"] = "Robot"
    with pytest.raises(RequestRejected) as caught:
        RealtimeScorer(CONTRACT).frame(encounters)
    locations = {tuple(e["loc"]) for e in caught.value.errors}
    assert ("body", "encounters", 1, "age") in locations
    assert ("body", "encounters", 2, "gender") in locations
    assert all("[200-210)" not in e["msg"] for e in caught.value.errors)  # no patient values
    age = next(e for e in caught.value.errors if e["loc"][-1] == "age")
    assert age["msg"].startswith("age: ") and "rule" in age["msg"]


def test_a_value_the_reader_refuses_is_named_by_column_never_echoed() -> None:
    # Too long for int64: the reader refuses it and quotes it; the caller gets the column only.
    huge = "123456789012345678901234567890"
    encounters = as_request(raw_frame(3))
    encounters[1][uci.PATIENT_ID] = huge
    with pytest.raises(RequestRejected) as caught:
        RealtimeScorer(CONTRACT).frame(encounters)
    assert [e["loc"] for e in caught.value.errors] == [["body", "encounters", uci.PATIENT_ID]]
    assert huge not in str(caught.value) and all(huge not in e["msg"] for e in caught.value.errors)


def test_a_repeated_encounter_id_is_refused() -> None:
    encounters = as_request(raw_frame(5))
    encounters[3][uci.ENCOUNTER_ID] = encounters[0][uci.ENCOUNTER_ID]
    with pytest.raises(RequestRejected) as caught:
        RealtimeScorer(CONTRACT).frame(encounters)
    unique = [e for e in caught.value.errors if e["type"] == "unique"]
    assert ["body", "encounters", 3, uci.ENCOUNTER_ID] in [e["loc"] for e in unique]


def _rows(served: ServedModel, n: int, request_id: str, shadow: bool = False) -> pa.Table:
    scorer = RealtimeScorer(CONTRACT)
    frame = scorer.frame(as_request(raw_frame(n, seed=5).head(n)))
    scores = np.linspace(0.05, 0.5, len(frame))
    return scorer.log_table(
        served, frame, scores, request_id=request_id, inference_run_id="serve-1", shadow=shadow
    )


def test_log_batches_appends_and_flushes_on_close(served: ServedModel, tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, _log_schema(CONTRACT), batch_rows=5, background=False)
    log.append(_rows(served, 2, "a"))
    assert parts(tmp_path) == [] and log.buffered_rows == 2
    log.append(_rows(served, 3, "b"))
    assert len(parts(tmp_path)) == 1 and log.buffered_rows == 0
    log.append(_rows(served, 1, "c"))
    log.close()
    assert len(parts(tmp_path)) == 2
    rows = read_log(tmp_path).to_pandas()
    assert rows["request_id"].tolist() == ["a", "a", "b", "b", "b", "c"]
    with pytest.raises(PredictionLogError, match="closed"):
        log.append(_rows(served, 1, "d"))


def test_a_full_buffer_is_written_by_the_log_thread_not_the_request(
    served: ServedModel, tmp_path: Path
) -> None:
    log = PredictionLog(tmp_path, _log_schema(CONTRACT), batch_rows=2, flush_seconds=60)
    writers: list[str] = []
    write = log._write

    def recording(tables: list[pa.Table]) -> Any:
        writers.append(threading.current_thread().name)
        return write(tables)

    log._write = recording  # type: ignore[method-assign]
    log.append(_rows(served, 2, "a"))  # fills the buffer: wakes the writer, returns
    deadline = time.monotonic() + 10
    while not writers and time.monotonic() < deadline:
        time.sleep(0.02)
    log.close()
    assert writers == ["prediction-log"]
    assert read_log(tmp_path).to_pandas()["request_id"].tolist() == ["a", "a"]


def test_shadow_scores_are_logged_after_the_answer_and_never_returned(
    model: Any, served: ServedModel, tmp_path: Path
) -> None:
    from mlops_platform.serving.service import ServingService

    grant = dataclasses.replace(_grant(), log_dir=str(tmp_path), shadow=True)
    service = ServingService(CONTRACT, grant)
    service._served = served
    shadow = ServedModel(model, "readmission", "8", "staging", "id-8")
    service._shadow = shadow
    service.start_shadow_scorer()
    encounters = as_request(raw_frame(40, seed=9).head(3))
    answer = service.score(encounters)
    assert {p["model_version"] for p in answer.predictions} == {"7"}
    service.stop_shadow_scorer()  # scores what is queued
    service.log.close()
    rows = read_log(tmp_path).to_pandas()
    mine = rows[rows["request_id"] == answer.request_id]
    assert sorted(mine["shadow"].tolist()) == [False] * 3 + [True] * 3
    logged = mine[mine["shadow"]].set_index(uci.ENCOUNTER_ID)[RISK_COLUMN]
    frame = RealtimeScorer(CONTRACT).frame(encounters)
    expected = predict_risk(model, frame)
    keys = frame[uci.ENCOUNTER_ID].tolist()
    assert np.allclose(logged.loc[keys].to_numpy(), expected, rtol=0, atol=1e-12)
    assert set(mine.loc[mine["shadow"], "model_version"]) == {"8"}


def test_log_refuses_other_columns_and_a_changed_part(served: ServedModel, tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, _log_schema(CONTRACT), batch_rows=1, background=False)
    with pytest.raises(PredictionLogError, match="columns"):
        log.append(_rows(served, 2, "a").drop_columns(["shadow"]))
    log.append(_rows(served, 2, "a"))
    log.close()
    part = parts(tmp_path)[0]
    table = pq.read_table(part)
    risk = table.column(RISK_COLUMN).to_numpy() * 0 + 0.01
    forged = table.set_column(table.schema.get_field_index(RISK_COLUMN), RISK_COLUMN, [risk])
    pq.write_table(forged, part)
    with pytest.raises(PredictionLogError, match="changed after it was written"):
        read_log(tmp_path)


def test_log_flushes_old_rows_in_the_background(served: ServedModel, tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, _log_schema(CONTRACT), batch_rows=1000, flush_seconds=0.2)
    log.append(_rows(served, 2, "a"))
    deadline = time.monotonic() + 5
    while not parts(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    assert len(parts(tmp_path)) == 1


def test_compare_scores_statistics() -> None:
    served = np.array([0.1, 0.2, 0.3, 0.4])
    same = compare_scores(served, served, 0.25)
    assert same == {
        "n_encounters": 4,
        "agreement": 1.0,
        "mean_difference": 0.0,
        "rank_correlation": pytest.approx(1.0),
    }
    shadow = np.array([0.4, 0.35, 0.2, 0.15])
    result = compare_scores(served, shadow, 0.25)
    assert result["agreement"] == 0.0
    assert result["mean_difference"] == pytest.approx(np.mean(shadow - served))
    assert result["rank_correlation"] == pytest.approx(spearmanr(served, shadow).statistic)
    assert np.isnan(compare_scores(served[:1], shadow[:1], 0.25)["rank_correlation"])
    with pytest.raises(ValueError, match="one length"):
        compare_scores(served, shadow[:3], 0.25)


def test_comparison_pairs_shadow_and_served_rows_of_a_request(served: ServedModel) -> None:
    staging = dataclasses.replace(served, model_version="8", model_stage="staging")
    log = pa.concat_tables(
        [_rows(served, 3, "r1"), _rows(staging, 3, "r1", shadow=True)]
    ).to_pandas()
    log["threshold"] = THRESHOLD
    result = compare_by_shadow_version(log, uci.ENCOUNTER_ID, RISK_COLUMN, "threshold")["8"]
    assert result["n_encounters"] == 3 and result["agreement"] == 1.0
    assert result["served_versions"] == ["7"] and result["requests"] == 1


def _grant() -> ServingGrant:
    return ServingGrant("local", "ana", "asserted", "d", "m", "/tmp/log", False, "2026-01-01")


def test_grant_must_verify_with_a_trusted_key() -> None:
    key = Ed25519PrivateKey.generate()
    signer = Signer(key)
    trusted = Verifier({signer.key_id: key.public_key()})
    token = _grant().sign(signer)
    assert ServingGrant.verify(token, lambda env: trusted) == _grant()
    for name, value in (
        ("actor", "someone-else"),
        ("local_environment", {"MLOPS_AUDIT_DB_URL": "sqlite:////tmp/other.db"}),
    ):
        altered = {**token, "grant": {**token["grant"], name: value}}
        with pytest.raises(ServingGrantError, match="does not verify"):
            ServingGrant.verify(altered, lambda env: trusted)
    # The contract the deployment carries is served only if it is the one the grant signed.
    contract = CONTRACT.model_dump(mode="json")
    named = dataclasses.replace(_grant(), contract_sha256=contract_sha256(contract))
    assert named.contract(json.loads(json.dumps(contract))) == CONTRACT  # as stored and read back
    for rewritten in (
        {**contract, "request_check": "builtins.len"},
        {**contract, "batch": {**contract["batch"], "operating_threshold": 0.99}},
    ):
        with pytest.raises(ServingGrantError, match="not the one `mlops serve start` signed"):
            named.contract(rewritten)
    with pytest.raises(ServingGrantError, match="signed \\(none\\)"):
        _grant().contract(contract)  # a grant that names no contract serves none
    forged = _grant().sign(Signer(Ed25519PrivateKey.generate()))
    with pytest.raises(ServingGrantError, match="not trusted"):
        ServingGrant.verify(forged, lambda env: trusted)
    with pytest.raises(ServingGrantError, match="no serving grant"):
        ServingGrant.verify(None, lambda env: trusted)


def test_outcome_monitoring_reads_recorded_log_parts_only(
    served: ServedModel, tmp_path: Path
) -> None:
    from mlops_platform.monitoring.join import KEY, SCORE
    from mlops_platform.monitoring.predictions import (
        PredictionsIntegrityError,
        RecordedPart,
        load_served_log,
    )

    log_dir = (tmp_path / "log").resolve()
    staging = dataclasses.replace(served, model_version="8", model_stage="staging")
    switched = dataclasses.replace(served, model_version="9")
    log = PredictionLog(log_dir, _log_schema(CONTRACT), batch_rows=1, background=False)
    log.append(pa.concat_tables([_rows(served, 3, "r1"), _rows(staging, 3, "r1", shadow=True)]))
    log.append(_rows(served, 2, "r2"))
    log.close()
    first, second = log.written
    recorded = {first.path.name: RecordedPart(first.sha256, "serve-1", THRESHOLD, str(log_dir))}
    frame, batches, unrecorded, read = load_served_log(recorded, uci.PATIENT_ID)
    assert unrecorded == [second.path.name] and read == [str(log_dir)]
    assert len(frame) == 3  # the shadow's rows are not answers
    assert set(frame["model_version"]) == {"7"}
    assert frame[SCORE].notna().all() and frame[KEY].is_unique
    assert [(b.model_version, b.rows) for b in batches] == [("7", 3)]

    # Which parts count is the trail's: another directory named by the caller (empty, here)
    # does not leave the recorded answers out.
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    assert len(load_served_log(recorded, uci.PATIENT_ID, elsewhere)[0]) == 3
    # The log moved away: read from the copy named, else refused, never judged without it.
    moved = tmp_path / "archive"
    log_dir.rename(moved)
    assert len(load_served_log(recorded, uci.PATIENT_ID, moved)[0]) == 3
    with pytest.raises(PredictionsIntegrityError, match="not there") as missing:
        load_served_log(recorded, uci.PATIENT_ID, elsewhere)
    assert first.path.name in str(missing.value)
    moved.rename(log_dir)

    # A part holding two versions (a switch mid-part) counts each version's own rows.
    mixed = PredictionLog(log_dir, _log_schema(CONTRACT), batch_rows=10, background=False)
    mixed.append(pa.concat_tables([_rows(served, 2, "r3"), _rows(switched, 3, "r4")]))
    mixed.close()
    (third,) = mixed.written
    both = {**recorded, third.path.name: RecordedPart(third.sha256, "serve-1", THRESHOLD)}
    _, batches, _, _ = load_served_log(both, uci.PATIENT_ID, log_dir)
    assert sorted((b.model_version, b.rows) for b in batches) == [("7", 2), ("7", 3), ("9", 3)]

    pq.write_table(pq.read_table(first.path).slice(0, 1), first.path)
    with pytest.raises(PredictionsIntegrityError, match="changed after it was written"):
        load_served_log(recorded, uci.PATIENT_ID)


def test_a_log_directory_that_cannot_be_written_refuses_the_log(
    served: ServedModel, tmp_path: Path
) -> None:
    """Insider review: a service started on a log folder it could not write answered every
    request and recorded none. A file where the folder should be, or a folder inside a file."""
    (tmp_path / "taken").write_text("not a folder")
    for directory in (tmp_path / "taken", tmp_path / "taken" / "log"):
        with pytest.raises(PredictionLogError, match="cannot be written"):
            PredictionLog(directory, _log_schema(CONTRACT), background=False)


def test_a_failed_write_keeps_its_rows_and_refuses_appends_until_the_log_is_writable(
    served: ServedModel, tmp_path: Path
) -> None:
    """Insider review: the log folder replaced by a file for a few seconds killed the writer;
    100 answered rows were in no part and the part numbers had a gap. A failed write keeps its
    rows, refuses every append until a write succeeds, and numbers parts without gaps."""
    directory, away = tmp_path / "log", tmp_path / "away"
    log = PredictionLog(directory, _log_schema(CONTRACT), batch_rows=2, background=False)
    log.append(_rows(served, 2, "a"))  # part 0
    directory.rename(away)
    directory.write_text("in the way")
    log.append(_rows(served, 1, "b"))  # buffered: answered
    with pytest.raises(PredictionLogError, match="cannot be written"):
        log.append(_rows(served, 1, "c"))  # fills the buffer; its write fails: refused
    # "b" was answered and is kept; "c" was refused (503) and must never be logged.
    assert log.unwritten_rows == 1 and log.failure is not None
    with pytest.raises(PredictionLogError):
        log.append(_rows(served, 1, "x"))  # refused: never buffered, so never answered
    assert log.unwritten_rows == 1
    directory.unlink()
    away.rename(directory)
    log.append(_rows(served, 2, "d"))  # "b" is written first, then "d"
    log.close()
    assert log.failure is None and log.unwritten_rows == 0
    names = [p.name for p in parts(directory)]
    assert [int(n.removeprefix("part-").split("-")[0]) for n in names] == list(range(len(names)))
    rows = read_log(directory).to_pandas()["request_id"].tolist()
    assert rows == ["a", "a", "b", "d", "d"]


def test_a_log_folder_moved_away_is_made_again(served: ServedModel, tmp_path: Path) -> None:
    """Review: a log folder moved away (not replaced) refused every request until someone made
    it again; the writer makes it and goes on numbering."""
    directory = tmp_path / "log"
    log = PredictionLog(directory, _log_schema(CONTRACT), batch_rows=1, background=False)
    log.append(_rows(served, 1, "a"))
    directory.rename(tmp_path / "old")
    log.append(_rows(served, 1, "b"))
    log.close()
    assert read_log(directory).to_pandas()["request_id"].tolist() == ["b"]
    assert parts(directory)[0].name.startswith("part-00000001-")


def test_a_close_that_cannot_write_says_how_many_rows_it_kept(
    served: ServedModel, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    log = PredictionLog(directory, _log_schema(CONTRACT), batch_rows=100, background=False)
    log.append(_rows(served, 3, "a"))
    directory.rename(tmp_path / "away")
    directory.write_text("in the way")
    with pytest.raises(PredictionLogError, match="cannot be written"):
        log.close()
    assert log.unwritten_rows == 3 and log.written == []

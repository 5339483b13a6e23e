"""Batch scoring engine without ZenML: streamed reading, validation, sharding, quarantine, output.

A small real model is trained once on synthetic encounters; inputs are synthetic frames written
to files in code. The contract is the one the readmission batch-inference pipeline passes.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _raw_frames import csv_bytes, raw_frame, zip_bytes
from pydantic import ValidationError

from mlops_platform.batch.contract import (
    BatchContract,
    BatchContractError,
    BatchRequest,
    Shard,
    shard_numbers,
)
from mlops_platform.batch.reader import BatchInput, BatchInputError
from mlops_platform.batch.scoring import (
    INPUT_ROW_COLUMN,
    REJECTED_FOR_COLUMN,
    BatchScorer,
    PredictionStamp,
    ScoringSummary,
)
from mlops_platform.evaluation.drift import DriftAccumulator, ReferenceProfile, build_reference
from readmission.core import uci
from readmission.core.cohort import build_cohort, split_by_patient
from readmission.core.model import predict_risk, train_readmission_model
from readmission.core.params import ModelParams, SplitParams
from readmission.monitoring import MONITORED_CATEGORICAL, MONITORED_NUMERIC
from readmission.pipelines.batch_inference import INVALID_ROWS, READER, RISK_COLUMN, VALIDATOR

THRESHOLD = 0.15
STAMP = PredictionStamp("readmission", "7", "production", "run-1")
CONTRACT = BatchContract(
    reader=READER,
    validator=VALIDATOR,
    invalid_rows=INVALID_ROWS,
    id_columns=(uci.ENCOUNTER_ID, uci.PATIENT_ID),
    drop_columns=(uci.TARGET_COLUMN,),
    model_artifact="readmission_model",
    score_column=RISK_COLUMN,
    operating_threshold=THRESHOLD,
)


@dataclass(frozen=True)
class Trained:
    model: Any
    reference: ReferenceProfile


@dataclass(frozen=True)
class Scored:
    summary: ScoringSummary
    predictions: pd.DataFrame
    quarantine: pd.DataFrame | None
    drift_rows: int


@pytest.fixture(scope="module")
def trained() -> Trained:
    train, validation, _ = split_by_patient(
        build_cohort(raw_frame(2500, seed=3)), SplitParams(seed=1)
    )
    model = train_readmission_model(train, validation, ModelParams(max_iter=25))
    reference = build_reference(
        validation, predict_risk(model, validation), MONITORED_NUMERIC, MONITORED_CATEGORICAL
    )
    return Trained(model, reference)


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    """About 1,400 encounters not seen in training."""
    return raw_frame(1000, seed=29)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.write_bytes(csv_bytes(frame))
    return path


def score(trained: Trained, path: Path, tmp_path: Path, **options: Any) -> Scored:
    request = BatchRequest(
        input_path=str(path), output_dir=str(tmp_path / "out"), stage="production", **options
    )
    drift = DriftAccumulator(trained.reference)
    out = tmp_path / f"scored-{len(list(tmp_path.glob('scored-*')))}"
    out.mkdir()
    summary = BatchScorer(CONTRACT, trained.model, STAMP, drift, request).score(
        out / "predictions.parquet", out / "quarantine.parquet"
    )
    quarantine = out / "quarantine.parquet"
    return Scored(
        summary,
        pq.read_table(out / "predictions.parquet").to_pandas(),
        pq.read_table(quarantine).to_pandas() if quarantine.exists() else None,
        drift.rows,
    )


def test_every_row_is_scored_with_exactly_the_prediction_columns(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "batch.csv", batch)

    scored = score(trained, path, tmp_path, chunk_rows=500)

    predictions = scored.predictions
    assert list(predictions.columns) == list(CONTRACT.prediction_columns())
    assert predictions[uci.ENCOUNTER_ID].tolist() == batch[uci.ENCOUNTER_ID].tolist()
    assert predictions[uci.PATIENT_ID].tolist() == batch[uci.PATIENT_ID].tolist()
    risk = predictions[RISK_COLUMN].to_numpy()
    assert np.all((risk >= 0) & (risk <= 1))
    expected_band = np.where(risk >= THRESHOLD, "high", "standard")
    assert predictions["risk_band"].tolist() == expected_band.tolist()
    assert set(predictions["model_version"]) == {STAMP.model_version}
    assert set(predictions["model_stage"]) == {STAMP.model_stage}
    assert set(predictions["inference_run_id"]) == {STAMP.inference_run_id}
    assert str(predictions["scored_at"].dt.tz) == "UTC"
    summary = scored.summary
    assert summary.rows_read == summary.rows_scored == len(batch)
    assert summary.chunks == -(-len(batch) // 500)
    assert summary.rows_high_risk == int(np.sum(expected_band == "high"))
    assert summary.input_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scored.drift_rows == len(batch)


def test_one_chunk_gives_the_scores_of_the_model_on_the_whole_frame(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "batch.csv", batch)

    scored = score(trained, path, tmp_path, chunk_rows=len(batch))

    expected = predict_risk(trained.model, batch)
    np.testing.assert_allclose(scored.predictions[RISK_COLUMN], expected)


def test_workers_do_not_change_the_output(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "batch.csv", batch)

    serial = score(trained, path, tmp_path, chunk_rows=300, workers=1)
    threaded = score(trained, path, tmp_path, chunk_rows=300, workers=3)

    columns = [uci.ENCOUNTER_ID, RISK_COLUMN, "risk_band"]
    pd.testing.assert_frame_equal(serial.predictions[columns], threaded.predictions[columns])


def test_gzip_input_is_hashed_as_stored_and_scored_alike(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    plain = write_csv(tmp_path / "batch.csv", batch)
    packed = tmp_path / "batch.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    from_plain = score(trained, plain, tmp_path, chunk_rows=400)
    from_gzip = score(trained, packed, tmp_path, chunk_rows=400)

    assert from_gzip.summary.input_compressed
    assert from_gzip.summary.input_sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()
    np.testing.assert_allclose(
        from_gzip.predictions[RISK_COLUMN], from_plain.predictions[RISK_COLUMN]
    )


def test_parquet_input_is_read_as_text_and_scored(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(batch, preserve_index=False), path)

    scored = score(trained, path, tmp_path, chunk_rows=len(batch))

    assert scored.summary.input_format == "parquet"
    np.testing.assert_allclose(scored.predictions[RISK_COLUMN], predict_risk(trained.model, batch))


def test_shards_partition_the_rows_by_key(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "batch.csv", batch)

    shards = [
        score(trained, path, tmp_path, chunk_rows=400, shard=Shard(index=i, count=3))
        for i in range(3)
    ]

    keys = [set(s.predictions[uci.ENCOUNTER_ID]) for s in shards]
    assert set().union(*keys) == set(batch[uci.ENCOUNTER_ID])
    assert sum(len(k) for k in keys) == len(batch)
    for index, shard_keys in enumerate(keys):
        assert set(shard_numbers(np.array(sorted(shard_keys)), 3)) <= {index}
        assert shards[index].summary.rows_read == len(batch)
        assert shards[index].summary.rows_in_shard == len(shard_keys)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["num_medications"]), ["num_medications", "missing columns"]),
        (
            lambda f: f.assign(race=f["race"].where(f.index != 1234, "Martian")),
            ["race", "allowed_values", "1235"],
        ),
        (
            lambda f: f.assign(
                num_lab_procedures=f["num_lab_procedures"].where(f.index != 777, -4)
            ),
            ["num_lab_procedures", "in_range", "778"],
        ),
        (
            lambda f: f.astype({"number_inpatient": "str"}).assign(
                number_inpatient=lambda g: g["number_inpatient"].where(g.index != 900, "abc")
            ),
            ["number_inpatient", "not whole numbers", "data rows 901"],
        ),
        (
            lambda f: f.assign(
                encounter_id=f["encounter_id"].where(f.index != 1300, f["encounter_id"].iat[5])
            ),
            ["encounter_id", "unique", "1,301"],
        ),
    ],
    ids=["missing-column", "unknown-category", "negative-count", "wrong-type", "duplicate-id"],
)
def test_bad_rows_stop_scoring_naming_column_rule_and_file_rows(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path, change: Any, expected: list[str]
) -> None:
    path = write_csv(tmp_path / "bad.csv", change(batch.copy()))

    with pytest.raises(BatchInputError) as caught:
        score(trained, path, tmp_path, chunk_rows=500)

    for text in expected:
        assert text in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\n\n", "no header"),
        ("header-only", "no data rows"),
        ("not-utf8", "is not UTF-8 text"),
        ("ragged", "not a well-formed CSV"),
        ("zip", "zip archive"),
    ],
)
def test_unreadable_files_are_named_with_the_problem(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path, content: Any, expected: str
) -> None:
    text = csv_bytes(batch.head(50))
    path = tmp_path / "input.csv"
    data = {
        "header-only": text.split(b"\n", 1)[0] + b"\n",
        "not-utf8": text.replace(b"Caucasian", b"Caucasi\xe9n", 1),
        "ragged": text + b"1,2,3\n",
        "zip": zip_bytes({"input.csv": text}),
    }.get(content, content)
    path.write_bytes(data)

    with pytest.raises(BatchInputError) as caught:
        score(trained, path, tmp_path, chunk_rows=100)

    assert expected in str(caught.value)


def test_an_encoding_error_names_its_line(batch: pd.DataFrame, tmp_path: Path) -> None:
    lines = csv_bytes(batch.head(20)).split(b"\n")
    lines[12] = lines[12].replace(b"No", b"N\xff", 1)
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(BatchInputError, match="file line 13"), BatchInput(path, 100) as source:
        list(source.chunks())


def test_quarantine_sets_bad_rows_aside_and_scores_the_rest(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    bad = batch.copy()
    bad.loc[[10, 620], "race"] = "Martian"
    bad.loc[1100, "num_lab_procedures"] = -4
    bad.loc[1200, uci.ENCOUNTER_ID] = bad.loc[3, uci.ENCOUNTER_ID]  # repeats a scored key
    path = write_csv(tmp_path / "bad.csv", bad)

    scored = score(trained, path, tmp_path, chunk_rows=500, quarantine=True)

    rejected_rows = [11, 621, 1101, 1201]
    assert scored.quarantine is not None
    assert scored.quarantine[INPUT_ROW_COLUMN].tolist() == rejected_rows
    assert scored.quarantine[REJECTED_FOR_COLUMN].tolist() == [
        "schema rule",
        "schema rule",
        "schema rule",
        "duplicate encounter_id",
    ]
    assert scored.quarantine["race"].tolist()[:2] == ["Martian", "Martian"]
    summary = scored.summary
    assert summary.rows_rejected == 4
    assert summary.rows_scored == len(batch) - 4 == len(scored.predictions)
    assert summary.rejected_by_rule == {
        "race: allowed_values": 2,
        "num_lab_procedures: in_range": 1,
        "encounter_id: repeated": 1,
    }
    assert scored.predictions[uci.ENCOUNTER_ID].is_unique


def test_quarantine_does_not_hide_a_missing_column(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "bad.csv", batch.drop(columns=["age"]))

    with pytest.raises(BatchInputError, match="'age'"):
        score(trained, path, tmp_path, chunk_rows=500, quarantine=True)


def test_the_outcome_column_is_optional_and_never_used(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    with_outcome = score(trained, write_csv(tmp_path / "a.csv", batch), tmp_path, chunk_rows=2000)
    flipped = batch.assign(readmitted="<30")
    same = score(trained, write_csv(tmp_path / "b.csv", flipped), tmp_path, chunk_rows=2000)
    without = score(
        trained,
        write_csv(tmp_path / "c.csv", batch.drop(columns=[uci.TARGET_COLUMN])),
        tmp_path,
        chunk_rows=2000,
    )

    np.testing.assert_allclose(same.predictions[RISK_COLUMN], with_outcome.predictions[RISK_COLUMN])
    np.testing.assert_allclose(
        without.predictions[RISK_COLUMN], with_outcome.predictions[RISK_COLUMN]
    )


def test_a_reader_that_drops_rows_breaks_the_contract(
    trained: Trained, batch: pd.DataFrame, tmp_path: Path
) -> None:
    contract = CONTRACT.model_copy(update={"reader": f"{__name__}.drop_first_row"})
    request = BatchRequest(
        input_path=str(write_csv(tmp_path / "batch.csv", batch)),
        output_dir=str(tmp_path / "out"),
        stage="production",
    )
    scorer = BatchScorer(
        contract, trained.model, STAMP, DriftAccumulator(trained.reference), request
    )

    with pytest.raises(BatchContractError, match="keep every row"):
        scorer.score(tmp_path / "p.parquet", tmp_path / "q.parquet")


def drop_first_row(table: pa.Table, *, source: str, first_row: int) -> pd.DataFrame:
    from readmission.core.data import encounters_to_score

    return encounters_to_score(table, source=source, first_row=first_row).iloc[1:]


@pytest.mark.parametrize(
    ("text", "index", "count"), [("0/1", 0, 1), ("3/4", 3, 4), (" 1 / 2 ", 1, 2)]
)
def test_shard_parses_i_of_n(text: str, index: int, count: int) -> None:
    assert Shard.parse(text) == Shard(index=index, count=count)


@pytest.mark.parametrize("text", ["4/4", "1", "-1/2", "a/b", "1/0"])
def test_shard_rejects_anything_else(text: str) -> None:
    with pytest.raises(BatchContractError, match="shard"):
        Shard.parse(text)


@pytest.mark.parametrize(
    "update",
    [{"context_artifact": "patient_history"}, {"bind_context": "package.module.bind"}],
)
def test_a_context_artifact_and_its_binder_go_together(update: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="context_artifact and bind_context go together"):
        BatchContract(**{**CONTRACT.model_dump(), **update})


def test_a_stopped_csv_source_waits_for_the_read_ahead_and_serves_nothing_more() -> None:
    """pyarrow's read-ahead thread calls back into the Python source; a reader that stops early
    must not return while such a call is still running (the interpreter aborts if it exits then),
    and serves no more bytes after it stopped."""
    import io
    import threading

    from mlops_platform.batch.reader import _PeekableText

    entered, release = threading.Event(), threading.Event()

    class SlowSource(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            entered.set()
            release.wait(5)
            return b"x" * 8

    text = _PeekableText(SlowSource(), "slow.csv")
    buffer = memoryview(bytearray(8))
    reading = threading.Thread(target=text.readinto, args=(buffer,))
    reading.start()
    assert entered.wait(5)

    text.stop()
    assert text.wait_idle(timeout=0.2) is False  # the read-ahead call is still inside
    release.set()
    assert text.wait_idle(timeout=5) is True
    reading.join(5)
    assert text.readinto(memoryview(bytearray(8))) == 0


@pytest.mark.parametrize("labels", [("high", "standard"), ("standard", "low"), ("a", "b")])
def test_a_pipeline_cannot_rename_or_swap_the_risk_bands(labels: tuple[str, str]) -> None:
    # swapped, every patient at or above the threshold would read "standard"
    with pytest.raises(ValidationError, match="not the platform's"):
        BatchContract(**{**CONTRACT.model_dump(), "band_labels": labels})
    assert CONTRACT.risk_band(True) == "high" and CONTRACT.risk_band(False) == "standard"


def test_shards_spread_keys_that_share_a_pattern_evenly() -> None:
    """Day-one review: every UCI encounter id is even, so `key % 4` left shards 1 and 3 empty."""
    even = np.arange(2, 2 + 2 * 40_000, 2, dtype=np.int64)
    for count in (2, 3, 4, 8):
        sizes = np.bincount(shard_numbers(even, count), minlength=count)
        assert sizes.min() > 0.9 * len(even) / count, (count, sizes)
        assert sum(Shard(index=i, count=count).holds(even).sum() for i in range(count)) == len(even)
    assert (shard_numbers(even, 4) == shard_numbers(even.copy(), 4)).all()  # by key alone

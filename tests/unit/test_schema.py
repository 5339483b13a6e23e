"""The raw UCI contract: valid data passes; each kind of bad input fails with a readable message."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _raw_frames import csv_bytes, raw_frame

from readmission.core import uci
from readmission.core.data import DataFormatError, read_encounters
from readmission.core.schema import (
    ALL_MISSING_MIN_ROWS,
    COUNT_LIMITS,
    MAX_ROWS_SHOWN,
    SchemaViolationError,
    invalid_row_mask,
    raw_schema,
    validate_encounters,
)


def _violation(frame: pd.DataFrame, require_target: bool = True) -> SchemaViolationError:
    with pytest.raises(SchemaViolationError) as caught:
        validate_encounters(frame, require_target=require_target)
    return caught.value


def _failure(error: SchemaViolationError, column: str, check: str) -> dict:
    matches = [f for f in error.failures if f["column"] == column and f["check"] == check]
    assert matches, f"no ({column}, {check}) failure in {error.failures}"
    assert f"column {column!r}, rule {check!r}" in str(error)
    return matches[0]


# --- valid data ----------------------------------------------------------------------------


def test_real_file_validates_quickly(real_data: Path) -> None:
    frame, _ = read_encounters(real_data)
    started = time.perf_counter()
    assert validate_encounters(frame) is frame
    assert time.perf_counter() - started < 2.0
    assert not invalid_row_mask(frame).any()


def test_synthetic_frame_validates() -> None:
    frame = raw_frame()
    assert validate_encounters(frame) is frame


def test_target_is_optional_only_when_asked() -> None:
    batch = raw_frame().drop(columns=uci.TARGET_COLUMN)
    validate_encounters(batch, require_target=False)
    _failure(_violation(batch), uci.TARGET_COLUMN, "column_present")
    assert uci.TARGET_COLUMN in raw_schema(require_target=False).columns


def test_a_small_batch_may_have_no_weight_at_all() -> None:
    batch = raw_frame().head(10).assign(weight=uci.MISSING)
    validate_encounters(batch)


# --- the eight kinds of bad input ----------------------------------------------------------


def test_missing_column() -> None:
    failure = _failure(_violation(raw_frame().drop(columns="age")), "age", "column_present")
    assert failure["rows"] == []


def test_unexpected_column() -> None:
    _failure(_violation(raw_frame().assign(notes="x")), "notes", "known_column")


def test_unknown_category() -> None:
    frame = raw_frame()
    frame.loc[[2, 40], "race"] = "Martian"
    failure = _failure(_violation(frame), "race", "allowed_values")
    assert failure["rows"] == [3, 41]
    assert failure["values"] == ["Martian", "Martian"]
    assert "data rows 3, 41 hold 'Martian', 'Martian'" in str(_violation(frame))


def test_negative_count() -> None:
    low, _ = COUNT_LIMITS["number_emergency"]
    frame = raw_frame()
    frame.loc[7, "number_emergency"] = low - 1
    failure = _failure(_violation(frame), "number_emergency", "in_range")
    assert (failure["rows"], failure["values"]) == ([8], [low - 1])


def test_count_above_its_limit_and_unknown_code() -> None:
    _, high = COUNT_LIMITS["time_in_hospital"]
    frame = raw_frame()
    frame.loc[0, "time_in_hospital"] = high + 1
    frame.loc[1, "discharge_disposition_id"] = max(uci.DISCHARGE_DISPOSITION_IDS) + 1
    error = _violation(frame)
    _failure(error, "time_in_hospital", "in_range")
    _failure(error, "discharge_disposition_id", "code_table")


def test_wrong_type_in_a_frame() -> None:
    frame = raw_frame().astype({"num_lab_procedures": "str"})
    frame.loc[4, "num_lab_procedures"] = "many"
    error = _violation(frame)
    failure = _failure(error, "num_lab_procedures", "dtype")
    assert "int64" in failure["rule"] and failure["values"] == ["many"]
    assert [f["column"] for f in error.failures] == ["num_lab_procedures"]


def test_wrong_type_in_a_file_fails_in_the_reader(tmp_path: Path) -> None:
    frame = raw_frame().astype({"num_lab_procedures": "str"})
    frame.loc[4, "num_lab_procedures"] = "many"
    path = tmp_path / "typed.csv"
    path.write_bytes(csv_bytes(frame))
    with pytest.raises(DataFormatError, match=r"'num_lab_procedures'.*data rows 5 .*'many'"):
        read_encounters(path)


def test_text_column_of_python_objects_is_a_wrong_dtype() -> None:
    frame = raw_frame().astype({"diabetesMed": object})
    failure = _failure(_violation(frame), "diabetesMed", "string_dtype")
    assert "object" in failure["rule"]


def test_empty_frame() -> None:
    _failure(_violation(raw_frame().iloc[:0]), "(frame)", "not_empty")


def test_empty_file_fails_in_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\n")
    with pytest.raises(DataFormatError, match=rf"{path} is empty"):
        read_encounters(path)


def test_duplicate_encounter_id() -> None:
    frame = raw_frame()
    frame.loc[9, uci.ENCOUNTER_ID] = frame.loc[3, uci.ENCOUNTER_ID]
    failure = _failure(_violation(frame), uci.ENCOUNTER_ID, "unique")
    assert failure["rows"] == [4, 10]
    assert failure["values"] == [int(frame.loc[3, uci.ENCOUNTER_ID])] * 2


def test_bad_encoding_fails_in_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(csv_bytes(raw_frame()).replace(b"Other", b"Other\x96", 1))
    with pytest.raises(
        DataFormatError, match=rf"{path} is not UTF-8 text: byte\(s\) 96 at byte offset"
    ):
        read_encounters(path)


def test_all_missing_column_that_the_file_always_fills() -> None:
    error = _violation(raw_frame().assign(gender=uci.MISSING))
    _failure(error, "gender", "not_all_missing")
    assert _failure(error, "gender", "allowed_values")["count"] == len(raw_frame())


def test_all_missing_column_that_may_hold_question_marks() -> None:
    frame = raw_frame(n_patients=ALL_MISSING_MIN_ROWS)
    assert len(frame) >= ALL_MISSING_MIN_ROWS
    _failure(_violation(frame.assign(diag_1=uci.MISSING)), "diag_1", "not_all_missing")
    _failure(_violation(frame.assign(race="")), "race", "not_all_missing")


def test_null_values_are_caught_as_null_not_as_text() -> None:
    frame = raw_frame()
    frame["A1Cresult"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    error = _violation(frame)
    _failure(error, "A1Cresult", "not_null")
    _failure(error, "A1Cresult", "not_all_missing")


def test_pandas_default_na_parsing_is_caught() -> None:
    """`pd.read_csv` without keep_default_na=False turns the text 'None' into NaN."""
    frame = pd.read_csv(io.BytesIO(csv_bytes(raw_frame())))
    failure = _failure(_violation(frame), "max_glu_serum", "not_null")
    assert failure["count"] > 0


def test_malformed_diagnosis_code() -> None:
    frame = raw_frame()
    frame.loc[0, "diag_2"] = "heart"
    failure = _failure(_violation(frame), "diag_2", "icd9_code")
    assert failure["values"] == ["heart"]


# --- the message and the structured failures -----------------------------------------------


def test_one_line_per_failure_then_a_hint() -> None:
    frame = raw_frame()
    frame.loc[:, "num_procedures"] = -1
    frame.loc[0, "race"] = "Martian"
    error = _violation(frame)
    lines = str(error).splitlines()
    assert len(lines) == 1 + len(error.failures) + 1
    assert lines[-1].startswith("Hint:")
    failure = _failure(error, "num_procedures", "in_range")
    assert failure["count"] == len(frame)
    assert failure["rows"] == list(range(1, MAX_ROWS_SHOWN + 1))
    assert len(failure["values"]) == MAX_ROWS_SHOWN
    json.dumps(error.failures)
    assert all({"column", "check", "rows", "values"} <= set(f) for f in error.failures)


def test_row_numbers_ignore_the_frame_index() -> None:
    frame = raw_frame().set_axis(np.arange(1000, 1000 + len(raw_frame())))
    frame.iloc[5, frame.columns.get_loc("gender")] = "robot"
    assert _failure(_violation(frame), "gender", "allowed_values")["rows"] == [6]


# --- quarantine mask -----------------------------------------------------------------------


def test_invalid_row_mask_flags_exactly_the_bad_rows() -> None:
    frame = raw_frame().set_axis(np.arange(len(raw_frame())) * 10)
    frame.iloc[[1, 4], frame.columns.get_loc("race")] = "Martian"
    frame.iloc[4, frame.columns.get_loc("num_medications")] = -2
    frame.iloc[8, frame.columns.get_loc("insulin")] = "Lots"
    mask = invalid_row_mask(frame.drop(columns=uci.TARGET_COLUMN))
    assert mask.index.equals(frame.index)
    assert list(np.flatnonzero(mask)) == [1, 4, 8]


def test_invalid_row_mask_refuses_frame_level_problems() -> None:
    with pytest.raises(SchemaViolationError, match="column_present"):
        invalid_row_mask(raw_frame().drop(columns="age"))

"""Scoring input of the readmission team: one text-to-frame conversion, rows named as in the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _raw_frames import raw_frame

from readmission.core.data import DataFormatError, encounters_from_text, encounters_to_score
from readmission.core.schema import (
    SchemaViolationError,
    invalid_inference_rows,
    validate_inference_encounters,
)


def _text_table(frame: pd.DataFrame) -> pa.Table:
    return pa.table({name: frame[name].astype(str).tolist() for name in frame.columns})


def test_a_chunk_converts_like_a_file_and_names_file_rows() -> None:
    frame = raw_frame(40).drop(columns=["readmitted"])
    table = _text_table(frame).set_column(
        9, "time_in_hospital", pa.array(["3"] * 20 + ["x"] + ["3"] * (len(frame) - 21))
    )

    with pytest.raises(ValueError, match=r"data rows 520 \(file lines 521\)"):
        encounters_from_text(table, source="chunk", first_row=500, require_target=False)


def test_inference_validation_names_rows_by_their_labels() -> None:
    frame = raw_frame(40).drop(columns=["readmitted"])
    frame.index = np.arange(1001, 1001 + len(frame))
    frame.loc[1010, "gender"] = "Robot"

    with pytest.raises(SchemaViolationError, match="data rows 1010"):
        validate_inference_encounters(frame)
    assert invalid_inference_rows(frame)[lambda mask: mask].index.tolist() == [1010]


def test_a_scoring_chunk_may_lack_the_outcome_but_not_a_feature_column() -> None:
    frame = raw_frame(40)
    converted = encounters_to_score(_text_table(frame.drop(columns=["readmitted"])), source="c")

    assert "readmitted" not in converted.columns
    assert converted["encounter_id"].dtype == "int64"
    with pytest.raises(DataFormatError, match="missing columns: 'age'"):
        encounters_to_score(_text_table(frame.drop(columns=["age"])), source="c")


def test_inference_validation_needs_row_numbers_as_labels() -> None:
    frame = raw_frame(10).drop(columns=["readmitted"])
    frame.index = frame.index.astype(str)

    with pytest.raises(TypeError, match="data-row numbers"):
        validate_inference_encounters(frame)

"""The id a person types to trace a prediction is read as the predictions' id column is typed."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlops_platform.reporting.lineage import LineageNotFoundError, _typed


def test_an_id_is_read_as_the_column_type() -> None:
    assert _typed("2278392", pa.int64(), "encounter_id").as_py() == 2278392
    assert _typed("A-17", pa.string(), "encounter_id").as_py() == "A-17"


@pytest.mark.parametrize("typed", ["99999999999999999999999", "-99999999999999999999999", "12x"])
def test_an_id_the_column_cannot_hold_is_one_clear_refusal(typed: str) -> None:
    """The fresh-eyes review's oversized id ended in an OverflowError traceback (exit 1)."""
    with pytest.raises(LineageNotFoundError, match="cannot be a encounter_id"):
        _typed(typed, pa.int64(), "encounter_id")

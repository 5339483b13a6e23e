"""The reader's one-match integer check and its conversion give the per-column path's results.

`encounters_from_text` first matches all integer columns at once and looks per column only when
something is not a whole number; it converts small tables without Arrow's threads. Hypothesis
draws tables of text columns (valid rows, then odd values in integer and text columns, nulls,
mixed string types) and requires the same frame, bit for bit and dtype for dtype, or the same
error message, as the plain per-column reading (written out here as the reference).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _ml_frames import raw_encounters
from hypothesis import given, settings
from hypothesis import strategies as st

from readmission.core import data, uci

ODD_INTEGERS = (
    "",
    " 1",
    "1 ",
    "1.0",
    "+1",
    "-0",
    "0",
    "-7",
    "007",
    "1e3",
    "99999999999999999999",
    "123456789012345678",
    "\uff11",
    "one",
    "?",
    None,
)
ODD_TEXT = ("", " ", "?", "None", "nan", "Ünïcode", "428\n", None)
RAW = raw_encounters(n_rows=60, n_patients=20, seed=3)


def _reference(table: pa.Table, source: str, first_row: int) -> pd.DataFrame:
    """The reading before the one-match check: a pattern match per integer column."""
    data.check_header(table.column_names, source, require_target=False)
    columns = [c for c in uci.COLUMNS if c in set(table.column_names)]
    problems = [
        problem
        for name in columns
        if name in uci.INTEGER_COLUMNS
        and (problem := data._non_integers(table[name], name, first_row))
    ]
    if problems:
        raise data.DataFormatError(
            f"{source} has non-numeric values in integer columns:\n"
            + "\n".join(problems)
            + "\nFix these rows or re-export the file from the original UCI zip."
        )
    arrays = {
        name: pc.cast(table[name], pa.int64()) if name in uci.INTEGER_COLUMNS else table[name]
        for name in columns
    }
    return pa.table(arrays).to_pandas()


def _outcome(read: object, table: pa.Table) -> tuple[str, object]:
    try:
        return "frame", read(table, source="request", first_row=3)
    except Exception as error:  # the same error, type and message, is required
        return type(error).__name__, str(error)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.lists(st.integers(0, len(RAW) - 1), min_size=1, max_size=30))
    text = RAW.iloc[rows].drop(columns=[uci.TARGET_COLUMN]).astype(str)
    columns = {name: text[name].tolist() for name in text.columns}
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(list(columns)))
        row = draw(st.integers(0, len(rows) - 1))
        odd = ODD_INTEGERS if name in uci.INTEGER_COLUMNS else ODD_TEXT
        columns[name][row] = draw(st.sampled_from(odd))
    large = set(draw(st.lists(st.sampled_from(list(columns)), max_size=3)))
    return pa.table(
        {
            name: pa.array(values, pa.large_string() if name in large else pa.string())
            for name, values in columns.items()
        }
    )


@settings(max_examples=300, deadline=None)
@given(table=tables())
def test_any_table_reads_as_the_per_column_reading_does(table: pa.Table) -> None:
    mine, theirs = _outcome(data.encounters_to_score, table), _outcome(_reference, table)
    assert mine[0] == theirs[0], (mine, theirs)
    if mine[0] == "frame":
        pd.testing.assert_frame_equal(mine[1], theirs[1], check_exact=True)
        assert list(mine[1].dtypes) == list(theirs[1].dtypes)
    else:
        assert mine[1] == theirs[1]


@pytest.mark.parametrize("n_rows", [1, data._THREADED_ROWS])
def test_small_and_large_tables_read_alike(n_rows: int) -> None:
    """Tables below and at the threaded size give the reference's frame (Arrow's threads only
    change who converts)."""
    text = RAW.drop(columns=[uci.TARGET_COLUMN]).astype(str)
    text = text.iloc[[i % len(text) for i in range(n_rows)]].reset_index(drop=True)
    table = pa.table({name: pa.array(text[name].tolist(), pa.string()) for name in text.columns})
    frame = data.encounters_to_score(table, source="file", first_row=1)
    pd.testing.assert_frame_equal(frame, _reference(table, "file", 1), check_exact=True)


def test_one_bad_value_among_many_columns_is_still_named() -> None:
    """The one-match check fails, so each column is looked at and the bad one named."""
    text = RAW.drop(columns=[uci.TARGET_COLUMN]).astype(str).iloc[:3]
    columns = {name: text[name].tolist() for name in text.columns}
    columns["num_procedures"][2] = "2.5"
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    with pytest.raises(data.DataFormatError, match=r"column 'num_procedures'.*'2\.5'") as caught:
        data.encounters_to_score(table, source="request", first_row=0)
    assert caught.value.columns == ["num_procedures"]  # named for callers that see no values


def test_the_column_message_counts_the_columns_the_reader_needs() -> None:
    """Day-one review: scoring input (no outcome needed) was told "Expected the 50 columns ...
    to 'readmitted'"."""
    from readmission.core import uci
    from readmission.core.data import DataFormatError, check_header

    scoring = [c for c in uci.COLUMNS if c != uci.TARGET_COLUMN]
    with pytest.raises(DataFormatError, match=f"Expected the {len(scoring)} columns") as told:
        check_header(scoring[1:], "in.csv", require_target=False)
    assert "may be left out" in str(told.value)
    with pytest.raises(DataFormatError, match=f"Expected the {len(uci.COLUMNS)} columns"):
        check_header(uci.COLUMNS[1:], "in.csv", require_target=True)

"""The request-sized path of the feature transformer gives the batch path's numbers, bit for bit.

Frames of at most `SMALL_FRAME_ROWS` rows (real-time requests) read each column once, remember
per-value results across calls and walk history in plain Python; every other frame factorizes
each column. Hypothesis draws frames of 1 to 80 rows (both paths, on either side of the limit)
from a fabricated raw frame, with odd values (None, NaN, pandas NA, blanks, padded or malformed
codes, numbers) in the text columns, text columns of three dtypes, repeated patients and known
history, and requires the transformer's output to equal the batch path's exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ml_frames import raw_encounters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readmission.core import features as features_module
from readmission.core import uci
from readmission.core.features import ReadmissionFeatures
from readmission.core.history import KnownHistory

ODD_VALUES = (
    None,
    np.nan,
    pd.NA,
    "",
    " ",
    "?",
    " 428 ",
    "428.",
    "428\n",
    "250.8x",
    "V",
    "v57",
    "e909",
    "1e3",
    "-5",
    "999",
    "nan",
    "None",
    "Up",
    " Up",
    "Steady ",
    "[70-80)",
    "[70-80]",
    "[7-8)",
    "Ünïcode",
    428,
    3.5,
    True,
)
TEXT_COLUMNS = tuple(c for c in uci.COLUMNS if c not in uci.INTEGER_COLUMNS)
TEXT_DTYPES = ("str", "string", "object")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return raw_encounters(n_rows=400, n_patients=60, seed=11)


@pytest.fixture(scope="module")
def fitted(raw: pd.DataFrame) -> ReadmissionFeatures:
    return ReadmissionFeatures(min_category_count=5).fit(raw.iloc[:300])


@st.composite
def frames(draw: st.DrawFn, raw: pd.DataFrame) -> pd.DataFrame:
    rows = draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=80))
    frame = raw.iloc[rows].reset_index(drop=True)
    cells = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(rows) - 1),
                st.sampled_from(TEXT_COLUMNS),
                st.sampled_from(range(len(ODD_VALUES))),
            ),
            max_size=8,
        )
    )
    dtype = draw(st.sampled_from(TEXT_DTYPES))
    for name in {name for _, name, _ in cells}:
        frame[name] = frame[name].astype(object)
    for row, name, value in cells:
        frame.loc[row, name] = ODD_VALUES[value]
    for name in {name for _, name, _ in cells}:
        values = frame[name]
        if dtype != "object" and all(isinstance(v, str) or pd.isna(v) for v in values):
            frame[name] = values.astype(dtype)  # else the column stays object: mixed types
    if draw(st.booleans()):  # few patients: long histories within the frame
        frame[uci.PATIENT_ID] = draw(
            st.lists(st.integers(1, 3), min_size=len(rows), max_size=len(rows))
        )
    if draw(st.booleans()):  # another index, as a chunk of a file has
        frame.index = pd.RangeIndex(7, 7 + len(rows))
    return frame


def _batch_path(transformer: ReadmissionFeatures, frame: pd.DataFrame) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features_module, "SMALL_FRAME_ROWS", 0)
        return transformer.transform(frame)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_frame_gives_the_batch_paths_features(
    raw: pd.DataFrame, fitted: ReadmissionFeatures, data: st.DataObject
) -> None:
    frame = data.draw(frames(raw))
    known = data.draw(st.sampled_from([None, raw.iloc[250:]]))
    fitted.attach_history(None if known is None else KnownHistory(known))
    try:
        for _ in range(2):  # the second call finds the remembered values
            served = fitted.transform(frame)
            batch = _batch_path(fitted, frame)
            pd.testing.assert_frame_equal(served, batch, check_exact=True)
            assert served.index.equals(frame.index)
            assert list(served.columns) == list(fitted.feature_names_out_)
            assert set(served.dtypes) == {np.dtype("float64")}
    finally:
        fitted.attach_history(None)


def test_the_output_is_one_float_block(raw: pd.DataFrame, fitted: ReadmissionFeatures) -> None:
    """One 2-D float64 array, for a request and for a batch (scikit-learn reads it at once)."""
    for frame in (raw.iloc[:1], raw.iloc[:200]):
        out = fitted.transform(frame)
        values = out.to_numpy()
        assert values.dtype == np.float64 and values.shape == (len(frame), out.shape[1])
        assert np.shares_memory(values, out.to_numpy())  # no copy: one block behind the frame


def test_the_small_path_really_differs_from_the_batch_path(
    raw: pd.DataFrame, fitted: ReadmissionFeatures
) -> None:
    """The comparison above compares two paths: the small one remembers values, the other not."""
    features_module._REMEMBERED.clear()
    _batch_path(fitted, raw.iloc[:3])
    assert not features_module._REMEMBERED
    fitted.transform(raw.iloc[:3])
    assert features_module._REMEMBERED

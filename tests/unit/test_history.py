"""Known patient history: the table saved with a version, and features that draw on it."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from _ml_frames import raw_encounters

from mlops_platform.materializers.skops_model import dumps_model, loads_model
from readmission.core import uci
from readmission.core.cohort import build_cohort, features_and_label
from readmission.core.features import HISTORY_FEATURES, ReadmissionFeatures
from readmission.core.history import HISTORY_COLUMNS, HistoryError, KnownHistory, history_table


def visits(patient: int, encounters: list[int], days: list[int]) -> pd.DataFrame:
    """Encounters of one patient with the given ids and days in hospital (inpatient = index)."""
    raw = raw_encounters(n_rows=len(encounters), seed=9).drop(columns=[uci.TARGET_COLUMN])
    raw[uci.PATIENT_ID] = patient
    raw[uci.ENCOUNTER_ID] = encounters
    raw["time_in_hospital"] = days
    raw["number_inpatient"] = list(range(len(encounters)))
    raw["number_emergency"] = [3 * i for i in range(len(encounters))]
    return raw


@pytest.fixture(scope="module")
def inputs() -> pd.DataFrame:
    return features_and_label(build_cohort(raw_encounters(n_rows=600, n_patients=150, seed=4)))[0]


@pytest.fixture(scope="module")
def fitted(inputs: pd.DataFrame) -> ReadmissionFeatures:
    return ReadmissionFeatures(min_category_count=5).fit(inputs)


def with_history(fitted: ReadmissionFeatures, known: pd.DataFrame | None) -> ReadmissionFeatures:
    """A copy of `fitted` with `known` attached, leaving the shared fixture untouched."""
    copy = pickle.loads(pickle.dumps(fitted))
    copy.attach_history(None if known is None else KnownHistory(known))
    return copy


def test_history_table_keeps_the_history_columns_in_patient_order() -> None:
    frame = pd.concat([visits(9, [40, 10], [1, 2]), visits(3, [30], [4])], ignore_index=True)

    table = history_table(frame)

    assert list(table.columns) == list(HISTORY_COLUMNS)
    assert table[[uci.PATIENT_ID, uci.ENCOUNTER_ID]].values.tolist() == [[3, 30], [9, 10], [9, 40]]
    assert all(dtype == np.int64 for dtype in table.dtypes)


def test_history_table_refuses_missing_columns_and_repeated_encounters() -> None:
    with pytest.raises(HistoryError, match="missing \\['number_inpatient'\\]"):
        history_table(visits(1, [1], [1]).drop(columns=["number_inpatient"]))
    with pytest.raises(HistoryError, match="one row per encounter_id"):
        history_table(visits(1, [5, 5], [1, 2]))


def test_a_stored_table_without_a_column_added_since_hands_it_out_as_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A version's saved history predates a new history feature's column: it still loads (it
    stopped every stored version from scoring, exit 1), and the new column is unknown (NaN)
    for those rows while the columns the table has are handed out as saved. Without the
    patient or encounter id it is still refused."""
    from readmission.core import history

    stored = history_table(pd.concat([visits(1, [10, 20], [1, 2]), visits(2, [15], [3])]))
    monkeypatch.setattr(history, "HISTORY_COLUMNS", (*HISTORY_COLUMNS, "number_outpatient"))

    rows = KnownHistory(stored).rows_for(np.array([1]), np.array([30]))

    assert rows[uci.ENCOUNTER_ID].tolist() == [10, 20]
    assert rows["time_in_hospital"].tolist() == [1, 2]
    assert np.isnan(rows["number_outpatient"]).all() and rows["number_outpatient"].size == 2
    with pytest.raises(HistoryError, match="missing \\['encounter_id'\\]"):
        KnownHistory(stored.drop(columns=[uci.ENCOUNTER_ID]))


def test_rows_for_returns_only_the_asked_patients_minus_the_frames_own_encounters() -> None:
    known = KnownHistory(
        pd.concat(
            [visits(1, [10, 20], [1, 2]), visits(2, [15], [3]), visits(3, [5, 6, 7], [1, 1, 1])]
        )
    )

    # (3, 6) is the frame's own; encounter 20 in the frame belongs to patient 99, not to 1.
    rows = known.rows_for(np.array([3, 1, 3, 99]), np.array([6, 30, 8, 20]))

    assert sorted(zip(rows[uci.PATIENT_ID], rows[uci.ENCOUNTER_ID], strict=True)) == [
        (1, 10),
        (1, 20),
        (3, 5),
        (3, 7),
    ]
    assert len(known) == 6


def test_known_earlier_encounters_count_and_later_ones_do_not(
    fitted: ReadmissionFeatures,
) -> None:
    known = visits(77, [10, 20, 40], [2, 3, 9])  # 40 comes after the scored encounter
    scored = visits(77, [30], [5])

    out = with_history(fitted, known).transform(scored).iloc[0]

    assert out["prior_encounters"] == 2.0
    assert out["prior_inpatient_days"] == 5.0
    assert out["previous_inpatient_visits"] == 1.0  # encounter 20, the latest before 30
    assert out["prior_emergency_max"] == 3.0
    assert fitted.transform(scored).iloc[0]["prior_encounters"] == 0.0


def test_a_known_encounter_also_in_the_frame_counts_once(fitted: ReadmissionFeatures) -> None:
    frame = visits(5, [10, 20], [2, 3])

    alone = fitted.transform(frame)
    known_too = with_history(fitted, frame).transform(frame)

    pd.testing.assert_frame_equal(alone, known_too)
    assert known_too["prior_encounters"].tolist() == [0.0, 1.0]


def test_chunks_with_the_known_history_score_like_the_whole_frame(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    shuffled = inputs.sample(frac=1.0, random_state=1)
    chunks = [shuffled.iloc[i : i + 50] for i in range(0, len(shuffled), 50)]
    whole = fitted.transform(inputs)[list(HISTORY_FEATURES)]
    bound = with_history(fitted, history_table(inputs))

    chunked = pd.concat([bound.transform(chunk) for chunk in chunks])[list(HISTORY_FEATURES)]
    unbound = pd.concat([fitted.transform(chunk) for chunk in chunks])[list(HISTORY_FEATURES)]

    pd.testing.assert_frame_equal(chunked.loc[inputs.index], whole)
    assert (unbound.loc[inputs.index] != whole).any(axis=None)


def test_attached_history_is_never_saved_with_the_transformer(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    bound = with_history(fitted, history_table(inputs))

    for restored in (pickle.loads(pickle.dumps(bound)), loads_model(dumps_model(bound))):
        assert not hasattr(restored, "_known_history")
        pd.testing.assert_frame_equal(restored.transform(inputs), fitted.transform(inputs))


def test_small_frame_history_walk_equals_the_pandas_path(
    inputs: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Request-sized frames walk history in plain Python; it must give the batch path's floats,
    with repeated patients, unordered encounters and known rows (one of them the frame's own)."""
    from readmission.core import features as features_module

    rng = np.random.default_rng(5)
    frame = inputs.sample(40, random_state=2).reset_index(drop=True)
    frame[uci.PATIENT_ID] = rng.integers(1, 8, len(frame))  # few patients: long histories
    frame["number_emergency"] = rng.integers(0, 9, len(frame))
    known_rows = inputs.sample(60, random_state=3).reset_index(drop=True)
    known_rows[uci.PATIENT_ID] = rng.integers(1, 10, len(known_rows))
    known_rows.loc[0, [uci.PATIENT_ID, uci.ENCOUNTER_ID]] = frame.loc[
        0, [uci.PATIENT_ID, uci.ENCOUNTER_ID]
    ].to_numpy()
    known = KnownHistory(known_rows.drop_duplicates(uci.ENCOUNTER_ID))
    walked: list[dict[str, np.ndarray]] = []
    for rows in ([0], [5, 2, 9], list(range(40))):
        small = frame.iloc[rows].reset_index(drop=True)
        for history in (None, known):
            walked.append(features_module._history(features_module._Columns(small), history))
    monkeypatch.setattr(features_module, "SMALL_HISTORY_ROWS", -1)  # the pandas path
    grouped = []
    for rows in ([0], [5, 2, 9], list(range(40))):
        small = frame.iloc[rows].reset_index(drop=True)
        for history in (None, known):
            grouped.append(features_module._history(features_module._Columns(small), history))
    assert any(values["prior_encounters"].max() >= 3 for values in grouped)  # a real test
    for mine, theirs in zip(walked, grouped, strict=True):
        assert set(mine) == set(theirs) == set(HISTORY_FEATURES)
        for name in HISTORY_FEATURES:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)

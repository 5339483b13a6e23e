"""Join true outcomes to the predictions that were served (pure; frames in, frames out).

Rules:

- **Which prediction counts.** An encounter scored more than once (a batch re-run, or a later
  batch that included it again) counts once: its earliest prediction by ``scored_at`` (ties:
  the smaller ``inference_run_id``), because that is the score the care team saw first and
  acted on. Later predictions of the same encounter are counted as ``n_rescored`` and ignored.
- **As of.** Predictions scored after ``as_of`` do not exist yet; labels whose
  ``outcome_recorded_at`` is after ``as_of`` are not known yet (their encounters stay pending).
- **Pending.** A served prediction without a known outcome is pending, never a negative.
- **Unknown ids.** An outcome for an encounter no served prediction has is counted and reported
  (``n_unknown``) and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from mlops_platform.monitoring.labels import OUTCOME, RECORDED_AT

KEY: Final = "key"
PATIENT: Final = "patient"
SCORE: Final = "score"
WINDOW: Final = "window"
PREDICTION_COLUMNS: Final = (
    KEY,
    PATIENT,
    SCORE,
    "model_name",
    "model_version",
    "model_stage",
    "inference_run_id",
    "scored_at",
)
_SHOWN: Final = 5
# Rows whose timestamps are named at once by `window_labels`.
WINDOW_CHUNK_ROWS: Final = 100_000
_NAT: Final = int(np.iinfo(np.int64).min)
_WINDOW_FORMATS: Final = {"month": "%Y-%m", "week": "%G-W%V", "day": "%Y-%m-%d"}


class JoinInputError(ValueError):
    """The prediction frame lacks a column the join needs."""


@dataclass(frozen=True)
class JoinResult:
    """``labelled``: one row per labelled served prediction (the prediction columns but
    ``scored_at``, which its ``window`` replaces; ``outcome``; any group columns); ``pending``:
    per model version, served predictions without a known outcome."""

    labelled: pd.DataFrame
    pending: dict[str, int]
    n_predictions: int
    n_rescored: int
    n_labels: int
    n_unknown: int
    unknown_examples: list[int] = field(default_factory=list)
    n_labels_after_as_of: int = 0
    n_predictions_after_as_of: int = 0


def served_predictions(predictions: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The prediction that counts for each encounter (see module rules) and how many were dropped."""
    _require_columns(predictions)
    rows, rescored = _counting_rows(predictions, np.ones(len(predictions), dtype=bool))
    return predictions.take(rows).reset_index(drop=True), rescored


def _require_columns(predictions: pd.DataFrame) -> None:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise JoinInputError(f"Prediction frame lacks the columns {missing}.")


def _counting_rows(predictions: pd.DataFrame, eligible: np.ndarray) -> tuple[np.ndarray, int]:
    """Positions of the predictions that count among the ``eligible`` ones, in (scored_at,
    inference_run_id) order, and how many eligible ones were later predictions of the same
    encounter. Computed on integer arrays of the three columns involved (sorts, no hash table);
    no row is copied."""
    candidates = np.flatnonzero(eligible)
    ticks = _utc_ticks(predictions["scored_at"])
    ranks = _text_rank(predictions["inference_run_id"])
    if _constant(ticks) and _constant(ranks):
        ordered = candidates  # one batch scored at one moment: already in order
    else:
        ordered = candidates[np.lexsort((ranks[candidates], ticks[candidates]))]
    del candidates, ticks, ranks
    keys = predictions[KEY].to_numpy()[ordered]
    # A stable sort by key keeps each encounter's predictions in (scored_at, run) order, so the
    # first of each run of equal keys is the prediction that counts.
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    del keys
    starts = np.ones(len(sorted_keys), dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    del sorted_keys
    if starts.all():
        return ordered, 0
    first = np.zeros(len(ordered), dtype=bool)
    first[by_key[starts]] = True
    return ordered[first], int(len(ordered) - first.sum())


def _constant(values: np.ndarray) -> bool:
    return len(values) == 0 or bool(values.min() == values.max())


def join_outcomes(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    key_column: str,
    as_of: pd.Timestamp,
    window: str = "month",
) -> JoinResult:
    """Match each known outcome to its served prediction; see the module docstring for the rules.

    ``labels`` is the frame of ``read_labels`` (its key column is ``key_column``); ``as_of`` is a
    UTC timestamp. The result holds one copy of the labelled rows; the inputs are not copied, and
    ids are matched by sorting integer arrays (memory of a few integers per row, no hash table).
    """
    if window not in _WINDOW_FORMATS:
        raise JoinInputError(f"window must be one of {sorted(_WINDOW_FORMATS)}; got {window!r}.")
    _require_columns(predictions)
    late_predictions = _utc_ticks(predictions["scored_at"]) > _utc_ticks(pd.Series([as_of]))[0]
    n_late_predictions = int(late_predictions.sum())
    served, rescored = _counting_rows(predictions, ~late_predictions)
    del late_predictions
    served_keys = predictions[KEY].to_numpy()[served]
    known: np.ndarray | None = None  # positions of the outcomes known as of the date (None: all)
    label_keys = labels[key_column].to_numpy()
    if RECORDED_AT in labels.columns:
        known = np.flatnonzero(~(labels[RECORDED_AT] > as_of).to_numpy())
        label_keys = label_keys[known]
    # Labels in key order; for each served prediction, the row of its outcome (-1: pending).
    by_key = np.argsort(label_keys, kind="stable")
    sorted_keys = label_keys[by_key]
    if len(sorted_keys) > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        raise JoinInputError("Labels hold an encounter id more than once; each has one outcome.")
    at = np.searchsorted(sorted_keys, served_keys)
    np.minimum(at, max(len(sorted_keys) - 1, 0), out=at)
    has_label = sorted_keys[at] == served_keys if len(sorted_keys) else np.zeros(len(at), bool)
    del sorted_keys, served_keys
    matched = by_key[at[has_label]]  # positions in label_keys, in served order
    del at, by_key
    rows = served[has_label]
    kept = [c for c in predictions.columns if c != "scored_at"]
    labelled = predictions[kept].take(rows).reset_index(drop=True)
    labelled[WINDOW] = window_labels(predictions["scored_at"].take(rows), window).array
    del rows
    label_rows = matched if known is None else known[matched]
    for column in labels.columns:
        if column not in (key_column, RECORDED_AT):
            labelled[column] = labels[column].take(label_rows).reset_index(drop=True)
    labelled[OUTCOME] = labelled[OUTCOME].astype("int8")
    pending = _text_counts(predictions["model_version"].take(served[~has_label]))
    unknown_mask = np.ones(len(label_keys), dtype=bool)
    unknown_mask[matched] = False
    return JoinResult(
        labelled=labelled,
        pending=pending,
        n_predictions=len(served),
        n_rescored=rescored,
        n_labels=len(labels),
        n_unknown=int(unknown_mask.sum()),
        unknown_examples=[int(v) for v in label_keys[unknown_mask][:_SHOWN]],
        n_labels_after_as_of=0 if known is None else len(labels) - len(known),
        n_predictions_after_as_of=n_late_predictions,
    )


def _utc_ticks(values: pd.Series) -> np.ndarray:
    """Timestamps as integers on one UTC time line (for comparing and ordering only); a view,
    not a copy, when the column already holds UTC nanoseconds."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.array.tz_convert("UTC").as_unit("ns").asi8
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _text_rank(values: pd.Series) -> np.ndarray:
    """Each value's rank in the sorted order of the distinct values as text (one small integer
    per row; a missing value ranks first)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values)
    names = np.array([str(u) for u in uniques], dtype=object)
    rank = np.empty(len(names) + 1, dtype=_small_int(len(names) + 1))
    rank[np.argsort(names, kind="stable") + 1] = np.arange(1, len(names) + 1)
    rank[0] = 0
    return rank[codes + 1]


def _small_int(count: int) -> type[np.signedinteger]:
    return np.int16 if count < np.iinfo(np.int16).max else np.int64


def _text_counts(values: pd.Series) -> dict[str, int]:
    """How many rows hold each value, keyed by its text, most frequent first."""
    codes, uniques = pd.factorize(values)
    counts: dict[str, int] = {}
    tally = np.bincount(codes[codes >= 0], minlength=len(uniques))
    for unique, count in zip(uniques, tally, strict=True):
        counts[str(unique)] = counts.get(str(unique), 0) + int(count)
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def window_labels(scored_at: pd.Series, window: str) -> pd.Series:
    """The scoring window of each timestamp ("2026-03", "2026-W09" or "2026-03-01"), in UTC, as
    ordered categories (the names sort as the windows do). Each distinct timestamp is named once,
    a chunk of rows at a time; a missing timestamp has no window."""
    ticks = _utc_ticks(scored_at)
    window_of: dict[int, int] = {}  # tick -> window id
    ids: dict[str, int] = {}  # window name -> window id
    codes = np.empty(len(ticks), dtype=np.int32)
    for start in range(0, len(ticks), WINDOW_CHUNK_ROWS):
        part = ticks[start : start + WINDOW_CHUNK_ROWS]
        local, uniques = pd.factorize(part)
        named = np.array(
            [window_of.setdefault(int(t), _window_id(int(t), window, ids)) for t in uniques] + [-1],
            dtype=np.int32,
        )
        codes[start : start + len(part)] = named[local]
    names = sorted(name for name in ids if name)
    order = np.full(len(ids) + 1, -1, dtype=np.int32)  # window id -> position in `names`
    for position, name in enumerate(names):
        order[ids[name]] = position
    return pd.Series(
        pd.Categorical.from_codes(
            order[codes],
            categories=pd.Index(names, dtype=object).astype(str),
            ordered=True,
        ),
        index=scored_at.index,
    )


def _window_id(tick: int, window: str, ids: dict[str, int]) -> int:
    if tick == _NAT:
        return ids.setdefault("", len(ids))
    name = pd.Timestamp(tick, unit="ns", tz="UTC").strftime(_WINDOW_FORMATS[window])
    return ids.setdefault(name, len(ids))

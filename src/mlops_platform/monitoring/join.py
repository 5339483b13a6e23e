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
_WINDOW_FORMATS: Final = {"month": "%Y-%m", "week": "%G-W%V", "day": "%Y-%m-%d"}


class JoinInputError(ValueError):
    """The prediction frame lacks a column the join needs."""


@dataclass(frozen=True)
class JoinResult:
    """``labelled``: one row per labelled served prediction (prediction columns, ``outcome``,
    ``window`` and any group columns); ``pending``: per model version, served predictions
    without a known outcome."""

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
    encounter. Computed on the three columns involved; no row is copied."""
    candidates = np.flatnonzero(eligible)
    order = np.lexsort(
        (
            _text_rank(predictions["inference_run_id"])[candidates],
            _utc_ticks(predictions["scored_at"])[candidates],
        )
    )
    ordered = candidates[order]
    first = ~pd.Series(predictions[KEY].to_numpy()[ordered]).duplicated(keep="first").to_numpy()
    return ordered[first], int((~first).sum())


def join_outcomes(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    key_column: str,
    as_of: pd.Timestamp,
    window: str = "month",
) -> JoinResult:
    """Match each known outcome to its served prediction; see the module docstring for the rules.

    ``labels`` is the frame of ``read_labels`` (its key column is ``key_column``); ``as_of`` is a
    UTC timestamp. The result holds one copy of the labelled rows; the inputs are not copied.
    """
    if window not in _WINDOW_FORMATS:
        raise JoinInputError(f"window must be one of {sorted(_WINDOW_FORMATS)}; got {window!r}.")
    _require_columns(predictions)
    late_predictions = _utc_ticks(predictions["scored_at"]) > _utc_ticks(pd.Series([as_of]))[0]
    served, rescored = _counting_rows(predictions, ~late_predictions)
    served_keys = predictions[KEY].to_numpy()[served]
    known = np.arange(len(labels))
    if RECORDED_AT in labels.columns:
        known = np.flatnonzero(~(labels[RECORDED_AT] > as_of).to_numpy())
    label_keys = pd.Index(labels[key_column].to_numpy()[known])
    if not label_keys.is_unique:
        raise JoinInputError("Labels hold an encounter id more than once; each has one outcome.")
    # For each served prediction, the row of its outcome (-1: pending); served order is kept.
    label_row = label_keys.get_indexer(served_keys)
    has_label = label_row >= 0
    labelled = predictions.take(served[has_label]).reset_index(drop=True)
    for column in labels.columns:
        if column not in (key_column, RECORDED_AT):
            values = labels[column].take(known[label_row[has_label]])
            labelled[column] = values.reset_index(drop=True)
    labelled[OUTCOME] = labelled[OUTCOME].astype("int8")
    labelled[WINDOW] = window_labels(labelled["scored_at"], window)
    pending = _text_counts(predictions["model_version"].take(served[~has_label]))
    unknown_mask = pd.Index(served_keys).get_indexer(label_keys) < 0
    late_labels = len(labels) - len(known)
    return JoinResult(
        labelled=labelled,
        pending=pending,
        n_predictions=len(served_keys),
        n_rescored=rescored,
        n_labels=len(labels),
        n_unknown=int(unknown_mask.sum()),
        unknown_examples=[int(v) for v in label_keys.to_numpy()[unknown_mask][:_SHOWN]],
        n_labels_after_as_of=late_labels,
        n_predictions_after_as_of=int(late_predictions.sum()),
    )


def _utc_ticks(values: pd.Series) -> np.ndarray:
    """Timestamps as integers on one UTC time line (for comparing and ordering only)."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _text_rank(values: pd.Series) -> np.ndarray:
    """Each value's rank in the sorted order of the distinct values as text (one per row)."""
    codes, uniques = pd.factorize(values)
    names = np.array([str(u) for u in uniques], dtype=object)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    return rank[codes]


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
    ordered categories (the names sort as the windows do)."""
    stamps = pd.to_datetime(scored_at, utc=True)
    codes, uniques = pd.factorize(stamps, sort=True)
    names = pd.DatetimeIndex(uniques).strftime(_WINDOW_FORMATS[window]).astype(str)
    name_codes, windows = pd.factorize(np.asarray(names, dtype=object), sort=True)
    return pd.Series(
        pd.Categorical.from_codes(
            name_codes[codes] if len(codes) else np.array([], dtype=int),
            categories=pd.Index(windows, dtype=object).astype(str),
            ordered=True,
        ),
        index=scored_at.index,
    )

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
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise JoinInputError(f"Prediction frame lacks the columns {missing}.")
    ordered = predictions.sort_values(
        ["scored_at", "inference_run_id"], kind="stable", ignore_index=True
    )
    first = ~ordered[KEY].duplicated(keep="first").to_numpy()
    return ordered.loc[first].reset_index(drop=True), int((~first).sum())


def join_outcomes(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    key_column: str,
    as_of: pd.Timestamp,
    window: str = "month",
) -> JoinResult:
    """Match each known outcome to its served prediction; see the module docstring for the rules.

    ``labels`` is the frame of ``read_labels`` (its key column is ``key_column``); ``as_of`` is a
    UTC timestamp.
    """
    if window not in _WINDOW_FORMATS:
        raise JoinInputError(f"window must be one of {sorted(_WINDOW_FORMATS)}; got {window!r}.")
    scored = pd.to_datetime(predictions["scored_at"], utc=True)
    late_predictions = (scored > as_of).to_numpy()
    served, rescored = served_predictions(predictions.loc[~late_predictions])
    known = labels
    late_labels = 0
    if RECORDED_AT in labels.columns:
        late = (labels[RECORDED_AT] > as_of).to_numpy()
        late_labels = int(late.sum())
        known = labels.loc[~late]
    outcomes = known.rename(columns={key_column: KEY}).drop(columns=[RECORDED_AT], errors="ignore")
    merged = served.merge(outcomes, on=KEY, how="left", validate="one_to_one", indicator=True)
    has_label = (merged["_merge"] == "both").to_numpy()
    labelled = merged.loc[has_label].drop(columns="_merge").reset_index(drop=True)
    labelled[OUTCOME] = labelled[OUTCOME].astype("int8")
    labelled[WINDOW] = window_labels(labelled["scored_at"], window)
    pending = merged.loc[~has_label, "model_version"].astype(str).value_counts()
    unknown_mask = ~np.isin(outcomes[KEY].to_numpy(), served[KEY].to_numpy())
    return JoinResult(
        labelled=labelled,
        pending={str(k): int(v) for k, v in pending.items()},
        n_predictions=len(served),
        n_rescored=rescored,
        n_labels=len(labels),
        n_unknown=int(unknown_mask.sum()),
        unknown_examples=[int(v) for v in outcomes[KEY].to_numpy()[unknown_mask][:_SHOWN]],
        n_labels_after_as_of=late_labels,
        n_predictions_after_as_of=int(late_predictions.sum()),
    )


def window_labels(scored_at: pd.Series, window: str) -> pd.Series:
    """The scoring window of each timestamp ("2026-03", "2026-W09" or "2026-03-01"), in UTC."""
    stamps = pd.to_datetime(scored_at, utc=True)
    codes, uniques = pd.factorize(stamps, sort=True)
    names = np.asarray(pd.DatetimeIndex(uniques).strftime(_WINDOW_FORMATS[window]), dtype=object)
    return pd.Series(names[codes] if len(codes) else [], index=scored_at.index, dtype="string")

"""Patient history known before a batch is scored: the earlier encounters history features draw on.

`ReadmissionFeatures` derives each encounter's history (prior encounters, inpatient days,
emergency visits) from earlier encounters of the same patient. In training and evaluation those
are in the frame itself, because a patient's encounters never straddle splits. A scored batch
holds new encounters whose earlier ones are elsewhere, so the training pipeline saves the
cohort's history columns as an artifact of the model version (`history_table`), and batch
scoring attaches it to the loaded model (`readmission.core.model.attach_known_history`).
The table holds patient identifiers, so it is never saved inside the model file.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from readmission.core import uci

HISTORY_COLUMNS: Final = (
    uci.PATIENT_ID,
    uci.ENCOUNTER_ID,
    "time_in_hospital",
    "number_emergency",
    "number_inpatient",
)


class HistoryError(ValueError):
    """A history table cannot be used."""


# Without these a history table cannot say whose earlier encounter a row is.
HISTORY_KEYS: Final = (uci.PATIENT_ID, uci.ENCOUNTER_ID)


def history_table(encounters: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The columns history features read (``columns``, default `HISTORY_COLUMNS`), one row per
    encounter, by patient then encounter."""
    columns = HISTORY_COLUMNS if columns is None else columns
    missing = [c for c in columns if c not in encounters.columns]
    if missing:
        raise HistoryError(
            f"A patient history table needs the columns {list(columns)}; missing "
            f"{missing}. Build it from encounters as read from the UCI file."
        )
    table = encounters.loc[:, list(columns)].astype("int64")
    if table[uci.ENCOUNTER_ID].duplicated().any():
        raise HistoryError(
            f"A patient history table needs one row per {uci.ENCOUNTER_ID}; the encounters "
            "repeat some. Remove the duplicates (the schema check refuses them)."
        )
    ordered = table.sort_values([uci.PATIENT_ID, uci.ENCOUNTER_ID], kind="stable")
    return ordered.reset_index(drop=True)


class KnownHistory:
    """A history table, sorted by patient, that hands out the rows of a batch's patients.

    The table is a stored version's `patient_history`, saved with the columns history code read
    when that version was trained. A column added to `HISTORY_COLUMNS` since (for a new history
    feature) is unknown for those earlier encounters and handed out as missing (NaN): only the
    new feature reads it, which that version's model never uses, so the version scores as before.
    Pointing a feature an older version uses at the new column would change its scores; the
    golden-sample check, scored before history is attached, would not see it (the Developer
    Guide: a feature's definition is never changed in place). The ids are required.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        present = tuple(c for c in HISTORY_COLUMNS if c in table.columns or c in HISTORY_KEYS)
        ordered = history_table(table, present)
        rows = len(ordered)
        self._columns: dict[str, np.ndarray] = {
            c: ordered[c].to_numpy(dtype="int64") if c in present else np.full(rows, np.nan)
            for c in HISTORY_COLUMNS
        }
        self._patients = self._columns[uci.PATIENT_ID]

    def __len__(self) -> int:
        return int(self._patients.size)

    def rows_for(self, patients: np.ndarray, encounters: np.ndarray) -> dict[str, np.ndarray]:
        """Known encounters of `patients`, except the frame's own.

        `patients` and `encounters` are the frame's rows (aligned). A known row is the frame's
        own only when both its patient and its encounter id match one frame row: an encounter id
        that another patient's row carries excludes nothing, so the history of one patient never
        depends on the other patients' rows scored beside it (real-time requests are batched).
        """
        wanted = np.unique(patients)
        first = np.searchsorted(self._patients, wanted, side="left")
        counts = np.searchsorted(self._patients, wanted, side="right") - first
        starts = np.repeat(first, counts)
        offsets = np.arange(starts.size) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = starts + offsets
        known_encounters = self._columns[uci.ENCOUNTER_ID][rows]
        own = np.isin(known_encounters, encounters)
        if own.any():  # rare (a known encounter scored again): confirm the patient too
            pairs = set(
                zip(np.asarray(patients).tolist(), np.asarray(encounters).tolist(), strict=True)
            )
            candidates = np.flatnonzero(own)
            own[candidates] = [
                (patient, encounter) in pairs
                for patient, encounter in zip(
                    self._patients[rows[candidates]].tolist(),
                    known_encounters[candidates].tolist(),
                    strict=True,
                )
            ]
        rows = rows[~own]
        return {name: values[rows] for name, values in self._columns.items()}

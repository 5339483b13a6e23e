"""Simulate a data scientist changing `core/features.py` after models were stored.

`add_feature` does what the Developer Guide's "Adding a feature" asks (compute a new column, add its
name to the feature lists) by patching the feature module in this process; `redefine_feature`
changes how an existing feature is computed. Pipelines on the local orchestrator run in-process, so
training, champion/challenger and scoring all see the changed code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from readmission.core import feature_dictionary, features, model

NEW_FEATURE = "insulin_changed"


def add_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new numeric feature: whether the insulin dose went up or down during the stay."""
    derive = features._derive

    def derive_with_new_feature(frame: Any, known: Any = None) -> Any:
        numeric, categorical = derive(frame, known)
        insulin = frame["insulin"].astype("string").to_numpy(dtype=object, na_value="")
        numeric[NEW_FEATURE] = np.isin(insulin, ("Up", "Down")).astype("float64")
        return numeric, categorical

    entry = feature_dictionary.FeatureEntry(("insulin",), "1 if the insulin dose was changed.")
    _register_numeric(monkeypatch, NEW_FEATURE, derive_with_new_feature, entry)


def _register_numeric(monkeypatch: pytest.MonkeyPatch, name: str, derive: Any, entry: Any) -> None:
    """What the Developer Guide's steps 1 and 2 do: the computation, the lists, the dictionary."""
    numeric = (*features.NUMERIC_FEATURES, name)
    monkeypatch.setattr(features, "_derive", derive)
    monkeypatch.setattr(features, "NUMERIC_FEATURES", numeric)
    monkeypatch.setattr(features, "FEATURE_NAMES", (*numeric, *features.CATEGORICAL_FEATURES))
    monkeypatch.setattr(model, "NUMERIC_FEATURES", numeric)
    monkeypatch.setitem(feature_dictionary.DICTIONARY, name, entry)


HISTORY_FEATURE = "known_outpatient_visits"


def add_history_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new history feature that reads a column the saved patient history did not hold, with
    that column added to `HISTORY_COLUMNS` as the Developer Guide asks: this encounter's
    outpatient visits plus those of the patient's known earlier encounters."""
    import pandas as pd

    from readmission.core import history, uci

    derive = features._derive

    def derive_with_history(frame: Any, known: Any = None) -> Any:
        numeric, categorical = derive(frame, known)
        value = frame["number_outpatient"].to_numpy(dtype="float64")
        if known is not None:
            patients = frame[uci.PATIENT_ID].to_numpy(dtype="int64")
            extra = known.rows_for(patients, frame[uci.ENCOUNTER_ID].to_numpy(dtype="int64"))
            totals = pd.Series(extra["number_outpatient"]).groupby(extra[uci.PATIENT_ID]).sum()
            value = value + pd.Series(patients).map(totals).fillna(0.0).to_numpy()
        numeric[HISTORY_FEATURE] = value
        return numeric, categorical

    monkeypatch.setattr(history, "HISTORY_COLUMNS", (*history.HISTORY_COLUMNS, "number_outpatient"))
    entry = feature_dictionary.FeatureEntry(
        ("number_outpatient",), "Outpatient visits of this and the known earlier encounters."
    )
    _register_numeric(monkeypatch, HISTORY_FEATURE, derive_with_history, entry)


def redefine_feature(monkeypatch: pytest.MonkeyPatch, name: str = "utilisation_total") -> None:
    """An existing feature computed differently (here: doubled), as a careless edit would."""
    derive = features._derive

    def derive_changed(frame: Any, known: Any = None) -> Any:
        numeric, categorical = derive(frame, known)
        numeric[name] = numeric[name] * 2.0 + 1.0
        return numeric, categorical

    monkeypatch.setattr(features, "_derive", derive_changed)

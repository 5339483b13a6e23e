"""Feature engineering for 30-day readmission, as one fitted scikit-learn transformer.

Training and inference run the same `ReadmissionFeatures.transform`, so a feature can never be
computed one way for the model's fit and another way for a prediction. The output holds only
numbers: categorical features are integer codes ranked by training frequency (0 = most common;
the last code of each means "rare or unseen"), which gradient boosting splits as ordered numbers
and the logistic baseline one-hot encodes.
The fitted state is plain lists and dicts of str, so skops can store it without pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from readmission.core import uci
from readmission.core.history import KnownHistory

OTHER: Final = "other"
MISSING_GROUP: Final = "missing"

# ICD-9 chapters after Strack et al. (2014), with the symptom codes 785-788 folded into the organ
# system they describe; the remaining chapters are kept apart rather than lumped as "other".
# Each entry is (chapter, first code, last code), bounds inclusive on the 3-digit code.
ICD9_CHAPTERS: Final = (
    ("infectious", 1, 139),
    ("neoplasms", 140, 239),
    ("endocrine", 240, 279),
    ("blood", 280, 289),
    ("mental", 290, 319),
    ("nervous", 320, 389),
    ("circulatory", 390, 459),
    ("respiratory", 460, 519),
    ("digestive", 520, 579),
    ("genitourinary", 580, 629),
    ("pregnancy", 630, 679),
    ("skin", 680, 709),
    ("musculoskeletal", 710, 739),
    ("injury", 800, 999),
)
ICD9_SYMPTOM_CHAPTERS: Final = {
    785: "circulatory",
    786: "respiratory",
    787: "digestive",
    788: "genitourinary",
}
DIABETES_CHAPTER: Final = "diabetes"
SUPPLEMENTARY_CHAPTER: Final = "supplementary"  # V codes (health status) and E codes (causes)

# Code tables of IDs_mapping.csv folded into groups of similar meaning; codes not listed (new
# codes) fall into OTHER.
ADMISSION_TYPE_GROUPS: Final = {
    "emergency": (1,),
    "urgent": (2,),
    "elective": (3,),
    "other": (4, 7),
    MISSING_GROUP: (5, 6, 8),
}
DISCHARGE_GROUPS: Final = {
    "home": (1,),
    "home_care": (6, 8),
    "care_facility": (3, 4, 15, 24),
    "rehab_or_long_term": (22, 23),
    "hospital": (2, 5, 9, 10, 27, 28, 29, 30),
    "left_against_advice": (7,),
    "outpatient": (12, 16, 17),
    "death_or_hospice": tuple(sorted(uci.EXCLUDED_DISCHARGE_IDS)),
    MISSING_GROUP: (18, 25, 26),
}
ADMISSION_SOURCE_GROUPS: Final = {
    "referral": (1, 2, 3),
    "transfer_hospital": (4, 10, 22),
    "transfer_facility": (5, 6, 18, 19, 25, 26),
    "emergency": (7,),
    "other": (8, 11, 12, 13, 14, 16, 23, 24),
    MISSING_GROUP: (9, 15, 17, 20, 21),
}

# Medications given in at least ~1% of encounters; the rarer ones stay in the counts only.
MODELLED_MEDICATIONS: Final = (
    "insulin",
    "metformin",
    "glipizide",
    "glyburide",
    "pioglitazone",
    "rosiglitazone",
    "glimepiride",
    "repaglinide",
)
# 3-digit ICD-9 codes of conditions that drive readmissions, flagged when in any diagnosis.
SPECIFIC_CONDITIONS: Final = {
    "heart_failure": ("428",),
    "kidney_disease": ("403", "404", "584", "585", "586"),
    "copd": ("491", "492", "496"),
}
HISTORY_FEATURES: Final = (
    "prior_encounters",
    "prior_inpatient_days",
    "prior_emergency_max",
    "previous_inpatient_visits",
)
NUMERIC_FEATURES: Final = (
    *uci.COUNT_COLUMNS,
    "utilisation_total",
    "age_years",
    "weight_recorded",
    "meds_in_use",
    "meds_up",
    "meds_down",
    "diagnosis_chapters",
    *SPECIFIC_CONDITIONS,
    *HISTORY_FEATURES,
)
CATEGORICAL_FEATURES: Final = (
    "race",
    "gender",
    "payer_code",
    "medical_specialty",
    "admission_type",
    "discharge_group",
    "discharge_code",
    "admission_source",
    "admission_source_code",
    "diag_1_chapter",
    "diag_2_chapter",
    "diag_3_chapter",
    "max_glu_serum",
    "A1Cresult",
    "change",
    "diabetesMed",
    *MODELLED_MEDICATIONS,
)
FEATURE_NAMES: Final = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
# Frames of at most this many rows (real-time requests) remember per-value results across calls,
# at most this many values per derivation.
SMALL_FRAME_ROWS: Final = 64
# A small frame's history walk runs in plain Python up to this many rows (its own and known).
SMALL_HISTORY_ROWS: Final = 2_000
REMEMBERED_VALUES_LIMIT: Final = 10_000
_REMEMBERED: dict[Hashable, dict[tuple[type, object], object]] = {}
_DTYPES: dict[Hashable, np.dtype] = {}
_UNKNOWN: Final = object()
# Raw columns the transformer reads: everything but the outcome.
INPUT_COLUMNS: Final = tuple(c for c in uci.COLUMNS if c != uci.TARGET_COLUMN)


class FeatureError(ValueError):
    """The frame given to the feature transformer cannot be turned into features."""


def icd9_chapter(codes: pd.Series) -> pd.Series:
    """Map raw ICD-9 codes (strings such as "428", "250.83", "V57", "?") to chapter names."""
    text = codes.astype("string").str.strip()
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    whole = np.floor(number)
    first = text.str[:1].str.upper().to_numpy(dtype=object, na_value="")
    conditions = [
        (text == uci.MISSING).to_numpy(dtype=bool, na_value=True) | (first == ""),
        np.isin(first, ["V", "E"]),
        whole == 250,
    ]
    choices = [MISSING_GROUP, SUPPLEMENTARY_CHAPTER, DIABETES_CHAPTER]
    for code, chapter in ICD9_SYMPTOM_CHAPTERS.items():
        conditions.append(whole == code)
        choices.append(chapter)
    for chapter, low, high in ICD9_CHAPTERS:
        conditions.append((whole >= low) & (whole <= high))
        choices.append(chapter)
    return pd.Series(
        np.select(conditions, choices, default=OTHER), index=codes.index, dtype="string"
    )


def _age_years(age: pd.Series) -> np.ndarray:
    """Midpoint of an age band such as "[70-80)" (75.0); NaN for anything else."""
    bounds = age.astype("string").str.extract(r"^\[(\d+)-(\d+)\)$")
    low = pd.to_numeric(bounds[0], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    high = pd.to_numeric(bounds[1], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return (low + high) / 2.0


class _Columns:
    """The frame's columns for one `_derive` call, each read from the frame once.

    `frame[name]` builds a new Series on every read (~15 µs) and the features read some columns
    up to four times; for a small frame (a real-time request), each column's values are also
    taken as a Python list once (`values`), for the remembered per-value results.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.n_rows = len(frame)
        self.small = self.n_rows <= SMALL_FRAME_ROWS
        self._frame = frame
        self._series: dict[str, pd.Series] = {}
        self._values: dict[str, list[object]] = {}

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self._series:
            self._series[name] = self._frame[name]
        return self._series[name]

    def values(self, name: str) -> list[object]:
        if name not in self._values:
            self._values[name] = self[name].tolist()
        return self._values[name]


def _history(columns: _Columns, known: KnownHistory | None) -> dict[str, np.ndarray]:
    """Point-in-time history of each encounter from the same patient's earlier encounters.

    "Earlier" means a smaller encounter_id, in the frame or in the `known` history; an encounter
    never sees its own values or any later encounter's, so adding or removing a later visit
    changes nothing here. A known encounter that is also in the frame (same patient and encounter
    id) counts once.
    """
    n_rows = columns.n_rows
    rows = {
        "patient": columns[uci.PATIENT_ID].to_numpy(dtype="int64"),
        "encounter": columns[uci.ENCOUNTER_ID].to_numpy(dtype="int64"),
        "days": columns["time_in_hospital"].to_numpy(dtype="float64"),
        "emergency": columns["number_emergency"].to_numpy(dtype="float64"),
        "inpatient": columns["number_inpatient"].to_numpy(dtype="float64"),
        "position": np.arange(n_rows),
    }
    if known is not None:
        extra = known.rows_for(rows["patient"], rows["encounter"])
        added = {
            "patient": extra[uci.PATIENT_ID],
            "encounter": extra[uci.ENCOUNTER_ID],
            "days": extra["time_in_hospital"],
            "emergency": extra["number_emergency"],
            "inpatient": extra["number_inpatient"],
            "position": np.full(extra[uci.PATIENT_ID].size, -1),
        }
        rows = {name: np.concatenate([rows[name], added[name]]) for name in rows}
    if columns.small and rows["patient"].size <= SMALL_HISTORY_ROWS:
        return _history_small(rows, n_rows)
    ordered = pd.DataFrame(rows).sort_values(["patient", "encounter"], kind="stable")
    by_patient = ordered.groupby("patient", sort=False)
    previous_emergency = by_patient["emergency"].shift(1).fillna(0.0)
    history = {
        "prior_encounters": by_patient.cumcount(),
        "prior_inpatient_days": by_patient["days"].cumsum() - ordered["days"],
        "prior_emergency_max": previous_emergency.groupby(ordered["patient"], sort=False).cummax(),
        "previous_inpatient_visits": by_patient["inpatient"].shift(1).fillna(0.0),
    }
    # Scatter the frame's own rows back to input order; known rows only served as history.
    position = ordered["position"].to_numpy()
    own = position >= 0
    restored: dict[str, np.ndarray] = {}
    for name, values in history.items():
        column = np.empty(n_rows, dtype="float64")
        column[position[own]] = values.to_numpy(dtype="float64")[own]
        restored[name] = column
    return restored


def _history_small(rows: dict[str, np.ndarray], n_frame: int) -> dict[str, np.ndarray]:
    """`_history` for a request-sized frame: the same walk in plain Python, without pandas'
    fixed cost per call (a sort, a group-by and four group operations cost ~2.5 ms for one row).

    Same order (patient, then encounter, stable), same sums in the same order, so the same
    floats; a test requires both paths to agree.
    """
    patients, encounters = rows["patient"].tolist(), rows["encounter"].tolist()
    days, emergency = rows["days"].tolist(), rows["emergency"].tolist()
    inpatient, position = rows["inpatient"].tolist(), rows["position"].tolist()
    order = sorted(range(len(patients)), key=lambda i: (patients[i], encounters[i]))
    restored = {name: np.empty(n_frame, dtype="float64") for name in HISTORY_FEATURES}
    prior = restored["prior_encounters"]
    prior_days = restored["prior_inpatient_days"]
    emergency_max = restored["prior_emergency_max"]
    previous_inpatient = restored["previous_inpatient_visits"]
    patient: int | None = None
    count, total, most, last_emergency, last_inpatient = 0, 0.0, 0.0, 0.0, 0.0
    for i in order:
        if patients[i] != patient:  # a new patient: nothing before (shift, then fillna(0))
            patient, count, total, most = patients[i], 0, 0.0, 0.0
            last_emergency, last_inpatient = 0.0, 0.0
        total += days[i]
        most = max(most, last_emergency)
        if position[i] >= 0:
            at = position[i]
            prior[at] = count
            prior_days[at] = total - days[i]
            emergency_max[at] = most
            previous_inpatient[at] = last_inpatient
        count += 1
        last_emergency, last_inpatient = emergency[i], inpatient[i]
    return restored


def _per_value(
    columns: _Columns, name: str, derive: Callable[[pd.Series], np.ndarray], key: Hashable
) -> np.ndarray:
    """`derive` computed once per distinct value of column `name`, then spread back over its rows.

    A column of encounters holds few distinct values (hundreds of diagnosis codes at most), so
    string work on the distinct values costs a fraction of the same work on every row. `derive`
    must map each value on its own (no value's result depends on another's). For a small frame
    (a real-time request) the results are also remembered per value under `key`: pandas' fixed
    cost per call, not the values, dominates there, and a remembered value skips `derive`.
    """
    column = columns[name]
    if columns.small:
        return _per_value_remembered(column, columns.values(name), derive, key)
    rows, distinct = pd.factorize(column, use_na_sentinel=False)
    return np.asarray(derive(pd.Series(distinct)))[rows]


def _per_value_remembered(
    column: pd.Series,
    values: list[object],
    derive: Callable[[pd.Series], np.ndarray],
    key: Hashable,
) -> np.ndarray:
    """`_per_value` of a small frame: `values` is `column.tolist()`; only the values not
    remembered yet go to `derive`, as the column's own rows (its dtype)."""
    remembered = _REMEMBERED.setdefault(key, {})
    # The type is part of the key: 1, 1.0 and True are equal in Python but not to `derive`.
    keys = [(type(v), v) for v in values]
    found = [remembered.get(k, _UNKNOWN) for k in keys]
    unknown = [i for i, value in enumerate(found) if value is _UNKNOWN]
    if unknown:
        derived = np.asarray(derive(column.iloc[unknown].reset_index(drop=True)))
        _DTYPES[key] = derived.dtype
        if len(remembered) + len(unknown) > REMEMBERED_VALUES_LIMIT:
            remembered.clear()  # bounded memory whatever callers send
        for i, value in zip(unknown, derived.tolist(), strict=True):
            found[i] = value
            if _findable(values[i]):
                remembered[keys[i]] = value
    return np.array(found, dtype=_DTYPES[key])


def _findable(value: object) -> bool:
    """False for missing markers (NaN, NA, None), which are never kept: NaN equals nothing, so
    it would never be found again, and pandas NA compares to NA."""
    return not bool(pd.isna(value))


def _clean_text(values: pd.Series) -> np.ndarray:
    return values.astype("string").fillna(uci.MISSING).str.strip().to_numpy(dtype=object)


def _text(columns: _Columns, name: str) -> np.ndarray:
    return _per_value(columns, name, _clean_text, "text")


def _lookup(columns: _Columns, name: str, groups: dict[str, tuple[int, ...]]) -> np.ndarray:
    group_of = {code: group for group, members in groups.items() for code in members}
    return _per_value(
        columns,
        name,
        lambda values: values.map(group_of).fillna(OTHER).to_numpy(object),
        ("lookup", tuple(groups.items())),
    )


def _chapters(columns: _Columns, name: str) -> np.ndarray:
    return _per_value(
        columns, name, lambda values: icd9_chapter(values).to_numpy(dtype=object), "icd9_chapter"
    )


def _has_condition(columns: _Columns, name: str, prefixes: tuple[str, ...]) -> np.ndarray:
    """Whether each raw ICD-9 code's 3-digit part (before any ".") is one of `prefixes`."""
    return _per_value(
        columns,
        name,
        lambda values: np.isin([code.split(".", 1)[0] for code in _clean_text(values)], prefixes),
        ("condition", prefixes),
    )


def _distinct_chapters(chapters: list[np.ndarray]) -> np.ndarray:
    """How many different known chapters the three diagnoses span (0 to 3)."""
    first, second, third = chapters
    known = [c != MISSING_GROUP for c in chapters]
    return (
        known[0].astype("float64")
        + (known[1] & (second != first))
        + (known[2] & (third != first) & (third != second))
    )


def _derive(
    frame: pd.DataFrame, known: KnownHistory | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every feature this code computes, before category coding: (numeric, categorical of str).

    A fitted transformer picks the ones it was fitted with from these (`transform`), so a feature
    added here later is computed but ignored by models fitted before it.
    """
    columns = _Columns(frame)
    numeric = {c: columns[c].to_numpy(dtype="float64") for c in uci.COUNT_COLUMNS}
    numeric["utilisation_total"] = (
        numeric["number_outpatient"] + numeric["number_emergency"] + numeric["number_inpatient"]
    )
    numeric["age_years"] = _per_value(columns, "age", _age_years, "age_years")
    numeric["weight_recorded"] = (_text(columns, "weight") != uci.MISSING).astype("float64")
    # One row per encounter, one column per medication: each count is one operation.
    medications = np.column_stack([_text(columns, m) for m in uci.MEDICATIONS])
    numeric["meds_in_use"] = np.isin(medications, ("Steady", "Up", "Down")).sum(axis=1)
    numeric["meds_up"] = (medications == "Up").sum(axis=1)
    numeric["meds_down"] = (medications == "Down").sum(axis=1)
    chapters = [_chapters(columns, c) for c in uci.DIAGNOSIS_COLUMNS]
    numeric["diagnosis_chapters"] = _distinct_chapters(chapters)
    for condition, prefixes in SPECIFIC_CONDITIONS.items():
        numeric[condition] = np.logical_or.reduce(
            [_has_condition(columns, c, prefixes) for c in uci.DIAGNOSIS_COLUMNS]
        )
    numeric.update(_history(columns, known))

    categorical = {
        c: _text(columns, c)
        for c in (
            "race",
            "gender",
            "payer_code",
            "medical_specialty",
            "max_glu_serum",
            "A1Cresult",
            "change",
            "diabetesMed",
            *MODELLED_MEDICATIONS,
        )
    }
    categorical["admission_type"] = _lookup(columns, "admission_type_id", ADMISSION_TYPE_GROUPS)
    categorical["discharge_group"] = _lookup(columns, "discharge_disposition_id", DISCHARGE_GROUPS)
    categorical["discharge_code"] = _text(columns, "discharge_disposition_id")
    categorical["admission_source"] = _lookup(
        columns, "admission_source_id", ADMISSION_SOURCE_GROUPS
    )
    categorical["admission_source_code"] = _text(columns, "admission_source_id")
    for column, chapter in zip(uci.DIAGNOSIS_COLUMNS, chapters, strict=True):
        categorical[f"{column}_chapter"] = chapter
    return (
        {name: np.asarray(values, dtype="float64") for name, values in numeric.items()},
        categorical,
    )


def _check_columns(frame: pd.DataFrame) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise FeatureError(
            f"ReadmissionFeatures needs the raw UCI columns; missing {missing}. "
            "Pass encounters as read from the UCI file (the outcome column may be absent)."
        )


class ReadmissionFeatures(TransformerMixin, BaseEstimator):
    """Turn raw UCI encounters into numeric model inputs with a stable column order.

    `fit` learns, per categorical feature, the categories seen at least `min_category_count`
    times (at most `max_categories`, most frequent first); every other value, including values
    first seen at transform time, maps to one shared "rare or unseen" code. Identifiers and the
    outcome never become features; patient ids only order encounters for the history features.
    """

    def __init__(self, min_category_count: int = 50, max_categories: int = 100) -> None:
        self.min_category_count = min_category_count
        self.max_categories = max_categories

    def fit(self, X: pd.DataFrame, y: object = None) -> ReadmissionFeatures:
        """Learn the frequent categories of each categorical feature."""
        for name in ("min_category_count", "max_categories"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FeatureError(
                    f"ReadmissionFeatures {name} must be an integer of at least 1; got {value!r}. "
                    "Pass a positive integer."
                )
        _check_columns(X)
        self.numeric_features_ = list(NUMERIC_FEATURES)
        self.categorical_features_ = list(CATEGORICAL_FEATURES)
        numeric, derived = _derive(X)
        unmade = [n for n in self.numeric_features_ if n not in numeric] + [
            n for n in self.categorical_features_ if n not in derived
        ]
        if unmade:
            raise FeatureError(
                f"NUMERIC_FEATURES or CATEGORICAL_FEATURES lists {unmade}, which `_derive` does "
                "not compute: add the computation to `_derive` in readmission/core/features.py "
                "(docs/DEVELOPER_GUIDE.md, 'Adding a feature'), or take the name out of the list."
            )
        self.categories_: dict[str, list[str]] = {}
        for name in self.categorical_features_:
            values = derived[name]
            counts = pd.Series(values, dtype="string").value_counts()
            frequent = counts[counts >= self.min_category_count]
            ranked = sorted(frequent.items(), key=lambda item: (-item[1], item[0]))
            self.categories_[name] = [str(v) for v, _ in ranked[: self.max_categories]]
        self.feature_names_out_ = [*self.numeric_features_, *self.categorical_features_]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One float column per feature the transformer was fitted with, rows aligned with `X`.

        The columns are the fitted feature lists, not this module's current lists: a model keeps
        scoring with the features it learned even after features are added to the code.
        """
        check_is_fitted(self, "categories_")
        _check_columns(X)
        numeric_names, categorical_names = self.fitted_features()
        numeric, categorical = _derive(X, getattr(self, "_known_history", None))
        gone = [n for n in numeric_names if n not in numeric] + [
            n for n in categorical_names if n not in categorical
        ]
        if gone:
            raise FeatureError(
                f"This model was fitted with features this code no longer computes: {gone}. "
                "Keep computing them in `_derive` while a stored version needs them "
                "(docs/DEVELOPER_GUIDE.md, 'Renaming or removing a feature'), or score it with "
                "the code it was trained with (its commit's image)."
            )
        columns = {name: numeric[name] for name in numeric_names}
        small = len(X) <= SMALL_FRAME_ROWS
        for name in categorical_names:
            code_of, unseen = self._codes(name), len(self.categories_[name])
            values = categorical[name]
            if small:  # a dict lookup per value beats factorizing a few rows
                codes = np.array([code_of.get(v, unseen) for v in values], "float64")
            else:  # one lookup per distinct value (a column holds a few dozen), spread over rows
                rows, distinct = pd.factorize(values, use_na_sentinel=False)
                codes = np.array([code_of.get(v, unseen) for v in distinct], "float64")[rows]
            columns[name] = codes
        # One 2-D float block, one feature per row, given to pandas as is: a frame of one block
        # costs less to build than one of separate columns, and scikit-learn's input check
        # reads it as one array.
        names = list(self.feature_names_out_)
        block = np.empty((len(names), len(X)), dtype="float64")
        for i, name in enumerate(names):
            block[i] = columns[name]
        return pd.DataFrame(block.T, index=X.index, columns=names, copy=False)

    def fitted_features(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) feature names this transformer was fitted with.

        Transformers fitted before the two lists were stored hold `feature_names_out_` (every
        output column, in order) and `categories_` (one entry per categorical feature); those
        determine both lists exactly. The module's current lists are never a fallback: they
        describe today's code, not the code the model was fitted with.
        """
        if hasattr(self, "numeric_features_") and hasattr(self, "categorical_features_"):
            return list(self.numeric_features_), list(self.categorical_features_)
        if not hasattr(self, "feature_names_out_"):
            raise FeatureError(
                "This fitted ReadmissionFeatures records no feature list (feature_names_out_), so "
                "the features it was fitted with are unknown; retrain the model."
            )
        categorical = [n for n in self.feature_names_out_ if n in self.categories_]
        numeric = [n for n in self.feature_names_out_ if n not in self.categories_]
        return numeric, categorical

    def attach_history(self, history: KnownHistory | None) -> None:
        """Also draw history features from `history` (encounters known before this frame).

        Batch scoring attaches the history saved with the model version; `None` detaches it.
        The attachment is never saved with the transformer (see `__getstate__`).
        """
        self._known_history = history

    def _codes(self, name: str) -> dict[str, int]:
        """{category: code} of a categorical feature, built once per loaded transformer."""
        codes = self.__dict__.setdefault("_category_codes", {})
        if name not in codes:
            codes[name] = {category: i for i, category in enumerate(self.categories_[name])}
        return codes[name]

    def __getstate__(self) -> dict[str, object]:
        state = dict(super().__getstate__())
        state.pop("_known_history", None)
        state.pop("_category_codes", None)
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns, in order."""
        check_is_fitted(self, "categories_")
        return np.asarray(self.feature_names_out_, dtype=object)

"""The platform's patient holdout: which patients every gate judges a model on.

A patient is in the holdout if and only if the keyed hash of their id, read as a number in
[0, 1), is below the policy's fraction:

    HMAC-SHA256(key, str(patient_id)) -> first 8 bytes, big-endian, / 2**64  <  fraction

Membership depends only on the patient id, the platform key and the fraction, never on who else
is in the file: adding or removing patients cannot move anyone else into or out of the holdout,
so the gate's evaluation set for the patients a file shares with another file is the same. The
key lives in platform config (``configs/*/platform.yaml``, ``holdout.key``) and the fraction in
the gate policy (``holdout.fraction``); data-science code never chooses either.

The functions here are pure; `mlops_platform.steps.holdout` and `validate_model` apply them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

_SCALE = float(2**64)


class HoldoutError(RuntimeError):
    """Holdout inputs are unusable, or holdout patients reached a model's training data.

    A RuntimeError like the other refusals raised inside steps, so the runner reports the failed
    step (GovernedRunFailed) instead of a bare error.
    """


class HoldoutLeakError(HoldoutError):
    """A model was trained or calibrated on patients of the platform holdout."""


def holdout_score(patient_id: object, key: bytes) -> float:
    """The patient's position in [0, 1): HMAC-SHA256 of the id under `key`, scaled."""
    digest = hmac.new(key, _id_text(patient_id).encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def in_holdout(patient_ids: Iterable[object], key: bytes, fraction: float) -> np.ndarray:
    """Boolean mask: True for each patient id whose holdout score is below `fraction`.

    Each distinct id is hashed once (`pandas.factorize`), so the cost follows the number of
    patients, not of rows.
    """
    _check_inputs(key, fraction)
    values = patient_ids if isinstance(patient_ids, pd.Series) else pd.Series(list(patient_ids))
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    # Membership of an id never changes for a key and fraction, so it is remembered in-process
    # (the training run asks about the same patients in several steps).
    known = _MEMBERSHIP.setdefault((hashlib.sha256(key).digest(), fraction), {})
    if len(known) > _MEMBERSHIP_LIMIT:
        known.clear()
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    chosen = np.empty(len(uniques), dtype=bool)
    for position, text in enumerate(_id_texts(uniques)):
        member = known.get(text)
        if member is None:
            mac = keyed.copy()
            mac.update(text.encode("utf-8"))
            member = known[text] = int.from_bytes(mac.digest()[:8], "big") / _SCALE < fraction
        chosen[position] = member
    return chosen[codes] if len(codes) else np.zeros(0, dtype=bool)


_MEMBERSHIP: dict[tuple[bytes, float], dict[str, bool]] = {}
_MEMBERSHIP_LIMIT = 1_000_000


def split_holdout(
    frame: pd.DataFrame, patient_column: str, key: bytes, fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(development, holdout): rows of non-holdout patients and rows of holdout patients."""
    if patient_column not in frame.columns:
        raise HoldoutError(
            f"The frame has no patient column {patient_column!r}, so the platform cannot tell "
            "holdout patients apart; name the patient id column in the model contract."
        )
    mask = in_holdout(frame[patient_column], key, fraction)
    development = frame.loc[~mask].reset_index(drop=True)
    holdout = frame.loc[mask].reset_index(drop=True)
    return development, holdout


def leaked_patients(patient_ids: Iterable[object], key: bytes, fraction: float) -> list[str]:
    """Sorted distinct ids among `patient_ids` that belong to the holdout."""
    values = patient_ids if isinstance(patient_ids, pd.Series) else pd.Series(list(patient_ids))
    distinct = pd.Series(pd.unique(values))
    mask = in_holdout(distinct, key, fraction)
    return sorted(set(_id_texts(distinct[mask])))


def assert_no_leak(
    frames: dict[str, pd.DataFrame], patient_column: str, key: bytes, fraction: float
) -> int:
    """Raise `HoldoutLeakError` if any frame holds a holdout patient; return the patients checked.

    `frames` are the data a model was fitted or calibrated on, by input name. A frame without the
    patient column cannot be checked, which fails closed as well.
    """
    if not frames:
        raise HoldoutLeakError(
            "The platform found no training data for the model, so it cannot show that no "
            "holdout patient was used to fit it. Train the model in a step that takes the "
            "training frames (with their patient column) as inputs."
        )
    checked: set[str] = set()
    for name, frame in frames.items():
        if patient_column not in frame.columns:
            raise HoldoutLeakError(
                f"Training input {name!r} has no patient column {patient_column!r}, so the "
                "platform cannot show that it holds no holdout patient. Keep the patient id "
                "column in the frames the model is fitted on."
            )
        ids = frame[patient_column]
        leaked = leaked_patients(ids, key, fraction)
        if leaked:
            shown = ", ".join(leaked[:5]) + (" ..." if len(leaked) > 5 else "")
            raise HoldoutLeakError(
                f"Training input {name!r} holds {len(leaked)} patient(s) of the platform "
                f"holdout ({shown}). The gate judges models on these patients, so a model must "
                "never be fitted or calibrated on them: train on the `development_set` the "
                "platform's `split_holdout` step returns."
            )
        checked.update(_id_texts(pd.unique(ids)))
    return len(checked)


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content (column names, dtypes and values, in row order)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode("utf-8"))
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(hashed.tobytes())
    return digest.hexdigest()


def _id_text(patient_id: object) -> str:
    """One text form per id: 12, 12.0 (a float column) and "12" hash alike."""
    if isinstance(patient_id, (float, np.floating)) and float(patient_id).is_integer():
        return str(int(patient_id))
    if isinstance(patient_id, (int, np.integer)):
        return str(int(patient_id))
    return str(patient_id).strip()


def _id_texts(patient_ids: Any) -> list[str]:
    """`_id_text` of each id; whole-number columns (the usual patient id) in one numpy pass."""
    values = np.asarray(patient_ids)
    if values.dtype.kind in "iu":
        return list(map(str, values.tolist()))
    exact = np.abs(values) < 2**53 if values.dtype.kind == "f" else None  # integers a float holds
    if exact is not None and bool(np.all(exact & (values == np.round(values)))):
        return list(map(str, values.astype(np.int64).tolist()))
    return [_id_text(patient) for patient in values]


def _check_inputs(key: bytes, fraction: float) -> None:
    if not key:
        raise HoldoutError(
            "The holdout key is empty; set holdout.key in configs/base/platform.yaml."
        )
    if not 0.0 < fraction < 1.0:
        raise HoldoutError(
            f"The holdout fraction must lie strictly between 0 and 1; got {fraction}. "
            "Set holdout.fraction in configs/base/policy.yaml."
        )


def holdout_file_rows(
    raw: pd.DataFrame, source: object, patient_column: str, key: bytes, fraction: float
) -> pd.DataFrame:
    """The rows of ``raw`` (a data file, read as text) whose patient is in the holdout.

    They are all the gate's checks of a holdout against its file need
    (`expected_holdout_labels`, `holdout_input_problems`): a row of any other patient in a
    holdout is already one that "is not a row of a holdout patient". Remembered in this process
    by ``source`` (what names the file's content: its SHA-256) with the key and fraction, since
    every gate of one process judges on the same file (about 0.5 s a gate on the UCI file).
    """
    memo = (source, hashlib.sha256(key).digest(), fraction, patient_column, raw.shape)
    if memo not in _FILE_ROWS:
        if len(_FILE_ROWS) >= _FILE_ROWS_KEPT:
            _FILE_ROWS.clear()
        mask = in_holdout(raw[patient_column], key, fraction)
        _FILE_ROWS[memo] = raw.loc[mask].reset_index(drop=True)
    return _FILE_ROWS[memo]


_FILE_ROWS: dict[tuple[object, bytes, float, str, tuple[int, int]], pd.DataFrame] = {}
_FILE_ROWS_KEPT = 4


def expected_holdout_labels(
    raw: pd.DataFrame,
    patient_column: str,
    key: bytes,
    fraction: float,
    *,
    id_column: str,
    label_column: str,
    label_positive: Iterable[str],
    exclude: Mapping[str, Iterable[str]],
) -> pd.Series:
    """The outcome (0/1) of every row the gate must judge, by row id: the raw rows of holdout
    patients, minus the excluded ones, labelled from the raw outcome column (values as text)."""
    text = raw.astype(str)
    keep = pd.Series(in_holdout(raw[patient_column], key, fraction), index=raw.index)
    for column, values in exclude.items():
        keep &= ~text[column].isin({str(v) for v in values})
    chosen = text.loc[keep]
    labels = chosen[label_column].isin({str(v) for v in label_positive}).astype("int64")
    return pd.Series(labels.to_numpy(), index=chosen[id_column].to_numpy(), name="label")


def holdout_rows_problems(given: pd.Series, expected: pd.Series) -> list[str]:
    """Why the holdout handed to the gate (outcome by row id) is not the one the platform derives
    from the data file (``expected``); [] when it is."""
    # an outcome that is not 0/1 (text, missing) counts as another outcome, never as an error
    given = pd.Series(
        pd.to_numeric(pd.Series(given.to_numpy()), errors="coerce").fillna(-1).to_numpy(),
        index=given.index.astype(str),
    )
    expected = pd.Series(expected.to_numpy(dtype="int64"), index=expected.index.astype(str))
    problems = []
    if given.index.has_duplicates:
        problems.append(f"{int(given.index.duplicated().sum())} row id(s) appear more than once")
    missing = expected.index.difference(given.index)
    extra = given.index.difference(expected.index)
    first = given[~given.index.duplicated()]
    known = expected[~expected.index.duplicated()]
    common = known.index.intersection(first.index)
    changed = common[first.loc[common].to_numpy() != known.loc[common].to_numpy()]
    for what, ids in (
        ("rows of holdout patients in the data file are missing", missing),
        ("rows are not rows of holdout patients in the data file", extra),
        ("rows carry another outcome than the data file's", changed),
    ):
        if len(ids):
            shown = ", ".join(sorted(ids)[:5]) + (" ..." if len(ids) > 5 else "")
            problems.append(f"{len(ids)} {what} ({shown})")
    return problems


def _same_as_text(values: pd.Series, text: pd.Series) -> np.ndarray:
    """Per row: whether a loaded value is exactly the data file's text for it, in one form only
    (a review carried the outcome in how a loader wrote a value: "None" as a missing value for
    readmitted patients). A number must equal the number its text reads as, with the sign of
    zero, and is missing only where the text is no number; anything else must be a `str` equal
    to the text (a missing value, or an int for "41", is not the text)."""
    text = text.astype(str)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        read = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
        given = values.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            same = (given == read) & (np.signbit(given) == np.signbit(read))
        return same | (np.isnan(given) & np.isnan(read))
    loaded = values.to_numpy(dtype=object)
    same = np.fromiter((type(v) is str for v in loaded), dtype=bool, count=len(loaded))
    same[same] = loaded[same] == text.to_numpy(dtype=object)[same]  # str with str only
    return same


def holdout_input_problems(
    holdout: pd.DataFrame, raw: pd.DataFrame, *, id_column: str, hidden: Iterable[str]
) -> list[str]:
    """Why the holdout's model inputs are not the data file's own (``raw``: every column of the
    file as text); [] when they are.

    A model is judged on what serving will give it: the file's columns for each row, read as
    the file has them (`_same_as_text`). A column the file lacks (other than the outcomes the
    gate hides, ``hidden``) or a value that is not the file's for that row (an outcome copied
    into a feature, a feature made from the outcome, one value written two ways) is a problem,
    whatever code computed it; the row id is a model input too. Rows are matched by
    ``id_column``; rows the file lacks are `holdout_rows_problems`' to report.
    """
    hidden = set(hidden)
    extra = [c for c in holdout.columns if c not in hidden and c not in raw.columns]
    problems = []
    if extra:
        problems.append(
            f"the holdout has column(s) the data file lacks: {', '.join(map(repr, extra[:5]))}"
            + (" ..." if len(extra) > 5 else "")
        )
    ids = pd.Index(_id_texts(holdout[id_column]))
    file_rows = raw.set_index(pd.Index(_id_texts(raw[id_column])))
    file_rows = file_rows[~file_rows.index.duplicated()]
    at = file_rows.index.get_indexer(ids)
    found = at >= 0
    for column in holdout.columns:
        if column in hidden or column not in raw.columns or not found.any():
            continue
        same = _same_as_text(
            holdout[column].iloc[found].reset_index(drop=True),
            file_rows[column].iloc[at[found]].reset_index(drop=True),
        )
        if not same.all():
            differing = ids[found][~same]
            shown = ", ".join(map(str, differing[:3])) + (" ..." if len(differing) > 3 else "")
            problems.append(
                f"column {column!r} differs from the data file in {len(differing)} of "
                f"{int(found.sum())} rows (row ids {shown})"
            )
    return problems

"""Read and check a file of true outcomes (labels): CSV, CSV.gz or Parquet.

The file has the key column (``encounter_id``) and exactly one outcome column: the coded one
(UCI ``readmitted``: ``<30``, ``>30``, ``NO``; positive is ``<30``) or the 0/1 one
(``readmitted_30d``). ``outcome_recorded_at`` (ISO 8601; UTC when no offset is given) and the
subgroup columns (race, gender, age) are optional. Every column is read as text exactly as
written, then checked; a bad file is refused as a whole with one message naming the column, the
rule, how many rows break it and the first data rows (1-based, header excluded). Values of
patient data other than ids and outcome codes are never quoted.

Unknown encounter ids (labels for encounters that were never scored) are not an error here:
the join counts and reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals
from pydantic import BaseModel, ConfigDict, Field

from mlops_platform.batch.reader import BatchInput, BatchInputError

OUTCOME: Final = "outcome"
RECORDED_AT: Final = "outcome_recorded_at"
# Rows of text held at once while reading; only the typed columns are kept for the whole file.
CHUNK_ROWS: Final = 32_768
_SHOWN: Final = 5
_DIGITS = re.compile(r"^\d{1,18}$")


class LabelsFileError(ValueError):
    """The labels file cannot be used: unreadable, missing columns, duplicates, unknown codes."""


class OutcomeContract(BaseModel):
    """How a team's outcomes are spelled and which prediction columns they join to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_column: str = Field(min_length=1)
    patient_column: str = Field(min_length=1)
    code_column: str = Field(min_length=1)
    codes: tuple[str, ...] = Field(min_length=2)
    positive_codes: tuple[str, ...] = Field(min_length=1)
    binary_column: str = Field(min_length=1)
    recorded_at_column: str = RECORDED_AT
    group_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Labels:
    """Checked outcomes: ``frame`` has the key (int64), ``outcome`` (0/1, int8), optionally
    ``outcome_recorded_at`` (UTC timestamps) and the group columns (categorical text)."""

    frame: pd.DataFrame
    path: str
    sha256: str
    outcome_column: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_labels(path: Path, contract: OutcomeContract, chunk_rows: int = CHUNK_ROWS) -> Labels:
    """Read, check and type the labels file at ``path``; raises ``LabelsFileError``.

    The file is read by the batch scoring reader (``batch.reader.BatchInput``) in chunks of
    ``chunk_rows`` rows of text, so a bad file gets the same errors as a bad scoring input and
    memory holds one chunk of text plus the typed columns; the SHA-256 is of the bytes parsed.
    """
    checker = _LabelsChecker(contract, str(path))
    try:
        with BatchInput(Path(path), chunk_rows) as source:
            for chunk in source.chunks():
                checker.add(chunk.table, chunk.first_row)
                # Arrow's allocator keeps freed chunks for reuse; hand them back so that memory
                # does not grow with the file.
                pa.default_memory_pool().release_unused()
            digest = source.sha256
    except BatchInputError as error:
        raise _labels_error(error) from error
    return Labels(
        frame=checker.frame(), path=str(path), sha256=digest, outcome_column=checker.outcome
    )


PREFLIGHT_ROWS = 5_000


def preflight_labels(path: Path, contract: OutcomeContract, rows: int = PREFLIGHT_ROWS) -> None:
    """Check the labels file's first ``rows`` rows (readable, not empty, the contract's columns,
    known outcome codes) before any pipeline starts; raises ``LabelsFileError``. The pipeline
    still reads and checks the whole file."""
    try:
        with BatchInput(Path(path), rows) as source:
            for chunk in source.chunks():
                labels_frame(chunk.table, contract, str(path))
                return
    except BatchInputError as error:
        raise _labels_error(error) from error
    raise LabelsFileError(f"Labels file {path} holds no rows; pass a file of outcomes.")


def _labels_error(error: BatchInputError) -> LabelsFileError:
    """The batch reader's refusal of an input, said of the labels file."""
    message = str(error)
    if message.startswith("Input "):
        message = "Labels file " + message.removeprefix("Input ")
    return LabelsFileError(message)


def labels_frame(table: pa.Table, contract: OutcomeContract, name: str) -> pd.DataFrame:
    """Check a table of text columns and return the typed frame (see ``Labels``)."""
    checker = _LabelsChecker(contract, name)
    checker.add(table, 1)
    return checker.frame()


@dataclass
class _Breaks:
    """Rows that break one rule, over all chunks: how many and the first few (1-based)."""

    count: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, mask: np.ndarray, first_row: int) -> None:
        found = np.flatnonzero(mask)
        self.count += len(found)
        self.rows.extend((found[: _SHOWN - len(self.rows)] + first_row).tolist())

    def text(self) -> str:
        return ", ".join(str(r) for r in self.rows) + (", ..." if self.count > _SHOWN else "")


class _LabelsChecker:
    """Checks chunks of text columns as they come and keeps only the typed columns; ``frame()``
    raises for the first rule broken anywhere in the file (ids, outcomes, duplicates, dates)."""

    def __init__(self, contract: OutcomeContract, name: str) -> None:
        self.contract = contract
        self.name = name
        self.outcome = ""
        self.rows = 0
        self.bad_keys = _Breaks()
        self.bad_outcomes = _Breaks()
        self.unknown_codes: list[str] = []
        self.bad_dates = _Breaks()
        self.keys: list[np.ndarray] = []
        self.outcomes: list[np.ndarray] = []
        self.recorded: list[pd.Series] = []
        self.groups: dict[str, list[pd.Categorical]] = {}

    def add(self, table: pa.Table, first_row: int) -> None:
        contract = self.contract
        if not self.outcome:
            self._check_columns(set(table.column_names))
        self.rows += table.num_rows
        keys = _trimmed(table, contract.key_column)
        valid = pc.match_substring_regex(keys, _DIGITS.pattern)
        self.bad_keys.add(~valid.to_numpy(zero_copy_only=False), first_row)
        self.keys.append(pc.cast(pc.if_else(valid, keys, "0"), pa.int64()).to_numpy())
        self.outcomes.append(self._outcomes(_trimmed(table, self.outcome), first_row))
        if contract.recorded_at_column in table.column_names:
            text = _trimmed(table, contract.recorded_at_column).to_numpy(zero_copy_only=False)
            parsed = pd.to_datetime(
                pd.Series(text, dtype="string"), errors="coerce", utc=True, format="ISO8601"
            )
            self.bad_dates.add(parsed.isna().to_numpy(), first_row)
            self.recorded.append(parsed)
        for column in contract.group_columns:
            if column in table.column_names:
                encoded = pc.dictionary_encode(_trimmed(table, column))
                self.groups.setdefault(column, []).append(
                    pd.Categorical.from_codes(
                        encoded.indices.to_numpy(zero_copy_only=False),
                        categories=encoded.dictionary.to_pylist(),
                    )
                )

    def _check_columns(self, columns: set[str]) -> None:
        contract, name = self.contract, self.name
        if contract.key_column not in columns:
            raise LabelsFileError(
                f"Labels {name} have no {contract.key_column!r} column (columns: "
                f"{sorted(columns)}); add the id of each scored encounter."
            )
        present = [c for c in (contract.code_column, contract.binary_column) if c in columns]
        if len(present) != 1:
            raise LabelsFileError(
                f"Labels {name} must have exactly one outcome column, {contract.code_column!r} "
                f"(codes {', '.join(contract.codes)}) or {contract.binary_column!r} (0/1); found "
                f"{present or 'neither'}. Keep one."
            )
        self.outcome = present[0]

    def _outcomes(self, values: pa.Array, first_row: int) -> np.ndarray:
        if self.outcome == self.contract.code_column:
            allowed, positive = self.contract.codes, self.contract.positive_codes
        else:
            allowed, positive = ("0", "1"), ("1",)
        known = pc.is_in(values, value_set=pa.array(allowed, pa.string()))
        unknown = pc.invert(known)
        self.bad_outcomes.add(unknown.to_numpy(zero_copy_only=False), first_row)
        if len(self.unknown_codes) < _SHOWN and pc.any(unknown).as_py():
            for code in pc.unique(pc.filter(values, unknown)).to_pylist():
                if code not in self.unknown_codes and len(self.unknown_codes) < _SHOWN:
                    self.unknown_codes.append(code)
        chosen = pc.is_in(values, value_set=pa.array(positive, pa.string()))
        return chosen.to_numpy(zero_copy_only=False).astype("int8")

    def frame(self) -> pd.DataFrame:
        contract, name = self.contract, self.name
        if self.rows == 0:
            raise LabelsFileError(f"Labels {name} have a header but no data rows.")
        if self.bad_keys.count:
            raise LabelsFileError(
                f"Labels {name}: {self.bad_keys.count} rows have a {contract.key_column} that is "
                f"not a non-negative integer (rows {self.bad_keys.text()}); every outcome needs "
                "the id of the scored encounter."
            )
        if self.bad_outcomes.count:
            rule = (
                f"one of {', '.join(repr(c) for c in contract.codes)}"
                if self.outcome == contract.code_column
                else "0 or 1"
            )
            raise LabelsFileError(
                f"Labels {name}: {self.bad_outcomes.count} rows have a {self.outcome} outside "
                f"{rule} (found {self.unknown_codes}; rows {self.bad_outcomes.text()}). Map every "
                "outcome to a known code; an encounter whose outcome is not known yet is left "
                "out of the file."
            )
        frame = pd.DataFrame(
            {
                contract.key_column: np.concatenate(self.keys),
                OUTCOME: np.concatenate(self.outcomes),
            },
            copy=False,
        )
        self.keys, self.outcomes = [], []
        _refuse_duplicates(frame[contract.key_column], contract.key_column, name)
        if self.bad_dates.count:
            column = contract.recorded_at_column
            raise LabelsFileError(
                f"Labels {name}: {self.bad_dates.count} rows have a {column} that is not an ISO "
                f"8601 date or timestamp (rows {self.bad_dates.text()}); write e.g. 2026-03-01 "
                f"or 2026-03-01T12:00:00Z, or drop the {column} column."
            )
        if self.recorded:
            frame[RECORDED_AT] = pd.concat(self.recorded, ignore_index=True)
        for column, parts in self.groups.items():
            frame[column] = union_categoricals(parts) if len(parts) > 1 else parts[0]
        return frame


def _trimmed(table: pa.Table, column: str) -> pa.Array:
    return pc.utf8_trim_whitespace(table[column].combine_chunks())


def _refuse_duplicates(keys: pd.Series, column: str, name: str) -> None:
    """Refuse a key held by more than one row; found by one sort of the ids (no hash table)."""
    values = keys.to_numpy()
    ordered = np.sort(values)
    if not (ordered[1:] == ordered[:-1]).any():
        return
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    equal = ordered[1:] == ordered[:-1]
    del ordered
    in_order = np.zeros(len(values), dtype=bool)
    in_order[1:] |= equal
    in_order[:-1] |= equal
    repeated = np.empty(len(values), dtype=bool)
    repeated[order] = in_order
    found = pd.unique(values[repeated])
    raise LabelsFileError(
        f"Labels {name}: {len(found)} {column} values appear more than once (e.g. "
        f"{found[:_SHOWN].tolist()}; rows {_rows(repeated)}). Each encounter has one outcome; "
        "keep one row per encounter."
    )


def _rows(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask)[:_SHOWN] + 1).tolist()
    return ", ".join(str(r) for r in rows) + (", ..." if mask.sum() > _SHOWN else "")

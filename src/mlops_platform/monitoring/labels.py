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

import csv
import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

OUTCOME: Final = "outcome"
RECORDED_AT: Final = "outcome_recorded_at"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_PARQUET_MAGIC: Final = b"PAR1"
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
    ``outcome_recorded_at`` (UTC timestamps) and the group columns (text)."""

    frame: pd.DataFrame
    path: str
    sha256: str
    outcome_column: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_labels(path: Path, contract: OutcomeContract) -> Labels:
    """Read, check and type the labels file at ``path``; raises ``LabelsFileError``."""
    path = Path(path)
    table = _read_text_table(path, contract)
    return Labels(
        frame=labels_frame(table, contract, str(path)),
        path=str(path),
        sha256=_sha256(path),
        outcome_column=(
            contract.code_column
            if contract.code_column in table.column_names
            else contract.binary_column
        ),
    )


def labels_frame(table: pa.Table, contract: OutcomeContract, name: str) -> pd.DataFrame:
    """Check a table of text columns and return the typed frame (see ``Labels``)."""
    columns = set(table.column_names)
    if contract.key_column not in columns:
        raise LabelsFileError(
            f"Labels {name} have no {contract.key_column!r} column (columns: "
            f"{sorted(columns)}); add the id of each scored encounter."
        )
    outcome_columns = [c for c in (contract.code_column, contract.binary_column) if c in columns]
    if len(outcome_columns) != 1:
        raise LabelsFileError(
            f"Labels {name} must have exactly one outcome column, {contract.code_column!r} "
            f"(codes {', '.join(contract.codes)}) or {contract.binary_column!r} (0/1); found "
            f"{outcome_columns or 'neither'}. Keep one."
        )
    if table.num_rows == 0:
        raise LabelsFileError(f"Labels {name} have a header but no data rows.")
    keys = _text(table, contract.key_column)
    frame = pd.DataFrame({contract.key_column: _integer_ids(keys, contract.key_column, name)})
    frame[OUTCOME] = _outcomes(table, outcome_columns[0], contract, name)
    _refuse_duplicates(frame[contract.key_column], contract.key_column, name)
    if contract.recorded_at_column in columns:
        frame[RECORDED_AT] = _timestamps(
            _text(table, contract.recorded_at_column), contract.recorded_at_column, name
        )
    for column in contract.group_columns:
        if column in columns:
            frame[column] = pd.Series(_text(table, column), dtype="string")
    return frame


def _read_text_table(path: Path, contract: OutcomeContract) -> pa.Table:
    if not path.is_file():
        raise LabelsFileError(
            f"Labels file {path} does not exist or is not a file; pass the CSV, CSV.gz or "
            "Parquet file of outcomes with --labels."
        )
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not magic:
        raise LabelsFileError(f"Labels file {path} is empty (0 bytes).")
    if magic.startswith(_ZIP_MAGIC):
        raise LabelsFileError(
            f"Labels file {path} is a zip archive; extract the CSV first (CSV, CSV.gz or "
            "Parquet are read)."
        )
    wanted = {
        contract.key_column,
        contract.code_column,
        contract.binary_column,
        contract.recorded_at_column,
        *contract.group_columns,
    }
    try:
        if magic == _PARQUET_MAGIC:
            present = [c for c in pq.read_schema(path).names if c in wanted]
            table = pq.read_table(path, columns=present)
            return pa.table(
                {
                    name: pc.cast(table[name], pa.string()).fill_null("")
                    for name in table.column_names
                }
            )
        opener = gzip.open if magic.startswith(_GZIP_MAGIC) else open
        with opener(path, "rb") as handle:  # type: ignore[operator]
            header = handle.readline().decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
        header_names = [c.strip() for c in next(csv.reader([header]), [])]
        present = [c for c in header_names if c in wanted]
        with opener(path, "rb") as handle:  # type: ignore[operator]
            return pa_csv.read_csv(
                handle,
                convert_options=pa_csv.ConvertOptions(
                    include_columns=present,
                    column_types=dict.fromkeys(present, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (OSError, EOFError, UnicodeDecodeError, pa.ArrowInvalid, ValueError) as error:
        if isinstance(error, LabelsFileError):
            raise
        detail = re.sub(r"(got \d+): .*", r"\1 (row text omitted)", str(error), flags=re.DOTALL)
        raise LabelsFileError(
            f"Labels file {path} is not a readable CSV, CSV.gz or Parquet file: {detail[:300]}"
        ) from error


def _text(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(pc.utf8_trim_whitespace(table[column]).to_numpy(zero_copy_only=False))


def _rows(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask)[:_SHOWN] + 1).tolist()
    return ", ".join(str(r) for r in rows) + (", ..." if mask.sum() > _SHOWN else "")


def _integer_ids(values: np.ndarray, column: str, name: str) -> np.ndarray:
    series = pd.Series(values, dtype="string")
    bad = ~series.str.fullmatch(_DIGITS.pattern).fillna(False).to_numpy(dtype=bool)
    if bad.any():
        raise LabelsFileError(
            f"Labels {name}: {int(bad.sum())} rows have a {column} that is not a non-negative "
            f"integer (rows {_rows(bad)}); every outcome needs the id of the scored encounter."
        )
    return series.astype("int64").to_numpy()


def _outcomes(table: pa.Table, column: str, contract: OutcomeContract, name: str) -> np.ndarray:
    values = _text(table, column)
    if column == contract.code_column:
        allowed, positive = contract.codes, contract.positive_codes
        rule = f"one of {', '.join(repr(c) for c in allowed)}"
    else:
        allowed, positive = ("0", "1"), ("1",)
        rule = "0 or 1"
    known = np.isin(values, allowed)
    if not known.all():
        unknown = pd.unique(values[~known])[:_SHOWN].tolist()
        raise LabelsFileError(
            f"Labels {name}: {int((~known).sum())} rows have a {column} outside {rule} "
            f"(found {unknown}; rows {_rows(~known)}). Map every outcome to a known code; "
            "an encounter whose outcome is not known yet is left out of the file."
        )
    return np.isin(values, positive).astype("int8")


def _refuse_duplicates(keys: pd.Series, column: str, name: str) -> None:
    repeated = keys.duplicated(keep=False).to_numpy()
    if repeated.any():
        ids = pd.unique(keys[repeated])[:_SHOWN].tolist()
        raise LabelsFileError(
            f"Labels {name}: {len(pd.unique(keys[repeated]))} {column} values appear more than "
            f"once (e.g. {ids}; rows {_rows(repeated)}). Each encounter has one outcome; keep "
            "one row per encounter."
        )


def _timestamps(values: np.ndarray, column: str, name: str) -> pd.Series:
    text = pd.Series(values, dtype="string")
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise LabelsFileError(
            f"Labels {name}: {int(bad.sum())} rows have a {column} that is not an ISO 8601 date "
            f"or timestamp (rows {_rows(bad)}); write e.g. 2026-03-01 or 2026-03-01T12:00:00Z, "
            f"or drop the {column} column."
        )
    return parsed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()

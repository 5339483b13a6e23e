"""Declarative contract of the raw UCI frame, with one readable error listing every problem.

The schema follows the frame that `readmission.core.data.read_encounters` returns: the columns of
`uci.COLUMNS`, integers as int64, every other column as a pandas string dtype holding the file's
literal values (`?` marks a missing value where the real file has them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from readmission.core import uci

# Inclusive bounds for the count columns: the UCI file's own range with headroom for other
# hospitals, tight enough to catch unit or parsing mistakes.
COUNT_LIMITS: Final[dict[str, tuple[int, int]]] = {
    "time_in_hospital": (1, 14),
    "num_lab_procedures": (0, 200),
    "num_procedures": (0, 10),
    "num_medications": (0, 150),
    "number_outpatient": (0, 100),
    "number_emergency": (0, 100),
    "number_inpatient": (0, 50),
    "number_diagnoses": (1, 30),
}
# Columns where the UCI file writes `?` for a missing value; every other column is always filled.
MISSING_ALLOWED_COLUMNS: Final = (
    "race",
    "weight",
    "payer_code",
    "medical_specialty",
    *uci.DIAGNOSIS_COLUMNS,
)
# A column of these may legitimately be all `?` in a small batch (weight is 97% `?`), so it
# counts as "entirely missing" only from this many rows on.
ALL_MISSING_MIN_ROWS: Final = 1000
# `\Z`, not `$`: Python's `$` also matches before a final newline, which would let "428\n" in.
ICD9_PATTERN: Final = (
    r"^(\?|[0-9]{1,3}(\.[0-9]{1,2})?|V[0-9]{2}(\.[0-9]{1,2})?|E[0-9]{3}(\.[0-9]{1,2})?)\Z"
)
SPECIALTY_PATTERN: Final = r"^(\?|[A-Za-z][A-Za-z&/\-]*)\Z"
MAX_ROWS_SHOWN: Final = 5  # offending rows and values named per failure
_FRAME: Final = "(frame)"  # the `column` of failures about the whole frame
_HINT: Final = (
    "Hint: the raw frame must have the UCI columns of readmission.core.uci.COLUMNS, integers as "
    "int64 and text as pandas strings with the file's literal values ('?' for missing, 'None' "
    "as text); readmission.core.data.read_encounters reads a file that way."
)
_PANDERA_CHECKS: Final = {
    "column_in_dataframe": ("column_present", "required column is missing"),
    "column_in_schema": ("known_column", "column is not part of the UCI layout"),
    "not_nullable": ("not_null", "no null values allowed (the UCI file writes '?' for missing)"),
    "field_uniqueness": ("unique", "values must be unique"),
}


class SchemaViolationError(ValueError):
    """Raw encounters break the contract; `failures` holds one dict per (column, check)."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


def raw_schema(require_target: bool = True) -> pa.DataFrameSchema:
    """The pandera schema of the raw UCI frame; inference input may omit `readmitted`."""
    columns: dict[str, pa.Column] = {
        uci.ENCOUNTER_ID: _integer(pa.Check.ge(1, error="at_least: >= 1"), unique=True),
        uci.PATIENT_ID: _integer(pa.Check.ge(1, error="at_least: >= 1")),
        "race": _categorical("race", uci.RACES),
        "gender": _categorical("gender", uci.GENDERS),
        "age": _categorical("age", uci.AGE_BANDS),
        "weight": _categorical("weight", uci.WEIGHT_BANDS),
        "payer_code": _categorical("payer_code", uci.PAYER_CODES),
        "medical_specialty": _text(
            "medical_specialty",
            pa.Check.str_matches(
                SPECIALTY_PATTERN,
                error="specialty_name: a specialty name of letters, '&', '/', '-', or '?'",
            ),
        ),
        "max_glu_serum": _categorical("max_glu_serum", uci.GLUCOSE_RESULTS),
        "A1Cresult": _categorical("A1Cresult", uci.A1C_RESULTS),
        "change": _categorical("change", uci.CHANGE_VALUES),
        "diabetesMed": _categorical("diabetesMed", uci.YES_NO),
        uci.TARGET_COLUMN: _categorical(
            uci.TARGET_COLUMN, uci.TARGET_VALUES, required=require_target
        ),
    }
    for name, codes in zip(
        uci.CODE_COLUMNS,
        (uci.ADMISSION_TYPE_IDS, uci.DISCHARGE_DISPOSITION_IDS, uci.ADMISSION_SOURCE_IDS),
        strict=True,
    ):
        columns[name] = _integer(
            pa.Check.isin(
                codes, error=f"code_table: a code of the UCI table ({min(codes)}-{max(codes)})"
            )
        )
    for name, (low, high) in COUNT_LIMITS.items():
        in_range = pa.Check.in_range(low, high, error=f"in_range: between {low} and {high}")
        columns[name] = _integer(in_range)
    for name in uci.DIAGNOSIS_COLUMNS:
        columns[name] = _text(
            name,
            pa.Check.str_matches(
                ICD9_PATTERN, error="icd9_code: an ICD-9 code like 428, 250.83, V57 or E888, or '?'"
            ),
        )
    for name in uci.MEDICATIONS:
        columns[name] = _categorical(name, uci.MEDICATION_STATES)
    return pa.DataFrameSchema(
        {name: columns[name] for name in uci.COLUMNS},
        checks=[pa.Check(_has_rows, error="not_empty: the frame must have at least one row")],
        strict=True,
        name="raw_encounters",
    )


def validate_encounters(df: pd.DataFrame, require_target: bool = True) -> pd.DataFrame:
    """Return `df` unchanged if it meets the raw contract, else raise `SchemaViolationError`.

    Every rule runs (lazy validation), so one error lists all problems at once.
    """
    failures, _ = _check(df, require_target)
    if failures:
        raise SchemaViolationError(_message(failures, len(df)), failures)
    return df


def invalid_row_mask(df: pd.DataFrame, require_target: bool = False) -> pd.Series:
    """True for each row that breaks a row-level rule, aligned with `df.index`.

    Problems of the whole frame (a missing column, a wrong dtype, no rows) cannot be blamed on
    rows, so they raise `SchemaViolationError` instead.
    """
    return _invalid_rows(df, require_target, row_numbers=None)


def validate_inference_encounters(df: pd.DataFrame) -> pd.DataFrame:
    """`validate_encounters` for scoring input: `readmitted` may be absent, and the rows named in
    the message are the frame's index labels (batch scoring labels each row with its data-row
    number in the input file, so a chunk of a large file names the file's rows)."""
    failures, _ = _check(df, require_target=False, row_numbers=_row_labels(df))
    if failures:
        raise SchemaViolationError(_message(failures, len(df)), failures)
    return df


def invalid_inference_rows(df: pd.DataFrame) -> pd.Series:
    """`invalid_row_mask` for scoring input; rows named in errors are the index labels."""
    return _invalid_rows(df, require_target=False, row_numbers=_row_labels(df))


def _row_labels(df: pd.DataFrame) -> np.ndarray:
    if not pd.api.types.is_integer_dtype(df.index.dtype):
        raise TypeError(
            f"Scoring input must be labelled with integer data-row numbers; the index has dtype "
            f"{df.index.dtype}. Set `frame.index` to the rows' numbers in the input file."
        )
    return df.index.to_numpy(dtype=np.int64)


def _invalid_rows(
    df: pd.DataFrame, require_target: bool, row_numbers: np.ndarray | None
) -> pd.Series:
    failures, bad_positions = _check(df, require_target, row_numbers)
    frame_level = [f for f in failures if not f["rows"]]
    if frame_level:
        raise SchemaViolationError(_message(frame_level, len(df)), frame_level)
    invalid = np.zeros(len(df), dtype=bool)
    invalid[bad_positions] = True
    return pd.Series(invalid, index=df.index)


def _check(
    df: pd.DataFrame, require_target: bool, row_numbers: np.ndarray | None = None
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Failures, one per (column, check), and the 0-based positions of every failing row.

    A row is named `row_numbers[position]`, or its 1-based position when that is None.
    """
    frame = df.reset_index(drop=True)
    try:
        raw_schema(require_target).validate(frame, lazy=True)
    except SchemaErrors as error:
        numbers = np.arange(1, len(frame) + 1) if row_numbers is None else row_numbers
        return _summarise(error.failure_cases, frame, numbers)
    return [], np.empty(0, dtype=np.int64)


def _summarise(
    cases: pd.DataFrame, frame: pd.DataFrame, row_numbers: np.ndarray
) -> tuple[list[dict[str, Any]], np.ndarray]:
    cases = cases.assign(check=cases["check"].astype(str))
    about_column = cases["check"].isin(["column_in_dataframe", "column_in_schema"])
    of_frame = cases["schema_context"] == "DataFrameSchema"
    column = (
        cases["column"]
        .astype(object)
        .where(~of_frame, cases["failure_case"].where(about_column, _FRAME))
    )
    cases = cases.assign(column=column)
    is_dtype = cases["check"].str.startswith("dtype(") | cases["check"].str.startswith(
        "string_dtype"
    )
    wrong_dtype = set(cases.loc[is_dtype, "column"])
    # Value rules on a column of the wrong type only repeat the dtype problem.
    cases = cases[is_dtype | ~cases["column"].isin(wrong_dtype)]
    located = cases[cases["index"].notna()]
    positions = np.unique(located["index"].astype(np.int64).to_numpy())
    failures = []
    for (name, check), group in cases.groupby(["column", "check"], sort=False):
        check_id, rule = _describe(check, name, frame)
        group = group[group["index"].notna()]
        positions_in_group = group["index"].astype(np.int64).to_numpy()
        group = group.assign(row=row_numbers[positions_in_group]).sort_values("row")
        rows = group["row"].drop_duplicates()
        failures.append(
            {
                "column": name,
                "check": check_id,
                "rule": rule,
                "count": len(rows),
                "rows": [int(r) for r in rows.head(MAX_ROWS_SHOWN)],
                "values": [_plain(v) for v in group["failure_case"].head(MAX_ROWS_SHOWN)],
            }
        )
    order = {name: i for i, name in enumerate((_FRAME, *uci.COLUMNS))}
    failures.sort(key=lambda f: (order.get(f["column"], len(order)), f["check"]))
    return failures, positions


def _describe(check: str, column: str, frame: pd.DataFrame) -> tuple[str, str]:
    """Stable check id and human rule for a pandera check label."""
    found = f" (found {frame[column].dtype})" if column in frame else ""
    if check in _PANDERA_CHECKS:
        return _PANDERA_CHECKS[check]
    if check.startswith("dtype("):
        expected = check.removeprefix("dtype(").removesuffix(")").strip("'")
        return "dtype", f"must have dtype {expected}{found}"
    check_id, _, rule = check.partition(": ")
    if check_id == "string_dtype":
        rule += found
    return (check_id, rule) if rule else (check, check)


def _message(failures: list[dict[str, Any]], n_rows: int) -> str:
    lines = [f"Raw encounters fail the UCI schema ({len(failures)} problem(s) in {n_rows} rows):"]
    for failure in failures:
        head = f"  - column {failure['column']!r}, rule {failure['check']!r} ({failure['rule']})"
        values = ", ".join(repr(v) for v in failure["values"])
        if failure["rows"]:
            rows = ", ".join(str(r) for r in failure["rows"])
            more = "e.g. data rows" if failure["count"] > len(failure["rows"]) else "data rows"
            lines.append(f"{head}: {failure['count']} row(s) fail; {more} {rows} hold {values}")
        else:
            lines.append(head)
    lines.append(_HINT)
    return "\n".join(lines)


def _integer(*checks: pa.Check, unique: bool = False) -> pa.Column:
    return pa.Column("int64", list(checks), nullable=False, unique=unique)


def _text(name: str, *checks: pa.Check, required: bool = True) -> pa.Column:
    """A string column: pandas string dtype, never null, and never entirely missing."""
    min_rows = ALL_MISSING_MIN_ROWS if name in MISSING_ALLOWED_COLUMNS else 1
    return pa.Column(
        None,
        [
            pa.Check(_is_string_dtype, error="string_dtype: must have a pandas string dtype"),
            pa.Check(
                _not_all_missing,
                min_rows=min_rows,
                error=f"not_all_missing: the column must hold some values (it is all '?', "
                f"empty or null{'' if min_rows == 1 else f' in {min_rows}+ rows'})",
                ignore_na=False,
            ),
            *checks,
        ],
        nullable=False,
        required=required,
    )


def _categorical(name: str, values: Iterable[str], required: bool = True) -> pa.Column:
    """A text column limited to `values`, plus `?` where the UCI file has missing values."""
    allowed = (*values, uci.MISSING) if name in MISSING_ALLOWED_COLUMNS else tuple(values)
    check = pa.Check.isin(allowed, error=f"allowed_values: one of {', '.join(allowed)}")
    return _text(name, check, required=required)


def _is_string_dtype(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype)


def _not_all_missing(series: pd.Series, *, min_rows: int) -> bool:
    if len(series) < min_rows:
        return True
    return bool((series.notna() & ~series.isin([uci.MISSING, ""])).any())


def _has_rows(frame: pd.DataFrame) -> bool:
    return len(frame) > 0


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value from a numpy scalar or pandas NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# -- The same rules, compiled for small frames (real-time requests) ----------------------------


class RulesNotCompiledError(ValueError):
    """The schema holds a rule `compile_rules` does not know; the pandera check must be used."""


class CompiledRules:
    """`raw_schema`'s rules read out of the pandera schema once and applied in plain Python.

    `accepts(frame)` is True only when `raw_schema(...).validate` would accept the frame: it runs
    every column, value and frame rule of the schema, and answers False for anything it is not
    sure of (another dtype, other columns, a null). A False answer means "ask pandera", which
    names each failure; pandera's validation costs ~60 ms per call whatever the rows, this one
    microseconds per value. Rules are taken from the schema object, not restated: a rule of a
    kind not listed here makes `compile_rules` raise, so the two cannot drift silently (and
    `tests/unit/test_schema_compiled.py` feeds both the same bad frames).
    """

    def __init__(self, schema: pa.DataFrameSchema) -> None:
        if not schema.strict or schema.unique or schema.index is not None:
            raise RulesNotCompiledError(
                f"schema {schema.name!r}: only strict schemas without frame-level uniqueness or "
                "index rules compile"
            )
        for check in schema.checks:
            if check._check_fn is not _has_rows:
                raise RulesNotCompiledError(f"schema {schema.name!r}: frame check {check} unknown")
        self.order = tuple(schema.columns)
        self.required = frozenset(n for n, c in schema.columns.items() if c.required)
        self.columns: dict[str, tuple[str | None, bool, list[Callable[[list[Any]], bool]]]] = {}
        for name, column in schema.columns.items():
            if column.nullable or column.regex or column.coerce:
                raise RulesNotCompiledError(f"column {name!r}: nullable/regex/coerce columns")
            dtype = None if column.dtype is None else str(column.dtype)
            if dtype not in (None, "int64"):
                raise RulesNotCompiledError(f"column {name!r}: dtype {dtype} does not compile")
            rules = [_compile_check(name, check) for check in column.checks]
            self.columns[name] = (dtype, bool(column.unique), rules)

    def accepts(self, frame: pd.DataFrame) -> bool:
        names = list(frame.columns)
        if len(set(names)) != len(names) or not set(names) <= set(self.order):
            return False
        if not self.required <= set(names) or len(frame) == 0:
            return False
        for name in names:
            dtype, unique, rules = self.columns[name]
            series = frame[name]
            if dtype == "int64":
                if series.dtype != np.dtype("int64"):
                    return False
            elif not isinstance(series.dtype, pd.StringDtype):
                return False  # every text column carries the string-dtype rule
            values = series.tolist()
            if any(v is None or v is pd.NA or v != v for v in values):  # v != v: NaN
                return False
            if unique and len(set(values)) != len(values):
                return False
            if not all(rule(values) for rule in rules):
                return False
        return True


def _compile_check(column: str, check: pa.Check) -> Callable[[list[Any]], bool]:
    """A predicate over a column's values (Python objects, no nulls) equal to one pandera check."""
    stats = check.statistics or {}
    if check._check_fn is _is_string_dtype:
        return lambda values: True  # the dtype is checked before the rules run
    if check._check_fn is _not_all_missing:
        min_rows = int(stats["min_rows"])
        return lambda values: (
            len(values) < min_rows or any(v not in (uci.MISSING, "") for v in values)
        )
    if check.name == "isin" and set(stats) == {"allowed_values"}:
        allowed = frozenset(stats["allowed_values"])
        return lambda values: all(v in allowed for v in values)
    if check.name == "in_range" and set(stats) == {
        "min_value",
        "max_value",
        "include_min",
        "include_max",
    }:
        low, high = stats["min_value"], stats["max_value"]
        if not (stats["include_min"] and stats["include_max"]):
            raise RulesNotCompiledError(f"column {column!r}: only inclusive ranges compile")
        return lambda values: all(low <= v <= high for v in values)
    if check.name == "greater_than_or_equal_to" and set(stats) == {"min_value"}:
        least = stats["min_value"]
        return lambda values: all(v >= least for v in values)
    if check.name == "str_matches" and set(stats) == {"pattern"}:
        # As pandas' `str.match`: anchored at the start only (the patterns end with `\Z`).
        pattern = re.compile(stats["pattern"])
        return lambda values: all(pattern.match(v) is not None for v in values)
    raise RulesNotCompiledError(
        f"column {column!r}: the check {check.name!r} ({check.error}) has no compiled form; add "
        "one to readmission.core.schema._compile_check or serve with the pandera check only"
    )


@functools.cache
def _inference_rules() -> CompiledRules:
    return CompiledRules(raw_schema(require_target=False))


def inference_rules_accept(df: pd.DataFrame) -> bool:
    """True only when `validate_inference_encounters(df)` accepts `df` (a compiled fast path).

    False means "not sure": call the validator, which accepts or names every failure.
    """
    return _inference_rules().accepts(df)

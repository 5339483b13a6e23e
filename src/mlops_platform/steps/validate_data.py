"""Shared data gate: the platform applies a declared pandera schema to every pipeline's input.

The pipeline names where its schema is defined (`schema_source`, the import path of a pandera
`DataFrameSchema` or of a function that returns one without arguments). The platform loads it and
refuses anything that is not a strict schema declaring at least one column, each with a dtype or
a check (a strict schema rejects every undeclared column, so a vacuous schema cannot pass real
data); it validates the frame itself with every rule evaluated and records the schema's
fingerprint. An arbitrary callable (`copy.copy`, a function returning its input) is refused.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Annotated, Any

import pandas as pd
from pandera.api.pandas.container import DataFrameSchema
from pandera.errors import SchemaErrors
from zenml import log_metadata, step

from mlops_platform.batch.contract import failure_message
from mlops_platform.names import PlatformArtifact
from mlops_platform.runtime.run_context import GovernedContext

MAX_EXAMPLES = 5


class DataValidationError(ValueError):
    """The input broke the schema; the message lists each failed rule with rows and values."""


class SchemaRefused(RuntimeError):
    """What a pipeline named as its schema is not a strict pandera schema."""


def load_schema(path: str) -> DataFrameSchema:
    """The strict pandera schema at import path `path`, or `SchemaRefused` saying why not."""
    try:
        module_name, _, attribute = path.rpartition(".")
        loaded: Any = getattr(importlib.import_module(module_name), attribute)
    except Exception as error:
        raise SchemaRefused(f"The data schema {path!r} cannot be imported: {error}") from error
    if callable(loaded) and not isinstance(loaded, DataFrameSchema):
        try:
            loaded = loaded()
        except Exception as error:
            raise SchemaRefused(
                f"The data schema {path!r} is a callable that does not build a schema without "
                f"arguments ({type(error).__name__}: {error}). Name a function returning a "
                "pandera DataFrameSchema."
            ) from error
    problem = schema_problem(loaded)
    if problem:
        raise SchemaRefused(f"The data schema {path!r} is refused: {problem}.")
    return loaded


def schema_problem(schema: object) -> str | None:
    """Why `schema` cannot be the platform's data gate (None: it can)."""
    if not isinstance(schema, DataFrameSchema):
        return (
            f"it gives a {type(schema).__name__}, not a pandera DataFrameSchema; the platform "
            "validates data only against a declared schema"
        )
    if schema.strict is not True:
        return "it is not strict (strict=True), so undeclared columns would pass unchecked"
    if not schema.columns:
        return "it declares no column"
    unchecked = [
        name
        for name, column in schema.columns.items()
        if column.dtype is None and not column.checks
    ]
    if unchecked:
        return f"columns {unchecked} declare neither a dtype nor a check"
    return None


def schema_fingerprint(schema: DataFrameSchema) -> str:
    """SHA-256 of the schema's columns, dtypes, checks and options, for the run record."""
    described = [
        (name, str(column.dtype), column.nullable, column.unique, [str(c) for c in column.checks])
        for name, column in schema.columns.items()
    ]
    text = repr((described, [str(c) for c in schema.checks], schema.strict))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def summarise_failures(cases: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per (column, rule) from pandera's failure cases, with counts and examples."""
    cases = cases.assign(check=cases["check"].astype(str))
    frame_level = cases["schema_context"] == "DataFrameSchema"
    column = cases["column"].astype(object).where(~frame_level, cases["failure_case"])
    cases = cases.assign(column=column.astype(str))
    failures = []
    for (name, check), group in cases.groupby(["column", "check"], sort=False):
        rows = group["index"].dropna()
        failures.append(
            {
                "column": name,
                "check": check,
                "count": len(group),
                "rows": [int(r) + 1 for r in rows.head(MAX_EXAMPLES)],
                "values": [str(v) for v in group["failure_case"].head(MAX_EXAMPLES)],
            }
        )
    return failures


@step
def validate_data(
    data: pd.DataFrame, schema_source: str
) -> Annotated[pd.DataFrame, PlatformArtifact.VALIDATED_DATA]:
    """Validate `data` against the strict pandera schema at import path `schema_source`."""
    GovernedContext.current()
    declared = load_schema(schema_source)
    record = {
        "schema": schema_source,
        "schema_sha256": schema_fingerprint(declared),
        "rows": len(data),
    }
    try:
        validated = declared.validate(data.reset_index(drop=True), lazy=True)
    except SchemaErrors as error:
        failures = summarise_failures(error.failure_cases)
        log_metadata(
            metadata={"data_validation": {**record, "passed": False, "failures": failures[:50]}}
        )
        raise DataValidationError(failure_message(failures, len(data))) from error
    log_metadata(metadata={"data_validation": {**record, "passed": True}})
    return validated

"""The data gate applies only a strict pandera schema, and names every broken rule."""

from __future__ import annotations

import pandera.pandas as pa
import pytest

from mlops_platform.steps.validate_data import (
    SchemaRefused,
    failure_message,
    load_schema,
    schema_problem,
    summarise_failures,
)
from readmission.core.schema import raw_schema
from tests.unit._ml_frames import raw_encounters


@pytest.mark.parametrize("path", ["copy.copy", "builtins.dict", "os.path.join", "no.such.module"])
def test_anything_but_a_schema_is_refused(path: str) -> None:
    with pytest.raises(SchemaRefused, match=path.replace(".", r"\.")):
        load_schema(path)


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (pa.DataFrameSchema({"a": pa.Column(int)}), "not strict"),
        (pa.DataFrameSchema({}, strict=True), "no column"),
        (pa.DataFrameSchema({"a": pa.Column()}, strict=True), "neither a dtype nor a check"),
    ],
)
def test_vacuous_schemas_are_refused(schema: pa.DataFrameSchema, reason: str) -> None:
    assert reason in (schema_problem(schema) or "")


def test_the_readmission_schema_is_accepted_and_catches_bad_rows() -> None:
    schema = load_schema("readmission.core.schema.raw_schema")
    frame = raw_encounters(60, 30, seed=5)
    schema.validate(frame, lazy=True)

    frame.loc[[3, 8], "gender"] = "Robot"
    with pytest.raises(pa.errors.SchemaErrors) as raised:
        raw_schema().validate(frame.drop(columns="num_medications"), lazy=True)
    failures = summarise_failures(raised.value.failure_cases)
    message = failure_message(failures, len(frame))
    assert "'gender'" in message and "'Robot'" in message and "rows 4, 9" in message
    assert "num_medications" in message

"""The compiled request rules give pandera's verdict on the same frames (they cannot drift).

Real-time scoring accepts a request when `inference_rules_accept` says so and asks pandera
otherwise; this feeds both the same valid and broken frames and requires the same verdict on each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _raw_frames import raw_frame

from readmission.core import uci
from readmission.core.schema import (
    ALL_MISSING_MIN_ROWS,
    COUNT_LIMITS,
    CompiledRules,
    RulesNotCompiledError,
    SchemaViolationError,
    inference_rules_accept,
    raw_schema,
    validate_inference_encounters,
)

# Values a caller might send, good and bad, per kind of column.
TEXT_VALUES = (
    "?",
    "",
    " ",
    "Caucasian",
    "caucasian",
    "Caucasian ",
    "Female",
    "[70-80)",
    "[70-80) ",
    "No",
    "Steady",
    "Up",
    "None",
    "none",
    ">8",
    "428",
    "428\n",
    "250.83",
    "250.831",
    "V57",
    "V5",
    "E888",
    "E88",
    "4280",
    "Cardiology",
    "Surgery-General",
    "Pediatrics-Endocrinology",
    "Cardiology1",
    "1Cardiology",
    "MC",
    "ZZ",
    "Ⅳ",
    "٤٢٨",
    "NO",
    "<30",
)
INTEGER_VALUES = (-1, 0, 1, 2, 3, 8, 9, 10, 14, 15, 25, 29, 30, 31, 50, 51, 100, 101, 150, 200, 201)


def _verdicts(frame: pd.DataFrame) -> tuple[bool, bool]:
    try:
        validate_inference_encounters(frame)
        slow = True
    except SchemaViolationError:
        slow = False
    return inference_rules_accept(frame), slow


def _base(rows: int, seed: int) -> pd.DataFrame:
    frame = raw_frame(300, seed=11).iloc[seed : seed + rows].reset_index(drop=True)
    return frame.drop(columns=[uci.TARGET_COLUMN])


def test_compiled_rules_agree_with_pandera_on_mutated_frames() -> None:
    rng = np.random.default_rng(17)
    text_columns = [c for c in uci.COLUMNS if c not in uci.INTEGER_COLUMNS]
    text_columns.remove(uci.TARGET_COLUMN)
    agreed = {True: 0, False: 0}
    for case in range(160):
        frame = _base(int(rng.integers(1, 4)), case % 200)
        for _ in range(int(rng.integers(0, 3))):
            row = int(rng.integers(0, len(frame)))
            if rng.random() < 0.5:
                column = text_columns[int(rng.integers(0, len(text_columns)))]
                frame.loc[row, column] = TEXT_VALUES[int(rng.integers(0, len(TEXT_VALUES)))]
            else:
                column = uci.INTEGER_COLUMNS[int(rng.integers(0, len(uci.INTEGER_COLUMNS)))]
                frame.loc[row, column] = INTEGER_VALUES[int(rng.integers(0, len(INTEGER_VALUES)))]
        fast, slow = _verdicts(frame)
        assert fast == slow, (case, frame.to_dict(orient="records"))
        agreed[fast] += 1
    # Both verdicts occur often, so the comparison says something about each.
    assert agreed[True] >= 20 and agreed[False] >= 40, agreed


@pytest.mark.parametrize(
    "breakage",
    [
        "empty",
        "repeated_id",
        "extra_column",
        "missing_column",
        "float_counts",
        "object_text",
        "null_text",
        "all_missing_specialty",
        "with_target",
        "bad_target",
        "newline_code",
        "newline_specialty",
    ],
)
def test_compiled_rules_agree_on_frame_level_breakage(breakage: str) -> None:
    frame = _base(3, 5)
    if breakage == "empty":
        frame = frame.iloc[0:0]
    elif breakage == "repeated_id":
        frame.loc[2, uci.ENCOUNTER_ID] = frame.loc[0, uci.ENCOUNTER_ID]
    elif breakage == "extra_column":
        frame["note"] = "x"
    elif breakage == "missing_column":
        frame = frame.drop(columns=["age"])
    elif breakage == "float_counts":
        frame["time_in_hospital"] = frame["time_in_hospital"].astype("float64")
    elif breakage == "object_text":
        frame["race"] = frame["race"].astype(object)
    elif breakage == "null_text":
        frame.loc[1, "race"] = None
    elif breakage == "all_missing_specialty":
        frame["gender"] = "?"
    elif breakage == "with_target":
        frame[uci.TARGET_COLUMN] = pd.Series(["NO", "<30", ">30"], dtype=frame["race"].dtype)
    elif breakage == "newline_code":
        frame.loc[0, "diag_1"] = "428\n"  # Python's `$` would match before a final newline
    elif breakage == "newline_specialty":
        frame.loc[0, "medical_specialty"] = "Cardiology\n"
    elif breakage == "bad_target":
        frame[uci.TARGET_COLUMN] = pd.Series(["NO", "yes", ">30"], dtype=frame["race"].dtype)
    fast, slow = _verdicts(frame)
    assert fast == slow
    if breakage != "with_target":
        assert not slow


def test_all_missing_counts_only_from_the_schema_row_floor() -> None:
    rows = raw_frame(2000, seed=3).drop(columns=[uci.TARGET_COLUMN])
    big = rows.iloc[:ALL_MISSING_MIN_ROWS].reset_index(drop=True)
    big["weight"] = "?"
    small = big.iloc[: ALL_MISSING_MIN_ROWS - 1]
    assert _verdicts(big) == (False, False)
    assert _verdicts(small) == (True, True)


def test_a_rule_of_an_unknown_kind_does_not_compile() -> None:
    import pandera.pandas as pa

    schema = raw_schema(require_target=False)
    low, high = COUNT_LIMITS["time_in_hospital"]
    column = schema.columns["time_in_hospital"]
    changed = schema.update_column(
        "time_in_hospital",
        checks=[*column.checks, pa.Check(lambda s: s % 2 == 0, error="even: an even number")],
    )
    assert low < high
    with pytest.raises(RulesNotCompiledError, match="even"):
        CompiledRules(changed)

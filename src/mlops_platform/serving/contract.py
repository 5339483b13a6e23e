"""What a team tells the platform about real-time scoring, and the request/response models.

The serving contract wraps the batch contract, so a served encounter is read, checked and scored by
the same functions as a row of a batch file: the same reader turns text columns into the model's
raw frame, the same validator applies the same rules, the same model artifact and context binder
are used. What serving adds: the request layout (which columns are integers, which are text), the
size limit of one request, and where the prediction log goes.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from mlops_platform.batch.contract import BatchContract

REQUEST_ID_COLUMN: Final = "request_id"
SHADOW_COLUMN: Final = "shadow"
DEFAULT_MAX_ENCOUNTERS: Final = 1000
DEFAULT_MAX_BODY_BYTES: Final = 4 << 20
DEFAULT_MAX_BATCH_ROWS: Final = 256
DEFAULT_BATCH_LINGER_SECONDS: Final = 0.005
DEFAULT_SHADOW_BATCH_ROWS: Final = 64
DEFAULT_SHADOW_GATHER_SECONDS: Final = 1.0


class ServingContract(BaseModel):
    """The batch contract plus the request layout and limits of the served endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: BatchContract
    integer_columns: tuple[str, ...] = Field(min_length=1)
    text_columns: tuple[str, ...] = ()
    # Columns a caller may leave out (for example the outcome, unknown at discharge).
    optional_columns: tuple[str, ...] = ()
    # Import path of `frame -> bool`, True only when `batch.validator` would accept the frame
    # (a compiled form of the same rules, proven equal by the team's tests). A request it accepts
    # skips the validator's fixed cost; anything else goes to the validator, which names each
    # failure. None: every request goes to the validator.
    request_check: str | None = None
    # Columns through which one row's score may depend on other rows of the scored frame (the
    # readmission features read a patient's other encounters in the frame as history). Concurrent
    # requests are scored in one batch only when they share no value of these columns. None: a
    # row's score may depend on any other row, so every request is scored alone (no batching).
    score_apart_by: tuple[str, ...] | None = None
    max_batch_rows: Annotated[int, Field(ge=1, le=10_000)] = DEFAULT_MAX_BATCH_ROWS
    # When the last batch had company, the next one waits up to this long for as many callers
    # (`MicroBatcher`): a model call costs mostly the same for 1 row as for 8 (readmission:
    # ~20 ms of CPU), so fuller batches cost less per request. A lone caller never waits.
    batch_linger_seconds: Annotated[float, Field(ge=0, le=1)] = DEFAULT_BATCH_LINGER_SECONDS
    # Shadow scoring (`--shadow`) is not on the caller's time, so it gathers requests for up to
    # `shadow_gather_seconds` or `shadow_batch_rows` rows and scores them in one model call: a
    # call's cost is mostly fixed (readmission: ~12 ms for 1 row, ~19 ms for 64 rows; frames above
    # 64 rows take the features' batch path, ~70 ms for 128), so fewer, fuller calls take less of
    # the interpreter from the requests (at 100 requests/s, 64-row calls every ~0.6 s instead of
    # 25-row calls every 0.25 s). Nothing queued is lost on a normal stop.
    shadow_batch_rows: Annotated[int, Field(ge=1, le=10_000)] = DEFAULT_SHADOW_BATCH_ROWS
    shadow_gather_seconds: Annotated[float, Field(ge=0, le=5)] = DEFAULT_SHADOW_GATHER_SECONDS
    max_encounters: Annotated[int, Field(ge=1, le=100_000)] = DEFAULT_MAX_ENCOUNTERS
    max_body_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_BODY_BYTES

    @model_validator(mode="after")
    def _ids_are_integer_columns(self) -> ServingContract:
        missing = [c for c in self.batch.id_columns if c not in self.integer_columns]
        if missing:
            raise ValueError(f"id columns {missing} must be among the integer columns")
        unknown = [c for c in self.score_apart_by or () if c not in self.columns]
        if unknown:
            raise ValueError(f"score_apart_by columns {unknown} are not request columns")
        overlap = set(self.integer_columns) & set(self.text_columns)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are both integer and text columns")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.integer_columns, *self.text_columns)


def encounter_model(contract: ServingContract) -> type[BaseModel]:
    """One encounter: every column of the layout, integers as int, the rest as text.

    Extra keys are refused, so a misspelt column is named instead of silently ignored.
    """
    fields: dict[str, Any] = {}
    for name in contract.columns:
        kind: Any = int if name in contract.integer_columns else str
        if name in contract.optional_columns:
            fields[name] = (kind | None, None)
        else:
            fields[name] = (kind, ...)
    return create_model(
        "Encounter",
        __config__=ConfigDict(extra="forbid", strict=False, coerce_numbers_to_str=False),
        **fields,
    )


def request_model(contract: ServingContract) -> type[BaseModel]:
    """`{"encounters": [...]}`: one to `max_encounters` encounters."""
    encounter = encounter_model(contract)
    return create_model(
        "ScoringRequest",
        __config__=ConfigDict(extra="forbid"),
        encounters=(
            list[encounter],  # type: ignore[valid-type]
            Field(min_length=1, max_length=contract.max_encounters),
        ),
    )


def response_model(contract: ServingContract) -> type[BaseModel]:
    """One prediction per encounter, in request order, under the request id."""
    batch = contract.batch
    prediction = create_model(
        "Prediction",
        **{batch.key_column: (int, ...)},
        **{batch.score_column: (float, ...)},
        risk_band=(str, ...),
        model_name=(str, ...),
        model_version=(str, ...),
        model_stage=(str, ...),
    )
    return create_model(
        "ScoringResponse",
        request_id=(str, ...),
        predictions=(list[prediction], ...),  # type: ignore[valid-type]
    )

"""What a team tells the platform about its batch scoring (contract) and what a caller asks (request)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

PREDICTION_METADATA_COLUMNS = (
    "model_name",
    "model_version",
    "model_stage",
    "inference_run_id",
    "scored_at",
)
RISK_BAND_COLUMN = "risk_band"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class BatchArtifact(StrEnum):
    """Artifacts of batch scoring, linked to the model version that scored the batch."""

    DRIFT_REFERENCE = "drift_reference"
    PREDICTIONS = "batch_predictions"
    MANIFEST = "batch_manifest"
    DRIFT_REPORT = "drift_report"


class BatchContractError(ValueError):
    """A contract or request is inconsistent, or the team's code broke its side of the contract."""


# The risk bands every prediction carries: below the threshold, then at or above it.
RISK_BANDS: tuple[str, str] = ("standard", "high")


class BatchContract(BaseModel):
    """How to turn a team's input into model inputs and predictions.

    The callables are import paths, loaded inside the step, so the platform never imports the
    team's package:

    - `reader(table, *, source, first_row)`: a `pyarrow.Table` of text columns (as read from the
      file, one chunk) to the model's raw frame; raises `ValueError` naming the rows it rejects,
      with a `columns` attribute listing the refused columns when it knows them (real-time
      scoring names those to the caller, never the values).
    - `validator(frame)`: returns the frame or raises `ValueError` with a `failures` list; rows in
      its message are the frame's index labels, which the platform sets to data-row numbers.
    - `invalid_rows(frame)`: a boolean Series of rows that break a row-level rule; raises
      `ValueError` for problems of the whole frame (used by `--quarantine`).
    - `bind_context(model, context)` (optional, with `context_artifact`): called once before the
      first chunk with the loaded model and that artifact of the model version, for data the
      model draws on but must not carry in its file (for example patient history).

    `context_artifact` and `reference_artifact` are outputs of the version's *training run* (a
    step of the training pipeline made or reused them): scoring reads them from that run, as its
    signed output list names them (`trust.outputs.version_artifact`), never through the version's
    links, so an artifact only linked to the version afterwards is not found.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader: str
    validator: str
    invalid_rows: str
    # Copied to every prediction row. The first is the unique key: sharding and duplicate
    # detection use it, and it must be an integer.
    id_columns: tuple[str, ...] = Field(min_length=1)
    drop_columns: tuple[str, ...] = ()  # removed before scoring (outcomes, labels)
    model_artifact: str
    reference_artifact: str = BatchArtifact.DRIFT_REFERENCE.value
    score_column: str
    operating_threshold: Annotated[float, Field(gt=0.0, lt=1.0)]
    # Band of a score below the threshold, then of a score at or above it: the platform's own
    # (RISK_BANDS), which people and downstream systems read; a pipeline cannot rename or swap
    # them (swapped, every flagged patient would read "standard").
    band_labels: tuple[str, str] = RISK_BANDS
    context_artifact: str | None = None
    bind_context: str | None = None

    @model_validator(mode="after")
    def _platform_bands(self) -> BatchContract:
        if tuple(self.band_labels) != RISK_BANDS:
            raise ValueError(
                f"band_labels {tuple(self.band_labels)!r} are not the platform's {RISK_BANDS!r} "
                f"({RISK_BANDS[0]!r} below the version's operating threshold, {RISK_BANDS[1]!r} "
                "at or above it); leave them out of the contract"
            )
        return self

    @model_validator(mode="after")
    def _context_named_with_its_binder(self) -> BatchContract:
        if (self.context_artifact is None) != (self.bind_context is None):
            raise ValueError(
                "context_artifact and bind_context go together: name the model version's "
                "artifact and the function that hands it to the model, or neither"
            )
        return self

    def risk_band(self, is_high: bool) -> str:
        return self.band_labels[1] if is_high else self.band_labels[0]

    @property
    def key_column(self) -> str:
        return self.id_columns[0]

    def prediction_columns(self) -> tuple[str, ...]:
        return (*self.id_columns, self.score_column, RISK_BAND_COLUMN, *PREDICTION_METADATA_COLUMNS)


# Fibonacci hashing: 2**64 divided by the golden ratio, odd, so multiplying permutes 64-bit keys.
_KEY_MIXER: Final = np.uint64(0x9E3779B97F4A7C15)


def shard_numbers(keys: np.ndarray, count: int) -> np.ndarray:
    """The shard (0 to ``count`` - 1) of each integer key: its top 32 bits after multiplying by
    `_KEY_MIXER` (mod 2**64), taken mod ``count``. Keys that share a pattern (the UCI file's
    encounter ids are all even, so ``key % 2`` put every row in shard 0) still spread evenly,
    and a key's shard depends only on the key and the count."""
    mixed = np.asarray(keys).astype(np.int64).view(np.uint64) * _KEY_MIXER
    return ((mixed >> np.uint64(32)) % np.uint64(count)).astype(np.int64)


class Shard(BaseModel):
    """Shard `index` of `count`: the rows whose integer key hashes to `index` (`shard_numbers`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0)] = 0
    count: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _index_below_count(self) -> Shard:
        if self.index >= self.count:
            raise ValueError(
                f"shard index {self.index} must be below the shard count {self.count} "
                f"(shards are numbered 0 to {self.count - 1})"
            )
        return self

    def holds(self, keys: np.ndarray) -> np.ndarray:
        """Per key, whether its row belongs to this shard."""
        return shard_numbers(keys, self.count) == self.index

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"i/n"` as on the command line, e.g. `"0/4"`."""
        match = _SHARD.match(text)
        if not match:
            raise BatchContractError(
                f"--shard must look like i/n (e.g. 0/4 for the first of four shards); got {text!r}."
            )
        try:
            return cls(index=int(match[1]), count=int(match[2]))
        except ValueError as error:
            raise BatchContractError(f"--shard {text}: {error}") from error

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class BatchRequest(BaseModel):
    """One scoring job: which file, where results go, which stage and how to stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_path: str = Field(min_length=1)
    output_dir: str = Field(min_length=1)
    stage: str = Field(min_length=1)
    chunk_rows: Annotated[int, Field(ge=100, le=1_000_000)] = 50_000
    shard: Shard = Shard()
    quarantine: bool = False
    # Chunks scored at once by a thread pool; 2 overlaps one chunk's Python work with the
    # other's model evaluation, which releases the GIL.
    workers: Annotated[int, Field(ge=1, le=8)] = 2


class DriftReferenceContract(BaseModel):
    """Which raw input columns the drift monitor profiles, and what to drop before scoring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    drop_columns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _columns_given(self) -> DriftReferenceContract:
        if not self.numeric and not self.categorical:
            raise ValueError("a drift reference needs at least one monitored column")
        return self


def load_callable(path: str) -> Callable[..., Any]:
    """The function at import path `package.module.name` (the contract's callables)."""
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise BatchContractError(
            f"Cannot load {path!r} named by the batch contract: {error}. Use the import path of "
            "a function, e.g. 'package.module.function'."
        ) from error
    if not callable(found):
        raise BatchContractError(f"{path!r} named by the batch contract is not callable.")
    return found


def public_failures(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule failures without the offending values, which may be patient data."""
    return [{k: v for k, v in failure.items() if k != "values"} for failure in failures]


def failure_message(failures: list[dict[str, Any]], n_rows: int) -> str:
    lines = [f"The data fails its schema ({len(failures)} problem(s) in {n_rows} rows):"]
    for failure in failures:
        line = f"  - column {failure['column']!r}, rule {failure['check']!r}"
        if failure["rows"]:
            line += (
                f": {failure['count']} case(s), e.g. data rows "
                f"{', '.join(map(str, failure['rows']))} hold "
                f"{', '.join(repr(v) for v in failure['values'])}"
            )
        lines.append(line)
    lines.append("Fix the input file (or the producing system) and run again.")
    return "\n".join(lines)

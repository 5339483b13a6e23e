"""Score an input file chunk by chunk: convert, validate, score, monitor drift, write Parquet.

Memory stays flat as the input grows: at most `workers + 2` chunks are held at once (being
scored, queued, and being written), drift is a
fixed set of counts plus a bounded sample, and predictions are appended to the Parquet file one
row group per chunk. The only state that grows with the input is the set of keys already scored
(8 bytes per row, 40 MB at 5 million rows), needed to refuse a key that appears twice.

Chunks are converted, validated and scored by a small thread pool while the main thread reads
the next chunk and writes the previous one in input order, so the output does not depend on the
number of workers. Model evaluation (OpenMP in scikit-learn) releases the GIL, which is where two
workers overlap on a two-core machine. Each worker is limited to one OpenMP thread: on a shared
machine two OpenMP threads per prediction spin-wait for a busy core, and the model took twice the
wall time and 2.1 times the CPU of one thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from mlops_platform.batch.contract import (
    RISK_BAND_COLUMN,
    BatchContract,
    BatchContractError,
    BatchRequest,
    load_callable,
    public_failures,
)
from mlops_platform.batch.reader import BatchInput, BatchInputError, Chunk
from mlops_platform.evaluation.drift import DriftAccumulator

INPUT_ROW_COLUMN: Final = "input_row"
REJECTED_FOR_COLUMN: Final = "rejected_for"
SCHEMA_RULE: Final = "schema rule"
MAX_ROWS_NAMED: Final = 5

Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class PredictionStamp:
    """What every prediction row records about the model and run that produced it."""

    model_name: str
    model_version: str
    model_stage: str
    inference_run_id: str


@dataclass
class ScoringSummary:
    """Counts and timings of one scored input (before drift and publication)."""

    input_path: str
    input_format: str
    input_compressed: bool
    input_bytes: int
    input_sha256: str = ""
    chunks: int = 0
    rows_read: int = 0
    rows_in_shard: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rows_high_risk: int = 0
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": {
                "path": self.input_path,
                "format": self.input_format,
                "compressed": self.input_compressed,
                "bytes": self.input_bytes,
                "sha256": self.input_sha256,
            },
            "rows": {
                "read": self.rows_read,
                "in_shard": self.rows_in_shard,
                "scored": self.rows_scored,
                "rejected": self.rows_rejected,
                "high_risk": self.rows_high_risk,
                "rejected_by_rule": dict(self.rejected_by_rule),
            },
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds else None,
        }


@dataclass(frozen=True)
class _TeamCode:
    reader: Callable[..., pd.DataFrame]
    validator: Callable[[pd.DataFrame], pd.DataFrame]
    invalid_rows: Callable[[pd.DataFrame], pd.Series]

    @classmethod
    def load(cls, contract: BatchContract) -> _TeamCode:
        return cls(
            reader=load_callable(contract.reader),
            validator=load_callable(contract.validator),
            invalid_rows=load_callable(contract.invalid_rows),
        )


@dataclass(frozen=True)
class _Scored:
    """One chunk after the worker: valid rows with scores, and the rows it rejected."""

    chunk: Chunk
    rows_in_shard: int
    frame: pd.DataFrame
    scores: np.ndarray
    rejected_positions: np.ndarray  # positions in chunk.table
    failures: list[dict[str, Any]]


class _SeenKeys:
    """Sorted keys of the rows scored so far, to refuse a key that appears again later."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)

    def repeated(self, keys: np.ndarray) -> np.ndarray:
        if not self._sorted.size:
            return np.zeros(keys.size, dtype=bool)
        positions = np.searchsorted(self._sorted, keys)
        inside = positions < self._sorted.size
        found = np.zeros(keys.size, dtype=bool)
        found[inside] = self._sorted[positions[inside]] == keys[inside]
        return found

    def add(self, keys: np.ndarray) -> None:
        new = np.sort(keys)
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)


class BatchScorer:
    """Streams one input through the team's reader, validator and model."""

    def __init__(
        self,
        contract: BatchContract,
        model: Any,
        stamp: PredictionStamp,
        drift: DriftAccumulator,
        request: BatchRequest,
    ) -> None:
        self.contract = contract
        self.model = model
        self.stamp = stamp
        self.drift = drift
        self.request = request
        self._code = _TeamCode.load(contract)
        self._seen = _SeenKeys()
        self._writer: pq.ParquetWriter | None = None
        self._quarantine: pq.ParquetWriter | None = None
        self._predictions_path = Path()
        self._quarantine_path = Path()

    def score(
        self,
        predictions_path: Path,
        quarantine_path: Path,
        progress: Progress | None = None,
    ) -> ScoringSummary:
        """Score the request's input into `predictions_path` (and rejected rows into
        `quarantine_path` when quarantining); raises `BatchInputError` on bad input.

        A scorer holds the state of one pass (writers, keys seen): score one input per scorer.
        """
        self._predictions_path, self._quarantine_path = predictions_path, quarantine_path
        started = time.perf_counter()
        with BatchInput(Path(self.request.input_path), self.request.chunk_rows) as source:
            summary = ScoringSummary(
                input_path=str(source.path),
                input_format=source.format,
                input_compressed=source.compressed,
                input_bytes=source.size_bytes,
            )
            try:
                self._run(source, summary, progress)
            finally:
                self._close()
            summary.input_sha256 = source.sha256
        summary.seconds = time.perf_counter() - started
        return summary

    def _run(self, source: BatchInput, summary: ScoringSummary, progress: Progress | None) -> None:
        workers = self.request.workers
        with ThreadPoolExecutor(workers, initializer=_one_openmp_thread) as pool:
            pending: deque[Future[_Scored]] = deque()
            try:
                for chunk in source.chunks():
                    pending.append(pool.submit(self._process, chunk))
                    if len(pending) > workers:
                        self._collect(pending.popleft().result(), summary)
                        if progress:
                            progress(summary.rows_read, source.fraction_read())
                while pending:
                    self._collect(pending.popleft().result(), summary)
                    if progress:
                        progress(summary.rows_read, source.fraction_read())
            finally:
                for future in pending:
                    future.cancel()

    def _process(self, chunk: Chunk) -> _Scored:
        """Worker: the team's conversion and validation, the shard filter, then the model."""
        name = self.request.input_path
        first, last = chunk.first_row, chunk.first_row + chunk.table.num_rows - 1
        try:
            frame = self._code.reader(chunk.table, source=name, first_row=first)
        except ValueError as error:
            raise BatchInputError(str(error), getattr(error, "failures", None)) from error
        if len(frame) != chunk.table.num_rows:
            raise BatchContractError(
                f"The contract's reader {self.contract.reader!r} returned {len(frame)} rows for "
                f"{chunk.table.num_rows}; it must keep every row, in order."
            )
        frame.index = pd.RangeIndex(first, last + 1)
        keys = self._keys(frame)
        shard = self.request.shard
        positions = np.arange(len(frame))
        if shard.count > 1:
            in_shard = shard.holds(keys)
            frame, positions = frame.loc[in_shard], positions[in_shard]
        invalid = np.zeros(len(frame), dtype=bool)
        failures: list[dict[str, Any]] = []
        if len(frame):
            try:
                self._code.validator(frame)
            except ValueError as error:
                failures = list(getattr(error, "failures", []))
                if not self.request.quarantine:
                    raise BatchInputError(
                        f"Input {name} breaks the schema in data rows {first:,}-{last:,}:\n{error}",
                        public_failures(failures),
                    ) from error
                invalid = self._invalid_rows(frame, name, first, last)
        valid = frame.loc[~invalid] if invalid.any() else frame
        scores = self._predict(valid) if len(valid) else np.empty(0, dtype="float64")
        return _Scored(chunk, len(frame), valid, scores, positions[invalid], failures)

    def _invalid_rows(self, frame: pd.DataFrame, name: str, first: int, last: int) -> np.ndarray:
        try:
            mask = self._code.invalid_rows(frame)
        except ValueError as error:
            raise BatchInputError(
                f"Input {name} cannot be scored (data rows {first:,}-{last:,}); --quarantine "
                f"sets aside rows that break a rule, not problems of the whole file:\n{error}",
                public_failures(list(getattr(error, "failures", []))),
            ) from error
        return np.asarray(mask, dtype=bool)

    def _keys(self, frame: pd.DataFrame) -> np.ndarray:
        key = self.contract.key_column
        if key not in frame.columns or not pd.api.types.is_integer_dtype(frame[key].dtype):
            found = frame[key].dtype if key in frame.columns else "absent"
            raise BatchContractError(
                f"The key column {key!r} (first of the contract's id_columns) must be an integer "
                f"column of the reader's frame; it is {found}."
            )
        return frame[key].to_numpy(dtype=np.int64)

    def _predict(self, frame: pd.DataFrame) -> np.ndarray:
        inputs = frame.drop(columns=list(self.contract.drop_columns), errors="ignore")
        scores = np.asarray(self.model.predict_proba(inputs)[:, 1], dtype="float64")
        if scores.shape != (len(frame),) or not np.all(np.isfinite(scores)):
            raise BatchContractError(
                f"The model returned {scores.shape} scores for {len(frame)} rows, or scores that "
                "are not finite; predict_proba must give one probability per row."
            )
        return scores

    def _collect(self, scored: _Scored, summary: ScoringSummary) -> None:
        """Main thread, in input order: refuse repeated keys, monitor drift, append rows."""
        frame, scores, rejected = scored.frame, scored.scores, scored.rejected_positions
        keys = frame[self.contract.key_column].to_numpy(dtype=np.int64)
        repeated = self._seen.repeated(keys) | _repeated_within(keys)
        rejected_for = [SCHEMA_RULE] * rejected.size
        if repeated.any():
            rows = frame.index.to_numpy()[repeated]
            if not self.request.quarantine:
                raise BatchInputError(_duplicate_message(self.request, self.contract, rows))
            chunk_positions = rows - scored.chunk.first_row
            rejected = np.concatenate([rejected, chunk_positions])
            rejected_for += [f"duplicate {self.contract.key_column}"] * int(repeated.sum())
            frame, scores, keys = frame.loc[~repeated], scores[~repeated], keys[~repeated]
        self._seen.add(keys)
        self.drift.update(frame, scores)
        self._write_predictions(frame, scores)
        if rejected.size:
            self._write_quarantine(scored.chunk, rejected, rejected_for)
        for failure in scored.failures:
            key = f"{failure['column']}: {failure['check']}"
            summary.rejected_by_rule[key] = summary.rejected_by_rule.get(key, 0) + int(
                failure["count"]
            )
        if repeated.any():
            key = f"{self.contract.key_column}: repeated"
            summary.rejected_by_rule[key] = summary.rejected_by_rule.get(key, 0) + int(
                repeated.sum()
            )
        summary.chunks += 1
        summary.rows_read += scored.chunk.table.num_rows
        summary.rows_in_shard += scored.rows_in_shard
        summary.rows_scored += len(frame)
        summary.rows_rejected += int(rejected.size)
        summary.rows_high_risk += int(np.sum(scores >= self.contract.operating_threshold))

    def _write_predictions(self, frame: pd.DataFrame, scores: np.ndarray) -> None:
        table = self._prediction_table(frame, scores)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._predictions_path, table.schema)
        if table.num_rows:
            self._writer.write_table(table)

    def _prediction_table(self, frame: pd.DataFrame, scores: np.ndarray) -> pa.Table:
        contract, stamp, n = self.contract, self.stamp, len(frame)
        scored_at = np.full(n, np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us"))
        columns: dict[str, pa.Array] = {
            name: pa.array(frame[name].to_numpy()) for name in contract.id_columns
        }
        columns[contract.score_column] = pa.array(scores, pa.float64())
        bands = np.where(
            scores >= contract.operating_threshold, contract.band_labels[1], contract.band_labels[0]
        )
        columns[RISK_BAND_COLUMN] = pa.array(bands, pa.string())
        for name, value in (
            ("model_name", stamp.model_name),
            ("model_version", stamp.model_version),
            ("model_stage", stamp.model_stage),
            ("inference_run_id", stamp.inference_run_id),
        ):
            columns[name] = pa.array(np.full(n, value, dtype=object), pa.string())
        columns["scored_at"] = pa.array(scored_at, pa.timestamp("us", tz="UTC"))
        return pa.table(columns)

    def _write_quarantine(self, chunk: Chunk, positions: np.ndarray, reasons: list[str]) -> None:
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        rows = chunk.table.take(pa.array(positions))
        rows = rows.append_column(INPUT_ROW_COLUMN, pa.array(positions + chunk.first_row))
        rows = rows.append_column(
            REJECTED_FOR_COLUMN, pa.array([reasons[i] for i in order], pa.string())
        )
        if self._quarantine is None:
            self._quarantine = pq.ParquetWriter(self._quarantine_path, rows.schema)
        self._quarantine.write_table(rows)

    def _close(self) -> None:
        for writer in (self._writer, self._quarantine):
            if writer is not None:
                writer.close()


def _one_openmp_thread() -> None:
    """Thread-pool initializer: each worker's model evaluation uses one OpenMP thread."""
    threadpool_limits(limits=1, user_api="openmp")


def _repeated_within(keys: np.ndarray) -> np.ndarray:
    """Every copy after the first of a key repeated inside one chunk."""
    _, first = np.unique(keys, return_index=True)
    repeated = np.ones(keys.size, dtype=bool)
    repeated[first] = False
    return repeated


def _duplicate_message(request: BatchRequest, contract: BatchContract, rows: np.ndarray) -> str:
    shown = ", ".join(f"{row:,}" for row in rows[:MAX_ROWS_NAMED])
    more = f" and {rows.size - MAX_ROWS_NAMED} more" if rows.size > MAX_ROWS_NAMED else ""
    return (
        f"Input {request.input_path}: column {contract.key_column!r}, rule 'unique' (each "
        f"encounter is scored once): data rows {shown}{more} repeat a {contract.key_column} of an "
        "earlier row. Remove the duplicates, or pass --quarantine to set them aside."
    )

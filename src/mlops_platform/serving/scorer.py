"""Score the encounters of one request with the batch contract's reader, validator and model.

Pure of ZenML: the service hands it a loaded, verified model. A request is turned into the same
table of text columns a batch chunk is, so the team's reader converts it and the team's validator
checks it exactly as for a file, and the model sees the same raw frame; a served risk equals the
batch risk of the same encounter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_platform.batch.contract import (
    PREDICTION_METADATA_COLUMNS,
    RISK_BAND_COLUMN,
    BatchContractError,
    load_callable,
)
from mlops_platform.serving.contract import REQUEST_ID_COLUMN, SHADOW_COLUMN, ServingContract

REQUEST_SOURCE: Final = "request"
FRAME_FIELD: Final = "<request>"


class RequestRejected(ValueError):
    """The request breaks a rule; `errors` are FastAPI-style entries naming field and rule."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True)
class ServedModel:
    """A verified, loaded model and what every prediction it makes records about it."""

    model: Any
    model_name: str
    model_version: str
    model_stage: str
    model_version_id: str


@dataclass(frozen=True)
class ReadRequests:
    """Several requests read and checked together: one frame, each request's rows in it.

    `spans[i]` is request i's `(start, stop)` rows of `frame` (request order within), or None
    when request i was refused; `rejections[i]` then says why. `text` is the text table the
    frame was read from (same rows, same order; None when the requests had different columns),
    so the same rows can be read again (the shadow scorer reads many batches' rows in one call)
    without concatenating frames."""

    frame: pd.DataFrame
    spans: list[tuple[int, int] | None]
    rejections: dict[int, RequestRejected]
    text: pa.Table | None = None


def log_columns(contract: ServingContract) -> tuple[str, ...]:
    """The prediction log's columns: those of batch results, then the request id and the flag
    that marks shadow scores (never returned to a caller)."""
    return (*contract.batch.prediction_columns(), REQUEST_ID_COLUMN, SHADOW_COLUMN)


class RealtimeScorer:
    """The team's reader, validator and model applied to the encounters of one request."""

    def __init__(self, contract: ServingContract) -> None:
        self.contract = contract
        self._reader: Callable[..., pd.DataFrame] = load_callable(contract.batch.reader)
        self._validator: Callable[[pd.DataFrame], pd.DataFrame] = load_callable(
            contract.batch.validator
        )
        self._accepts: Callable[[pd.DataFrame], bool] | None = (
            load_callable(contract.request_check) if contract.request_check else None
        )

    def read_requests(self, requests: Sequence[Sequence[dict[str, Any]]]) -> ReadRequests:
        """Read and check several requests at once, each judged as if it came alone.

        Requests with the same columns become one text table, built column by column for all
        their encounters, read in one call of the reader and checked in one call of the request
        check (or validator): both apply per value and per column, as batch scoring applies them
        to each chunk of a file. When the joint read or check fails, each of those requests is
        read and checked alone (its rows of the table), so a request that breaks a rule gets its
        own refusal (`rejections`) and the others are scored. A request's encounter ids must be
        unique within it only: two requests may carry the same one.
        """
        rejections: dict[int, RequestRejected] = {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, encounters in enumerate(requests):
            try:
                columns = self._present_columns(encounters)
            except RequestRejected as error:
                rejections[i] = error
                continue
            groups.setdefault(columns, []).append(i)
        frames: list[pd.DataFrame] = []
        texts: list[pa.Table] = []
        spans: list[tuple[int, int] | None] = [None] * len(requests)
        start = 0
        for columns, members in groups.items():
            table = _text_columns(columns, [e for i in members for e in requests[i]])
            sizes = [len(requests[i]) for i in members]
            frame, text, read = self._read_group(table, members, sizes, rejections)
            for i, a, b in read:
                spans[i] = (start + a, start + b)
            if len(frame):
                frames.append(frame)
                texts.append(text)
                start += len(frame)
        if not frames:
            return ReadRequests(pd.DataFrame(), spans, rejections)
        joined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        joined.index = pd.RangeIndex(0, len(joined))
        # Requests with other columns (an optional column given) make another table: no text.
        return ReadRequests(joined, spans, rejections, texts[0] if len(texts) == 1 else None)

    def read_text(self, table: pa.Table) -> pd.DataFrame:
        """The raw frame of text rows that were read and accepted before (`ReadRequests.text`):
        the same reader, so the same frame, without the checks they passed already."""
        frame = self._reader(table, source=REQUEST_SOURCE, first_row=0)
        frame.index = pd.RangeIndex(0, len(frame))
        return frame

    def _read_group(
        self,
        table: pa.Table,
        members: list[int],
        sizes: list[int],
        rejections: dict[int, RequestRejected],
    ) -> tuple[pd.DataFrame, pa.Table, list[tuple[int, int, int]]]:
        """The frame of a same-column group's table, the text rows it was read from, and each
        accepted request's (index, start, stop) in it: read and checked jointly when all pass,
        else each request's rows alone (the refused left out)."""
        bounds = np.cumsum([0, *sizes]).tolist()
        spans = list(zip(members, bounds[:-1], bounds[1:], strict=True))
        if len(members) > 1:
            joined = self._checked(table)
            if joined is not None:
                keys = joined[self.contract.batch.key_column].to_numpy()
                if all(len(np.unique(keys[a:b])) == b - a for _, a, b in spans):
                    return joined, table, spans
        frames, texts, read, start = [], [], [], 0
        for i, a, b in spans:
            part = table.slice(a, b - a) if len(members) > 1 else table
            try:
                frame = self._frame_of(part)
            except RequestRejected as error:
                rejections[i] = error
                continue
            frames.append(frame)
            texts.append(part)
            read.append((i, start, start + len(frame)))
            start += len(frame)
        if not frames:
            return pd.DataFrame(), table.slice(0, 0), []
        if len(frames) == 1:
            return frames[0], texts[0], read
        return pd.concat(frames, ignore_index=True), pa.concat_tables(texts), read

    def _checked(self, table: pa.Table) -> pd.DataFrame | None:
        """The frame of `table` when the reader and the request check accept it, else None (the
        per-request uniqueness of encounter ids is checked by the caller, per request)."""
        try:
            return self._frame_of(table, unique_keys=False)
        except RequestRejected:
            return None

    def frame(self, encounters: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """The validated raw frame of the request's encounters, indexed 0..n-1 (request order).

        Raises `RequestRejected` naming each field and rule that failed.
        """
        return self._frame_of(self._text_table(encounters))

    def _frame_of(self, table: pa.Table, *, unique_keys: bool = True) -> pd.DataFrame:
        try:
            frame = self._reader(table, source=REQUEST_SOURCE, first_row=0)
        except ValueError as error:
            # The reader's message quotes the refused values (for a file's owner); a caller gets
            # the columns it names and the rule, never the values (nor does the service log).
            refused = set(getattr(error, "columns", None) or ())
            named = [c for c in self.contract.columns if c in refused]
            rule = "must hold a value the batch reader accepts (a whole number here)"
            errors = [_entry(("body", "encounters", c), "reader", rule) for c in named] or [
                _entry(("body", "encounters"), "reader", "the batch reader refused the request")
            ]
            raise RequestRejected(
                f"the batch reader refused columns {named or 'of the request'}", errors
            ) from None
        frame.index = pd.RangeIndex(0, len(frame))
        try:
            if self._accepts is None or not self._accepts(frame):
                self._validator(frame)
        except ValueError as error:
            failures = list(getattr(error, "failures", []))
            raise RequestRejected(str(error), validation_errors(failures)) from error
        key = self.contract.batch.key_column
        repeated = frame.index[frame[key].duplicated()].tolist() if unique_keys else []
        if repeated:
            raise RequestRejected(
                f"{key} repeats in encounters {repeated}",
                [
                    _entry(
                        ("body", "encounters", row, key),
                        "unique",
                        f"each {key} is scored once per request",
                    )
                    for row in repeated
                ],
            )
        return frame

    def score_apart(
        self, served: ServedModel, frame: pd.DataFrame, spans: Sequence[tuple[int, int]]
    ) -> np.ndarray:
        """Scores of a frame holding several requests' rows (`spans`), each request's scores as
        if it had been scored alone: requests that share a value of the contract's
        `score_apart_by` columns go to separate model calls (so do all, when it names none)."""
        groups = self._apart_groups(frame, spans)
        if len(groups) == 1:
            return self.score(served, frame)
        scores = np.empty(len(frame), dtype="float64")
        for group in groups:
            rows = np.concatenate([np.arange(a, b) for a, b in group])
            part = frame.iloc[rows].reset_index(drop=True)
            scores[rows] = self.score(served, part)
        return scores

    def _apart_groups(
        self, frame: pd.DataFrame, spans: Sequence[tuple[int, int]]
    ) -> list[list[tuple[int, int]]]:
        """Spans put first-fit into groups whose `score_apart_by` values do not overlap."""
        columns = self.contract.score_apart_by
        if columns is None:
            return [[span] for span in spans]
        values = {name: frame[name].tolist() for name in columns}
        groups: list[tuple[list[tuple[int, int]], set[tuple[str, Any]]]] = []
        for a, b in spans:
            keys = {(name, value) for name in columns for value in values[name][a:b]}
            for members, taken in groups:
                if taken.isdisjoint(keys):
                    members.append((a, b))
                    taken.update(keys)
                    break
            else:
                groups.append(([(a, b)], keys))
        return [members for members, _ in groups]

    def score(self, served: ServedModel, frame: pd.DataFrame) -> np.ndarray:
        # Only columns present are dropped: `drop` copies the whole frame even when none is.
        dropped = [c for c in self.contract.batch.drop_columns if c in frame.columns]
        inputs = frame.drop(columns=dropped) if dropped else frame
        scores = np.asarray(served.model.predict_proba(inputs)[:, 1], dtype="float64")
        if scores.shape != (len(frame),) or not np.all(np.isfinite(scores)):
            raise BatchContractError(
                f"The model returned {scores.shape} scores for {len(frame)} rows, or scores "
                "that are not finite; predict_proba must give one probability per row."
            )
        return scores

    def predictions(
        self, served: ServedModel, frame: pd.DataFrame, scores: np.ndarray
    ) -> list[dict[str, Any]]:
        """What the caller gets: one dict per encounter, in request order."""
        batch = self.contract.batch
        keys = frame[batch.key_column].to_numpy(dtype=np.int64)
        return [
            {
                batch.key_column: int(key),
                batch.score_column: float(score),
                RISK_BAND_COLUMN: batch.risk_band(bool(score >= batch.operating_threshold)),
                "model_name": served.model_name,
                "model_version": served.model_version,
                "model_stage": served.model_stage,
            }
            for key, score in zip(keys, scores, strict=True)
        ]

    def log_table(
        self,
        served: ServedModel,
        frame: pd.DataFrame,
        scores: np.ndarray,
        *,
        request_id: str | Sequence[str],
        inference_run_id: str,
        shadow: bool,
        scored_at: datetime | None = None,
    ) -> pa.Table:
        """Rows for the prediction log, with the columns of `log_columns` in that order.

        `request_id` is one id for every row, or one per row (a batch of several requests)."""
        batch, n = self.contract.batch, len(frame)
        when = (scored_at or datetime.now(UTC)).replace(tzinfo=None)
        columns: dict[str, pa.Array] = {
            name: pa.array(frame[name].to_numpy(dtype=np.int64), pa.int64())
            for name in batch.id_columns
        }
        columns[batch.score_column] = pa.array(scores, pa.float64())
        bands = np.where(
            scores >= batch.operating_threshold, batch.band_labels[1], batch.band_labels[0]
        )
        columns[RISK_BAND_COLUMN] = pa.array(bands.astype(object), pa.string())
        for name, value in (
            ("model_name", served.model_name),
            ("model_version", served.model_version),
            ("model_stage", served.model_stage),
            ("inference_run_id", inference_run_id),
        ):
            columns[name] = pa.array([value] * n, pa.string())
        columns["scored_at"] = pa.array(
            np.full(n, np.datetime64(when, "us")), pa.timestamp("us", tz="UTC")
        )
        ids = [request_id] * n if isinstance(request_id, str) else list(request_id)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} request ids for {n} rows")
        columns[REQUEST_ID_COLUMN] = pa.array(ids, pa.string())
        columns[SHADOW_COLUMN] = pa.array([shadow] * n, pa.bool_())
        assert tuple(columns) == log_columns(self.contract)
        return pa.table(columns)

    def _text_table(self, encounters: Sequence[dict[str, Any]]) -> pa.Table:
        return _text_columns(self._present_columns(encounters), encounters)

    def _present_columns(self, encounters: Sequence[dict[str, Any]]) -> tuple[str, ...]:
        """The request's columns: every layout column, less optional ones given for no
        encounter; `RequestRejected` when an optional column is given for some only."""
        contract = self.contract
        columns = list(contract.columns)
        for name in contract.optional_columns:
            given = [encounter.get(name) is not None for encounter in encounters]
            if all(given):
                continue
            if any(given):
                rows = [i for i, g in enumerate(given) if not g]
                raise RequestRejected(
                    f"{name} is given for some encounters but not for {rows}",
                    [
                        _entry(
                            ("body", "encounters", row, name),
                            "all_or_none",
                            f"give {name} for every encounter of a request or for none",
                        )
                        for row in rows
                    ],
                )
            columns.remove(name)
        return tuple(columns)


def _text_columns(columns: Sequence[str], encounters: Sequence[dict[str, Any]]) -> pa.Table:
    """The encounters as a table of text columns (as batch scoring reads a file), built column
    by column."""
    return pa.table(
        {
            name: pa.array([str(encounter.get(name)) for encounter in encounters], pa.string())
            for name in columns
        }
    )


def validation_errors(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validator's failures (one per column and rule, rows = request positions) as
    FastAPI-style 422 entries, one per failing encounter and field; no offending values."""
    errors: list[dict[str, Any]] = []
    for failure in failures:
        column, check, rule = failure["column"], failure["check"], failure["rule"]
        rows = failure.get("rows") or []
        if not rows:
            errors.append(_entry(("body", "encounters", column), check, rule))
            continue
        for row in rows:
            errors.append(_entry(("body", "encounters", int(row), column), check, rule))
    return errors


def _entry(loc: tuple[Any, ...], check: str, rule: str) -> dict[str, Any]:
    field = loc[-1] if isinstance(loc[-1], str) else FRAME_FIELD
    return {
        "loc": list(loc),
        "type": check,
        "msg": f"{field}: {rule} (rule {check!r})",
    }


__all__ = [
    "PREDICTION_METADATA_COLUMNS",
    "RealtimeScorer",
    "RequestRejected",
    "ServedModel",
    "log_columns",
    "validation_errors",
]

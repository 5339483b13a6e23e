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

    def frame(self, encounters: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """The validated raw frame of the request's encounters, indexed 0..n-1 (request order).

        Raises `RequestRejected` naming each field and rule that failed.
        """
        table = self._text_table(encounters)
        try:
            frame = self._reader(table, source=REQUEST_SOURCE, first_row=0)
        except ValueError as error:
            raise RequestRejected(
                str(error), [_entry(("body", "encounters"), "reader", str(error))]
            ) from error
        frame.index = pd.RangeIndex(0, len(frame))
        try:
            if self._accepts is None or not self._accepts(frame):
                self._validator(frame)
        except ValueError as error:
            failures = list(getattr(error, "failures", []))
            raise RequestRejected(str(error), validation_errors(failures)) from error
        key = self.contract.batch.key_column
        repeated = frame.index[frame[key].duplicated()].tolist()
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

    def score(self, served: ServedModel, frame: pd.DataFrame) -> np.ndarray:
        inputs = frame.drop(columns=list(self.contract.batch.drop_columns), errors="ignore")
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
        request_id: str,
        inference_run_id: str,
        shadow: bool,
        scored_at: datetime | None = None,
    ) -> pa.Table:
        """Rows for the prediction log, with the columns of `log_columns` in that order."""
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
        columns[REQUEST_ID_COLUMN] = pa.array([request_id] * n, pa.string())
        columns[SHADOW_COLUMN] = pa.array([shadow] * n, pa.bool_())
        assert tuple(columns) == log_columns(self.contract)
        return pa.table(columns)

    def _text_table(self, encounters: Sequence[dict[str, Any]]) -> pa.Table:
        contract = self.contract
        columns: dict[str, pa.Array] = {}
        for name in contract.columns:
            values = [encounter.get(name) for encounter in encounters]
            if name in contract.optional_columns and any(v is None for v in values):
                if all(v is None for v in values):
                    continue
                rows = [i for i, v in enumerate(values) if v is None]
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
            columns[name] = pa.array([str(v) for v in values], pa.string())
        return pa.table(columns)


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

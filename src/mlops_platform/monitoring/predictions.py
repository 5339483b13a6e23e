"""Read the served predictions from versioned batch results, trusting only what can be verified.

A result directory is chosen by whoever runs the command, so its files are not trusted as they
are: each `predictions.parquet` must hash to the SHA-256 that the scoring run recorded in the
ZenML store (the `batch_predictions` artifact of that inference run), which the requester's file
system does not hold. A result whose run is unknown to the store, or whose file changed since it
was scored, stops the check (`PredictionsIntegrityError`); nothing is joined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_platform.batch.results import (
    PREDICTIONS_FILE,
    ResultNotFoundError,
    list_results,
    read_manifest,
)
from mlops_platform.monitoring.join import KEY, PATIENT, SCORE

_TEXT_METADATA: Final = ("model_name", "model_version", "model_stage", "inference_run_id")
_METADATA: Final = (*_TEXT_METADATA, "scored_at")


class PredictionsIntegrityError(RuntimeError):
    """A batch result does not match what its scoring run recorded; it cannot be judged on."""


@dataclass(frozen=True)
class ServedBatch:
    """One verified batch result."""

    directory: str
    inference_run_id: str
    sha256: str
    rows: int
    operating_threshold: float
    model_name: str
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


RecordedHash = Callable[[str], str | None]


def load_served_predictions(
    output_dir: Path, patient_column: str, recorded_sha256: RecordedHash
) -> tuple[pd.DataFrame, list[ServedBatch]]:
    """Every published result under `output_dir` (or `output_dir` itself when it is one), as one
    frame with the columns of `join.PREDICTION_COLUMNS` (the text ones categorical: a code per
    encounter, not a string).

    `recorded_sha256(inference_run_id)` returns the predictions' SHA-256 recorded by that run,
    or None when the run is unknown.
    """
    directories = _result_dirs(Path(output_dir))
    tables = []
    batches = []
    for directory in directories:
        manifest = read_manifest(directory)
        run_id = str(manifest["inference_run_id"])
        path = directory / PREDICTIONS_FILE
        # The bytes hashed are the bytes parsed: the file cannot change between check and read.
        stored = path.read_bytes()
        actual = hashlib.sha256(stored).hexdigest()
        recorded = recorded_sha256(run_id)
        if recorded is None:
            raise PredictionsIntegrityError(
                f"Batch result {directory} names inference run {run_id}, which this ZenML store "
                "has no record of; only predictions scored and recorded by the platform are "
                "judged. Pass the --output directory of `mlops infer` on this server."
            )
        if actual != recorded:
            raise PredictionsIntegrityError(
                f"{path} has SHA-256 {actual[:16]}… but inference run {run_id} recorded "
                f"{recorded[:16]}…: the predictions changed after scoring. Restore the file "
                "from the run's result, or leave the result out."
            )
        contract = manifest["contract"]
        key, score = contract["id_columns"][0], contract["score_column"]
        if patient_column not in contract["id_columns"]:
            raise PredictionsIntegrityError(
                f"Batch result {directory} carries no {patient_column!r} column (id columns "
                f"{contract['id_columns']}); intervals resample patients and need it."
            )
        table = pq.read_table(
            pa.BufferReader(stored),
            columns=[key, patient_column, score, *_METADATA],
            read_dictionary=list(_TEXT_METADATA),
        )
        del stored
        tables.append(table.rename_columns([KEY, PATIENT, SCORE, *_METADATA]))
        batches.append(
            ServedBatch(
                directory=str(directory),
                inference_run_id=run_id,
                sha256=actual,
                rows=table.num_rows,
                operating_threshold=float(contract["operating_threshold"]),
                model_name=str(manifest["model"]["name"]),
                model_version=str(manifest["model"]["version"]),
            )
        )
    combined = pa.concat_tables(tables, promote_options="permissive")
    del tables
    frame = combined.to_pandas(self_destruct=True, split_blocks=True)
    pa.default_memory_pool().release_unused()  # the decoding buffers Arrow's allocator kept
    return frame, batches


def _result_dirs(path: Path) -> list[Path]:
    if (path / PREDICTIONS_FILE).is_file() and not path.name.startswith("."):
        read_manifest(path)  # a single result must be complete
        return [path]
    found = list_results(path)
    if not found:
        raise ResultNotFoundError(
            f"No batch result at {path}: pass the --output directory of `mlops infer` (or one "
            "<output>/<run id> result) with --predictions."
        )
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordedPart:
    """What a stopped service recorded in the audit trail about one part of its log."""

    sha256: str
    inference_run_id: str
    operating_threshold: float


RecordedParts = Callable[[], dict[str, RecordedPart]]


def recorded_parts_from(records: Iterable[Any]) -> dict[str, RecordedPart]:
    """Digests of prediction-log parts from `serving_stopped` audit records (already verified)."""
    found: dict[str, RecordedPart] = {}
    for record in records:
        details = record.details or {}
        for name, digest in (details.get("log_parts") or {}).items():
            found[name] = RecordedPart(
                sha256=str(digest),
                inference_run_id=str(details.get("inference_run_id", "")),
                operating_threshold=float(details["operating_threshold"]),
            )
    return found


def load_served_log(
    log_dir: Path, patient_column: str, recorded_parts: RecordedParts
) -> tuple[pd.DataFrame, list[ServedBatch], list[str]]:
    """The real-time answers (not the shadow scores) of the prediction log, as
    `load_served_predictions` returns batches, plus the parts left out.

    A part counts only if a stopped service recorded its SHA-256 in the audit trail
    (`serving_stopped`) and its bytes still hash to it; a part that changed stops the check. Parts
    of a service still running (not yet recorded) are left out and named.
    """
    tables, batches = [], []
    verified, unrecorded = verified_log_parts(log_dir, recorded_parts())
    for path, entry, table, actual in verified:
        table = table.filter(pc.invert(table["shadow"]))
        key, score = table.column_names[0], _score_column(table)
        table = table.select([key, patient_column, score, *_METADATA]).rename_columns(
            [KEY, PATIENT, SCORE, *_METADATA]
        )
        tables.append(table)
        versions = set(table["model_version"].to_pylist()) or {""}
        names = set(table["model_name"].to_pylist()) or {""}
        for version in sorted(versions):
            batches.append(
                ServedBatch(
                    directory=str(path),
                    inference_run_id=entry.inference_run_id,
                    sha256=actual,
                    rows=table.num_rows,
                    operating_threshold=entry.operating_threshold,
                    model_name=sorted(names)[0],
                    model_version=version,
                )
            )
    if not tables:
        return pd.DataFrame(columns=[KEY, PATIENT, SCORE, *_METADATA]), [], unrecorded
    frame = pa.concat_tables(tables).to_pandas()
    for name in _TEXT_METADATA:
        frame[name] = frame[name].astype("category")
    return frame, batches, unrecorded


def verified_log_parts(
    log_dir: Path, recorded: dict[str, RecordedPart]
) -> tuple[list[tuple[Path, RecordedPart, pa.Table, str]], list[str]]:
    """(path, recorded entry, rows, SHA-256) of each part of the log whose SHA-256 a stopped
    service recorded, and the names of the parts not (yet) recorded, which are left out.

    A recorded part whose bytes no longer hash to the record raises `PredictionsIntegrityError`;
    the bytes hashed are the bytes parsed.
    """
    from mlops_platform.serving.log import parts

    found, unrecorded = [], []
    for path in parts(Path(log_dir)):
        stored = path.read_bytes()
        actual = hashlib.sha256(stored).hexdigest()
        entry = recorded.get(path.name)
        if entry is None:
            unrecorded.append(path.name)
            continue
        if entry.sha256 != actual:
            raise PredictionsIntegrityError(
                f"Prediction log part {path} has SHA-256 {actual[:16]}… but the service that "
                f"wrote it recorded {entry.sha256[:16]}…: the log changed after it was written."
            )
        found.append((path, entry, pq.read_table(pa.BufferReader(stored)), actual))
    return found, unrecorded


def load_recorded_log(
    log_dir: Path, recorded: dict[str, RecordedPart], threshold_column: str
) -> tuple[pd.DataFrame, list[str]]:
    """Every row (served and shadow) of the recorded parts of a prediction log, each with the
    operating threshold its service recorded in `threshold_column`; and the parts left out."""
    verified, unrecorded = verified_log_parts(log_dir, recorded)
    frames = [
        table.to_pandas().assign(**{threshold_column: entry.operating_threshold})
        for _, entry, table, _ in verified
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, unrecorded


def _score_column(table: pa.Table) -> str:
    """The score column of a log part: the float column before `risk_band`."""
    names = table.column_names
    return names[names.index("risk_band") - 1]

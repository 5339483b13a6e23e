"""Read the served predictions from versioned batch results, trusting only what can be verified.

A result directory is chosen by whoever runs the command, so its files are not trusted as they
are: each `predictions.parquet` must hash to the SHA-256 that the scoring run recorded in the
ZenML store (the `batch_predictions` artifact of that inference run), which the requester's file
system does not hold. A result whose run is unknown to the store, or whose file changed since it
was scored, stops the check (`PredictionsIntegrityError`); nothing is joined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
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

"""Read the served predictions from versioned batch results, trusting only what can be verified.

A result directory is chosen by whoever runs the command, so its files are not trusted as they
are: each `predictions.parquet` must hash to the SHA-256 that the scoring run recorded in the
ZenML store (the `batch_predictions` artifact of that inference run), which the requester's file
system does not hold. A result whose run is unknown to the store, or whose file changed since it
was scored, stops the check (`PredictionsIntegrityError`); nothing is joined.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_platform.batch.results import (
    MANIFEST_FILE,
    PREDICTIONS_FILE,
    ResultNotFoundError,
    list_results,
    read_manifest,
)
from mlops_platform.monitoring.join import KEY, PATIENT, SCORE

_TEXT_METADATA: Final = ("model_name", "model_version", "model_stage", "inference_run_id")
_METADATA: Final = (*_TEXT_METADATA, "scored_at")
# Rows decoded at once; only the compact columns are kept for every row.
CHUNK_ROWS: Final = 16_384
_COPY_BLOCK_BYTES: Final = 1 << 20
_MAX_NAMES: Final = int(np.iinfo(np.int16).max)  # distinct values of a text column (int16 codes)


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
# The manifest an inference run stored in the ZenML store (its `manifest` step output), by run id.
RecordedManifest = Callable[[str], Mapping[str, Any] | None]
# The manifest fields outcome monitoring judges by: which model scored, and at which threshold.
JUDGED_MANIFEST_FIELDS: Final = ("model", "contract")


def load_served_predictions(
    output_dir: Path,
    patient_column: str,
    recorded_sha256: RecordedHash,
    chunk_rows: int = CHUNK_ROWS,
    recorded_manifest: RecordedManifest | None = None,
) -> tuple[pd.DataFrame, list[ServedBatch]]:
    """Every published result under `output_dir` (or `output_dir` itself when it is one), as one
    frame with the columns of `join.PREDICTION_COLUMNS`: ids int64, score float64, `scored_at`
    UTC timestamps and the text columns categorical (a small code per encounter, not a string).

    `recorded_sha256(inference_run_id)` returns the predictions' SHA-256 recorded by that run,
    or None when the run is unknown. `recorded_manifest(inference_run_id)`, when given (the
    platform's step always gives it), returns the manifest the run stored in ZenML: the model and
    contract (threshold, columns) are taken from it, and a `manifest.json` beside the predictions
    that says otherwise is refused.

    Memory holds the compact columns of every row plus one batch of `chunk_rows` rows: each file
    is copied to a private temporary file while it is hashed (the bytes hashed are the bytes
    parsed, and the requester cannot change them in between), then decoded batch by batch into
    columns allocated once for all results.
    """
    directories = _result_dirs(Path(output_dir))
    with tempfile.TemporaryDirectory(prefix="mlops-outcomes-") as private:
        verified = [
            _verified_copy(
                directory,
                Path(private),
                index,
                patient_column,
                recorded_sha256,
                recorded_manifest,
            )
            for index, directory in enumerate(directories)
        ]
        columns = _Columns(sum(v.batch.rows for v in verified))
        for entry in verified:
            with pq.ParquetFile(
                entry.copy, buffer_size=_COPY_BLOCK_BYTES, pre_buffer=False
            ) as parquet:
                for batch in parquet.iter_batches(
                    batch_size=chunk_rows,
                    columns=[entry.key, patient_column, entry.score, *_METADATA],
                    use_threads=False,
                ):
                    columns.add(batch, entry.key, patient_column, entry.score)
            entry.copy.unlink()
    pa.default_memory_pool().release_unused()  # the decoding buffers Arrow's allocator kept
    return columns.frame(), [v.batch for v in verified]


@dataclass(frozen=True)
class _Verified:
    batch: ServedBatch
    copy: Path
    key: str
    score: str


def _verified_copy(
    directory: Path,
    private: Path,
    index: int,
    patient_column: str,
    recorded: RecordedHash,
    recorded_manifest: RecordedManifest | None = None,
) -> _Verified:
    """Copy a result's predictions into `private` while hashing them, and check the digest
    against the one its inference run recorded; raises `PredictionsIntegrityError`."""
    manifest = read_manifest(directory)
    run_id = str(manifest["inference_run_id"])
    path = require_predictions(directory, run_id)
    copy = private / f"{index}.parquet"
    digest = hashlib.sha256()
    with path.open("rb") as source, copy.open("wb") as target:
        while block := source.read(_COPY_BLOCK_BYTES):
            digest.update(block)
            target.write(block)
    actual = digest.hexdigest()
    check_recorded_digest(directory, run_id, actual, recorded(run_id))
    if recorded_manifest is not None:
        manifest = _recorded_manifest(directory, run_id, manifest, recorded_manifest(run_id))
    contract = manifest["contract"]
    if patient_column not in contract["id_columns"]:
        raise PredictionsIntegrityError(
            f"Batch result {directory} carries no {patient_column!r} column (id columns "
            f"{contract['id_columns']}); intervals resample patients and need it."
        )
    with pq.ParquetFile(copy) as parquet:
        rows = parquet.metadata.num_rows
    batch = ServedBatch(
        directory=str(directory),
        inference_run_id=run_id,
        sha256=actual,
        rows=rows,
        operating_threshold=float(contract["operating_threshold"]),
        model_name=str(manifest["model"]["name"]),
        model_version=str(manifest["model"]["version"]),
    )
    return _Verified(batch, copy, contract["id_columns"][0], contract["score_column"])


def check_recorded_digest(directory: Path, run_id: str, actual: str, expected: str | None) -> None:
    """Raise `PredictionsIntegrityError` unless the predictions of the result in `directory`
    hash to ``expected``, the SHA-256 its inference run ``run_id`` recorded."""
    path = directory / PREDICTIONS_FILE
    if expected is None:
        raise PredictionsIntegrityError(
            f"Batch result {directory} names inference run {run_id}, which this ZenML store "
            "has no record of; only predictions scored and recorded by the platform are "
            "judged. Pass the --output directory of `mlops infer` on this server."
        )
    if actual != expected:
        raise PredictionsIntegrityError(
            f"{path} has SHA-256 {actual[:16]}… but inference run {run_id} recorded "
            f"{expected[:16]}…: the predictions changed after scoring. Restore the file "
            "from the run's result, or leave the result out."
        )


def require_predictions(directory: Path, run_id: str) -> Path:
    """The predictions file of a result whose manifest names ``run_id``; a result without one
    raises `PredictionsIntegrityError` (its run wrote one and recorded its SHA-256)."""
    path = directory / PREDICTIONS_FILE
    if not path.is_file():
        raise PredictionsIntegrityError(
            f"Batch result {directory} has no {PREDICTIONS_FILE}, though its {MANIFEST_FILE} "
            f"names inference run {run_id}, which writes one: the predictions were removed, or "
            "the folder is no result. Restore the file from the run's result, or move the "
            "folder out."
        )
    return path


# Manifest fields that may differ from the run's record: where the result lives now.
RELOCATABLE_MANIFEST_FIELDS: Final = frozenset({"output_dir"})


def verified_result_manifest(
    directory: Path,
    manifest: Mapping[str, Any],
    actual_sha256: str,
    recorded: RecordedHash,
    recorded_manifest: RecordedManifest,
) -> Mapping[str, Any]:
    """For one result (lineage): every file of it must be what its inference run recorded, and
    the manifest returned is the one the run stored in ZenML.

    The folder is named by the run id its manifest gives (a result is published under its run's
    id); the predictions bytes read (``actual_sha256``) hash to the run's record; `manifest.json`
    says what the stored manifest says in every field but ``output_dir`` (a result may be moved),
    so its finishing time too; and every other file the run hashed (drift report, quarantine)
    still hashes to that. Anything else raises `PredictionsIntegrityError` (exit 8)."""
    run_id = str(manifest["inference_run_id"])
    if directory.name != run_id:
        raise PredictionsIntegrityError(
            f"Batch result {directory} holds the manifest of inference run {run_id}, but a "
            "result is published under its run's id: the folder was renamed, or its manifest "
            "copied from another result. Restore the name, or leave the folder out."
        )
    check_recorded_digest(directory, run_id, actual_sha256, recorded(run_id))
    stored = _recorded_manifest(directory, run_id, manifest, recorded_manifest(run_id), fields=None)
    files = stored.get("files")
    for name, expected in sorted((files if isinstance(files, Mapping) else {}).items()):
        path = directory / name
        if name == PREDICTIONS_FILE:
            actual: str | None = actual_sha256
        else:
            actual = _sha256(path) if path.is_file() else None
        if actual != expected:
            found = f"has SHA-256 {actual[:16]}…" if actual else "is missing"
            raise PredictionsIntegrityError(
                f"{path} {found}, but inference run {run_id} recorded {str(expected)[:16]}…: "
                "the result changed after scoring. Restore the file from the run's result, or "
                "leave the result out."
            )
    return stored


def _recorded_manifest(
    directory: Path,
    run_id: str,
    beside: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    fields: Iterable[str] | None = JUDGED_MANIFEST_FIELDS,
) -> Mapping[str, Any]:
    """The manifest the inference run stored in ZenML, after checking that the `manifest.json`
    beside the predictions says the same about ``fields`` (None: every field but where the
    result lives, `RELOCATABLE_MANIFEST_FIELDS`)."""
    if stored is None:
        raise PredictionsIntegrityError(
            f"Inference run {run_id} of batch result {directory} has no manifest in this ZenML "
            "store, so which model scored and at which threshold cannot be shown; leave the "
            "result out."
        )
    if fields is None:
        fields = sorted((set(beside) | set(stored)) - RELOCATABLE_MANIFEST_FIELDS)
    for field in fields:
        if beside.get(field) != stored.get(field):
            raise PredictionsIntegrityError(
                f"{directory / MANIFEST_FILE} says {field} {_short(beside.get(field))}, but "
                f"inference run {run_id} recorded {_short(stored.get(field))}: the manifest was "
                "edited after scoring. Restore it from the run's result, or leave the result out."
            )
    return stored


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Columns:
    """The prediction columns of all results, allocated once and filled batch by batch; each
    text column keeps one code per row and its distinct values once."""

    def __init__(self, rows: int) -> None:
        self.filled = 0
        self.key = np.empty(rows, dtype=np.int64)
        self.patient = np.empty(rows, dtype=np.int64)
        self.score = np.empty(rows, dtype=np.float64)
        self.ticks = np.empty(rows, dtype=np.int64)  # nanoseconds since the epoch, UTC
        self.codes = {name: np.empty(rows, dtype=np.int16) for name in _TEXT_METADATA}
        self.names: dict[str, dict[str, int]] = {name: {} for name in _TEXT_METADATA}

    def add(self, batch: pa.RecordBatch, key: str, patient: str, score: str) -> None:
        start, stop = self.filled, self.filled + batch.num_rows
        self.key[start:stop] = _numbers(batch.column(key), pa.int64())
        self.patient[start:stop] = _numbers(batch.column(patient), pa.int64())
        self.score[start:stop] = _numbers(batch.column(score), pa.float64())
        self.ticks[start:stop] = _utc_nanoseconds(batch.column("scored_at"))
        for name in _TEXT_METADATA:
            encoded = pc.dictionary_encode(pc.cast(batch.column(name), pa.string()))
            known = self.names[name]
            mapping = np.array(
                [known.setdefault(str(v), len(known)) for v in encoded.dictionary.to_pylist()]
                + [-1],
                dtype=np.int32,
            )
            if len(known) > _MAX_NAMES:
                raise PredictionsIntegrityError(
                    f"The batch results hold more than {_MAX_NAMES} distinct {name} values; "
                    "judge fewer results at once."
                )
            indices = encoded.indices.fill_null(len(mapping) - 1)
            self.codes[name][start:stop] = mapping[indices.to_numpy(zero_copy_only=False)]
        self.filled = stop

    def frame(self) -> pd.DataFrame:
        columns: dict[str, Any] = {KEY: self.key, PATIENT: self.patient, SCORE: self.score}
        for name in _TEXT_METADATA:
            categories = pd.Index(list(self.names[name]), dtype=object).astype(str)
            columns[name] = pd.Categorical.from_codes(
                self.codes.pop(name), categories=categories, validate=False
            )
        stamps = self.ticks.view("datetime64[ns]")
        columns["scored_at"] = pd.DatetimeIndex(stamps, copy=False).tz_localize("UTC")
        return pd.DataFrame(columns, copy=False)


def _numbers(values: pa.Array, kind: pa.DataType) -> np.ndarray:
    if values.null_count:
        raise PredictionsIntegrityError(
            f"A batch result has {values.null_count} empty values in an id or score column; "
            "every served prediction has an encounter, a patient and a score."
        )
    return pc.cast(values, kind).to_numpy()


def _utc_nanoseconds(values: pa.Array) -> np.ndarray:
    """Timestamps as nanoseconds on the UTC time line (a time without zone is read as UTC)."""
    if not pa.types.is_timestamp(values.type):
        raise PredictionsIntegrityError(
            f"A batch result's scored_at column has type {values.type}, not a timestamp."
        )
    stamped = pc.cast(values, pa.timestamp("ns", tz="UTC"))
    return stamped.cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()


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
    log_dir: str = ""  # the directory the service wrote it to, resolved ("" in older records)


def stopped_services(env: str) -> list[Any]:
    """The `serving_stopped` records of `env`'s trail (each names its log parts and their
    SHA-256), read only if the chain verifies."""
    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import audit_trail

    trail = audit_trail(env, write=False)
    try:
        return list(trail.records(event_types=[AuditEventType.SERVING_STOPPED], verified=True))
    finally:
        trail.close()


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
                log_dir=_resolved(details.get("log_dir")),
            )
    return found


def load_served_log(
    recorded: dict[str, RecordedPart],
    patient_column: str,
    also_in: Path | Sequence[Path] | None = None,
) -> tuple[pd.DataFrame, list[ServedBatch], list[str], list[str]]:
    """The real-time answers (not the shadow scores) of every log part the verified trail
    records, as `load_served_predictions` returns batches; plus the parts left out and the
    directories read.

    Which parts count is the trail's, not the caller's: each part a stopped service recorded
    (`serving_stopped`) is read where that service wrote it, or in one of ``also_in`` (copies
    kept elsewhere), and its bytes must still hash to the record. A recorded part found nowhere, or
    changed, stops the check (`PredictionsIntegrityError`): its answers would otherwise leave the
    verdict unseen. Parts no stopped service recorded (a service still running) are left out and
    named.
    """
    tables, batches = [], []
    verified, unrecorded = all_recorded_parts(recorded, also_in)
    for path, entry, table, actual in verified:
        table = table.filter(pc.invert(table["shadow"]))
        key, score = table.column_names[0], _score_column(table)
        table = table.select([key, patient_column, score, *_METADATA]).rename_columns(
            [KEY, PATIENT, SCORE, *_METADATA]
        )
        tables.append(table)
        names = set(table["model_name"].to_pylist()) or {""}
        versions = pc.value_counts(table["model_version"]).to_pylist() or [
            {"values": "", "counts": 0}
        ]
        for counted in sorted(versions, key=lambda item: str(item["values"])):
            batches.append(
                ServedBatch(
                    directory=str(path),
                    inference_run_id=entry.inference_run_id,
                    sha256=actual,
                    rows=int(counted["counts"]),  # this version's answers in the part
                    operating_threshold=entry.operating_threshold,
                    model_name=sorted(names)[0],
                    model_version=str(counted["values"]),
                )
            )
    directories = sorted({str(path.parent) for path, *_ in verified})
    if not tables:
        return pd.DataFrame(columns=[KEY, PATIENT, SCORE, *_METADATA]), [], unrecorded, []
    frame = pa.concat_tables(tables).to_pandas()
    for name in _TEXT_METADATA:
        frame[name] = frame[name].astype("category")
    return frame, batches, unrecorded, directories


def all_recorded_parts(
    recorded: dict[str, RecordedPart], also_in: Path | Sequence[Path] | None = None
) -> tuple[list[tuple[Path, RecordedPart, pa.Table, str]], list[str]]:
    """(path, recorded entry, rows, SHA-256) of every part the trail records, read from the
    directory its service wrote it to or from ``also_in``; and the names of the parts in those
    directories that no stopped service recorded. A recorded part found nowhere with its
    recorded bytes raises `PredictionsIntegrityError`."""
    from mlops_platform.serving.log import parts

    extra = [also_in] if isinstance(also_in, (str, Path)) else list(also_in or [])
    folders = [Path(folder).expanduser().resolve() for folder in extra]
    found, missing, changed = [], [], []
    for name, entry in sorted(recorded.items()):
        places = [Path(entry.log_dir) / name] if entry.log_dir else []
        places += [folder / name for folder in folders]
        read, wrong = None, []
        for place in dict.fromkeys(places):
            if not place.is_file():
                continue
            stored = place.read_bytes()
            actual = hashlib.sha256(stored).hexdigest()
            if actual == entry.sha256:
                read = (place, entry, pq.read_table(pa.BufferReader(stored)), actual)
                break
            wrong.append(f"{place} (SHA-256 {actual[:16]}…, recorded {entry.sha256[:16]}…)")
        if read is not None:
            found.append(read)
        elif wrong:
            changed += wrong
        else:
            missing.append(f"{name} (in {entry.log_dir or 'an unrecorded directory'})")
    if changed:
        raise PredictionsIntegrityError(
            f"Prediction log part(s) {'; '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} "
            "changed after the service that wrote them recorded their SHA-256: the log changed "
            "after it was written. Restore them from a backup; nothing was judged."
        )
    if missing:
        raise PredictionsIntegrityError(
            f"The audit trail records {len(missing)} real-time prediction-log part(s) that are "
            f"not there: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}. Their "
            "answers would be left out of the verdict unseen, so nothing was judged. Restore "
            "them where the service wrote them, or pass the directory that keeps them with "
            "--served-log."
        )
    directories = {path.parent for path, *_ in found}
    directories.update(folder for folder in folders if folder.is_dir())
    unrecorded = sorted(
        {part.name for folder in directories for part in parts(folder)} - set(recorded)
    )
    return found, unrecorded


def verified_log_parts(
    log_dir: Path, recorded: dict[str, RecordedPart]
) -> tuple[list[tuple[Path, RecordedPart, pa.Table, str]], list[str]]:
    """(path, recorded entry, rows, SHA-256) of each part of the log whose SHA-256 a stopped
    service recorded, and the names of the parts not (yet) recorded, which are left out.

    A recorded part whose bytes no longer hash to the record raises `PredictionsIntegrityError`;
    the bytes hashed are the bytes parsed. So does a part the trail records in this directory
    that is no longer there: its answers would otherwise vanish unseen (read as never served).
    """
    from mlops_platform.serving.log import parts

    here = _resolved(log_dir)
    gone = sorted(
        name
        for name, entry in recorded.items()
        if entry.log_dir and entry.log_dir == here and not (Path(log_dir) / name).is_file()
    )
    if gone:
        raise PredictionsIntegrityError(
            f"The audit trail records prediction-log part(s) {', '.join(gone[:5])}"
            f"{' ...' if len(gone) > 5 else ''} in {here}, which are no longer there: recorded "
            "answers were removed. Restore them from a backup; nothing is read from this log "
            "while they are missing."
        )
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


def _resolved(directory: object) -> str:
    return str(Path(str(directory)).expanduser().resolve()) if directory else ""

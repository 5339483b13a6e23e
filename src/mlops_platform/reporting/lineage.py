"""Trace one prediction back to everything that made it.

prediction row -> inference run -> model version and its stage at scoring time (with the check of
its stored model file against the digest and signature made at registration) -> training run
-> training data (source, SHA-256, rows) -> code (git commit, and the ZenML code repository when
one was registered) -> governance events of that version (gates, approvals, promotions,
rollbacks) from the audit trail of every environment whose trail is configured.

The chain starts from the result directory on disk, whose manifest names the inference run and
the model version, and continues in the ZenML store and the audit trail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_platform.batch.results import PREDICTIONS_FILE, read_manifest, result_directories
from mlops_platform.config import ENVIRONMENTS, ConfigError
from mlops_platform.expand import UnsetVariableError
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.artifacts import model_file_status
from mlops_platform.trust.audit import AuditEventType, AuditTrailMissing
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY, AuditError
from mlops_platform.trust.events import about_version, audit_trail

GOVERNANCE_EVENTS: Final = frozenset(
    {
        AuditEventType.TRAINING_COMPLETED,
        AuditEventType.GATE_PASSED,
        AuditEventType.GATE_FAILED,
        AuditEventType.APPROVAL_RECORDED,
        AuditEventType.PROMOTION,
        AuditEventType.PROMOTION_DENIED,
        AuditEventType.ROLLBACK_STARTED,
        AuditEventType.ROLLBACK,
        AuditEventType.ROLLBACK_ABORTED,
        AuditEventType.OVERRIDE,
        AuditEventType.COUNTERSIGNATURE,  # the second person an override rests on
        AuditEventType.APPROVAL_WITHDRAWN,  # an approval or countersignature withdrawn
    }
)


_SERVING_EVENTS: Final = frozenset(
    {AuditEventType.SERVING_STARTED, AuditEventType.SERVING_MODEL_SWITCHED}
)


class LineageNotFoundError(LookupError):
    """The prediction, or a link of its chain that must exist, cannot be found."""


@dataclass(frozen=True)
class Lineage:
    """The chain of one prediction; every part is plain JSON types."""

    prediction: dict[str, Any]
    key_column: str
    score_column: str
    result_dir: str
    inference_run: dict[str, Any]
    model_version: dict[str, Any]
    training_run: dict[str, Any] | None
    training_data: dict[str, Any] | None
    code: dict[str, Any]
    governance: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scorings(predictions: Path, key: str) -> list[tuple[Path, dict[str, Any], pa.Table, bytes]]:
    """Every result under ``predictions`` holding a prediction for ``key``, in the order
    `result_directories` lists them (not evidence: `find_prediction` orders by the trail): its
    directory, manifest, the matching rows and the predictions bytes they were read from (one
    read: the bytes hashed are the bytes searched). A folder whose manifest is no result's
    raises `ResultManifestError` (exit 3); one whose predictions are missing or no Parquet
    file with the manifest's id column, `PredictionsIntegrityError` (exit 8)."""
    from mlops_platform.monitoring.predictions import require_predictions

    found = []
    for directory in result_directories(predictions):
        manifest = read_manifest(directory)
        run_id = str(manifest["inference_run_id"])
        data = require_predictions(directory, run_id).read_bytes()
        rows = _rows_of(directory, run_id, data, manifest["contract"]["id_columns"][0], key)
        if rows.num_rows:
            found.append((directory, manifest, rows, data))
    return found


def _rows_of(directory: Path, run_id: str, data: bytes, column: str, key: str) -> pa.Table:
    from mlops_platform.monitoring.predictions import PredictionsIntegrityError

    def unreadable(problem: str) -> PredictionsIntegrityError:
        return PredictionsIntegrityError(
            f"{directory / PREDICTIONS_FILE} {problem}, so it is not the file inference run "
            f"{run_id} (named by its manifest) wrote: restore it from the run's result, or move "
            "the folder out."
        )

    try:
        schema = pq.read_schema(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise unreadable(f"is not a readable Parquet file ({error})") from error
    if column not in schema.names:
        raise unreadable(f"has no {column!r} column, which its manifest names")
    wanted = _typed(key, schema.field(column).type, column)
    try:
        return pq.read_table(pa.BufferReader(data), filters=pc.field(column) == wanted)
    except (pa.ArrowException, OSError) as error:
        raise unreadable(f"is not a readable Parquet file ({error})") from error


def find_prediction(
    predictions: Path, key: str, notes: list[str]
) -> tuple[Path, Mapping[str, Any], dict[str, Any], str, list[Path]]:
    """The result directory, the manifest its run recorded, the prediction row of `key` and the
    SHA-256 of the predictions bytes the row was read from; then the other results that also
    scored `key` (newest first), which are not traced.

    Every result holding `key` must be what its inference run recorded (its files and manifest,
    `verified_result_manifest`), else `PredictionsIntegrityError`. When several do, the newest
    is the one whose run's verified `batch_inference` record is the latest, never the finishing
    time a manifest on disk states; a result whose run has no such record stops the trace
    (`LineageUnverified`), as which scoring is the newest cannot then be told."""
    from mlops_platform.batch.recorded import (
        recorded_predictions_sha256,
        recorded_scoring_manifest,
    )
    from mlops_platform.monitoring.predictions import verified_result_manifest

    found = []
    for directory, manifest, rows, data in scorings(predictions, key):
        digest = hashlib.sha256(data).hexdigest()
        recorded = verified_result_manifest(
            directory, manifest, digest, recorded_predictions_sha256, recorded_scoring_manifest
        )
        found.append((directory, recorded, rows, digest))
    if not found:
        raise LineageNotFoundError(
            f"No prediction for {key!r} in {predictions}; check the id, or pass the result "
            "directory that scored it (`mlops infer --json` prints output_dir)."
        )
    if len(found) > 1:
        found = _newest_first(found, predictions, key, notes)
    directory, manifest, rows, digest = found[0]
    row = {name: _plain(value) for name, value in rows.slice(0, 1).to_pylist()[0].items()}
    others = [other for other, *_ in found[1:]]
    return directory, manifest, row, digest, others


_Found = TypeVar("_Found", bound=tuple)


def _newest_first(
    found: list[_Found], predictions: Path, key: str, notes: list[str]
) -> list[_Found]:
    """``found`` (directory, recorded manifest, ...) ordered by the verified `batch_inference`
    record of each result's run, newest first."""
    read: list[str] = []
    recorded = {
        str((event.get("details") or {}).get("inference_run_id")): event
        for event in governance_events(
            None, None, None, read, frozenset({AuditEventType.BATCH_INFERENCE})
        )
    }
    notes.extend(note for note in read if note not in notes)
    unrecorded = [f[0].name for f in found if str(f[1]["inference_run_id"]) not in recorded]
    if unrecorded:
        raise LineageUnverified(
            f"{key} was scored by {len(found)} results under {predictions}, but the run of "
            f"{', '.join(unrecorded[:3])}{' ...' if len(unrecorded) > 3 else ''} has no "
            "batch_inference record in the audit trails this checkout reads, so which scoring "
            "is the newest cannot be told from evidence (a manifest's finishing time is "
            "editable). Pass one result's own directory as --predictions to trace that scoring, "
            "and run `mlops audit verify` to see whether records were removed."
        )

    def when(entry: _Found) -> tuple[str, int]:
        event = recorded[str(entry[1]["inference_run_id"])]
        return str(event["recorded_at"]), int(event["seq"])

    return sorted(found, key=when, reverse=True)


def _newer_recorded_results_missing(
    predictions: Path, manifest: Mapping[str, Any], key: str
) -> list[str]:
    """A note naming the results the verified trail records under ``predictions`` after the
    traced one whose folders are not there (moved, hidden or deleted): one of them may have
    scored ``key`` later, and "the newest" is then only the newest that is still on disk."""
    read: list[str] = []
    events = governance_events(None, None, None, read, frozenset({AuditEventType.BATCH_INFERENCE}))
    traced = next(
        (
            e
            for e in events
            if str((e.get("details") or {}).get("inference_run_id"))
            == str(manifest["inference_run_id"])
        ),
        None,
    )
    if traced is None:
        return []
    root = predictions.expanduser().resolve()
    after = (str(traced["recorded_at"]), int(traced["seq"]))
    missing = sorted(
        {
            Path(str(e["details"]["output_dir"])).name
            for e in events
            if (str(e["recorded_at"]), int(e["seq"])) > after
            and (e.get("details") or {}).get("output_dir")
            and Path(str(e["details"]["output_dir"])).parent == root
            and not Path(str(e["details"]["output_dir"])).is_dir()
        }
    )
    if not missing:
        return []
    return [
        f"The audit trail records {len(missing)} later scoring(s) under {predictions} whose "
        f"folder is not there ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}): "
        f"moved, hidden or deleted. One may have scored {key} after the result traced here, "
        "which is only the newest still on disk; `mlops audit log` names their runs."
    ]


def trace_prediction(predictions: Path, key: str | int) -> Lineage:
    """The lineage of the prediction whose key (e.g. encounter_id) is `key`."""
    from zenml.client import Client

    notes: list[str] = []
    # The files and manifest of each result holding the prediction are what its inference run
    # recorded; the newest is the one the trail recorded last.
    directory, manifest, row, _, others = find_prediction(Path(predictions), str(key), notes)
    client = Client()
    if others:
        notes.append(
            f"{key} was also scored in {len(others)} other result(s) under {predictions} "
            f"(newest first, by their runs' batch_inference records: "
            f"{', '.join(d.name for d in others[:3])}"
            + (" ..." if len(others) > 3 else "")
            + "); this is the newest. Pass a result's own directory as --predictions to trace "
            "that scoring."
        )
    notes.extend(_newer_recorded_results_missing(Path(predictions), manifest, str(key)))
    model = manifest["model"]
    version, training_data, code, training = _version_and_training(
        client, model["name"], model["version"], str(directory), notes
    )
    _require_same_version(version, model.get(VERSION_IDENTITY_KEY), str(directory), notes)
    # And by the run's signed `batch_inference` record (the manifest is ZenML's, editable).
    batches = frozenset({AuditEventType.BATCH_INFERENCE})
    for event in governance_events(version.model.name, None, None, notes, batches):
        if (event.get("details") or {}).get("inference_run_id") != manifest["inference_run_id"]:
            continue
        named_by = f"batch_inference record {event['seq']} ({event['trail']})"
        if event["model_version"] != version.name:
            raise LineageUnverified(
                f"{named_by} says inference run {manifest['inference_run_id']} scored with "
                f"version {event['model_version']}, but the run's manifest in ZenML names "
                f"version {version.name}: the manifest was edited. Leave the result out."
            )
        recorded = (event.get("details") or {}).get(VERSION_IDENTITY_KEY)
        _require_same_version(version, recorded, named_by, notes)
    inference = _run(client, manifest["inference_run_id"], notes, "inference")
    code = {**code, "code_repository": (training or {}).pop("code_repository", None)}
    return Lineage(
        prediction=row,
        key_column=manifest["contract"]["id_columns"][0],
        score_column=manifest["contract"]["score_column"],
        result_dir=str(directory),
        inference_run={
            **(inference or {"id": manifest["inference_run_id"]}),
            "environment": manifest["environment"],
            "actor": manifest["actor"],
            "input": manifest["input"],
            "shard": manifest["shard"],
            "drift_detected": manifest["drift"]["detected"],
            "scoring_code": manifest["code"],
        },
        model_version={
            "name": version.model.name,
            "version": version.name,
            "stage_at_scoring": model["stage"],
            "stage_now": version.stage,
            "context_artifact": model.get("context_artifact"),
            "tags": sorted(tag.name for tag in version.tags),
            "created": str(version.created),
            "model_file": model_file_status(version, _verifying_env(model["stage"], manifest)),
        },
        training_run=training,
        training_data=training_data,
        code=code,
        governance=governance_events(version.model.name, version.name, str(version.id), notes),
        notes=notes,
    )


def _verifying_env(stage: str, manifest: dict[str, Any]) -> str:
    """The environment whose keys verify the model file: the stage's, else the scoring run's."""
    from mlops_platform.governance.promotion import STAGE_ENVIRONMENTS

    return STAGE_ENVIRONMENTS.get(stage) or str(manifest["environment"])


def governance_events(
    model_name: str | None,
    model_version: str | None,
    version_id: str | None,
    notes: list[str],
    event_types: frozenset[str] = GOVERNANCE_EVENTS,
) -> list[dict[str, Any]]:
    """Gate, approval, promotion and rollback events of one version (ZenML id `version_id`: not
    those of an earlier version that had its number; None: every version of that number;
    ``model_version`` None: of every number; ``model_name`` None: of every model), from every
    configured trail."""
    urls: dict[str, str] = {}
    for env in ENVIRONMENTS:
        try:
            urls.setdefault(load_platform_settings(env).audit.url, env)
        except (ConfigError, UnsetVariableError) as error:
            notes.append(f"Audit trail of {env} not read: {error}")
    events = []
    for env in urls.values():
        try:
            trail = audit_trail(env, write=False)  # with the environment's trusted keys
        except AuditTrailMissing as error:
            notes.append(f"Audit trail of {env} not read: {error}")
            continue
        try:
            # Verified: a forged or edited record stops lineage with exit 8, never shows.
            records = trail.records(model_name=model_name, event_types=event_types, verified=True)
        finally:
            trail.close()
        events += [
            {
                "trail": env,
                "seq": r.seq,
                "model_version": r.model_version,
                "event_type": r.event_type,
                "actor": r.actor,
                "stage": r.stage,
                "recorded_at": r.recorded_at,
                "details": r.details,
            }
            for r in records
            if (model_version is None or r.model_version == model_version)
            and (version_id is None or about_version(r, version_id))
        ]
    return sorted(events, key=lambda e: e["recorded_at"])


def _version_and_training(
    client: Any, model_name: str, model_version: str, named_by: str, notes: list[str]
) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The model version a prediction names, its training data and code, and its training run.

    Data hash, commit and training run come from the version's verified `training_completed`
    record, never from ZenML's ``registration`` metadata, which any ZenML user can rewrite; a
    metadata field that disagrees with the record is a note (`recorded_training_facts`)."""
    from mlops_platform.governance.model_stages import recorded_training
    from mlops_platform.governance.promotion import TrainingAuthorUnknown, recorded_training_facts

    try:
        version = client.get_model_version(model_name, model_version)
    except KeyError as error:
        raise LineageNotFoundError(
            f"Model {model_name} version {model_version} named by {named_by} is not in the "
            "ZenML store; was it deleted, or is this another ZenML server's result?"
        ) from error
    try:
        record = recorded_training(version)
    except TrainingAuthorUnknown as error:
        raise LineageUnverified(
            f"{model_name} version {model_version}, named by {named_by}, has no verified "
            "training record in the audit trails this checkout reads, so its training data, "
            "commit and run cannot be shown from evidence (ZenML's registration metadata is "
            "editable and is not evidence). Versions trained with `mlops train` have one; run "
            "`mlops audit verify` to see whether records were removed"
        ) from error
    registration = version.run_metadata.get("registration") or {}
    data, code, run_id, disagreements = recorded_training_facts(
        registration if isinstance(registration, dict) else {}, record.details
    )
    notes.extend(
        f"ZenML metadata of version {version.name} disagrees with its verified training record "
        f"(audit record {record.seq}): {problem}; shown is the record's"
        for problem in disagreements
    )
    training = _run(client, run_id, notes, "training") if run_id else None
    return version, data, code, training


def _require_same_version(version: Any, recorded: Any, named_by: str, notes: list[str]) -> None:
    """The version a prediction's evidence names by identity (ZenML id, model file SHA-256) must
    be the one its number finds: a number is given again after a deletion, and that other
    version's training, code and approvals are not this prediction's lineage."""
    from mlops_platform.trust.events import version_identity

    if recorded is None:
        notes.append(
            f"{named_by} names version {version.name} by number only (written before results "
            "named their version's id): a version deleted and its number reused is not told apart"
        )
        return
    if not version_identity(version).matches(recorded):
        raise LineageUnverified(
            f"{named_by} was scored by model {version.model.name} version {version.name} with "
            f"ZenML id {recorded.get('model_version_id') if isinstance(recorded, dict) else '?'}"
            f", but version {version.name} is now ZenML id {version.id}: the version that "
            "scored it was deleted and its number given to another, whose training, code and "
            "approvals are not this prediction's. Its lineage is in the audit trail "
            "(`mlops audit log`); find out who deleted the version."
        )


class LineageUnverified(AuditError):
    """A link of a prediction's chain has no verified record (exit 8)."""


def _run(client: Any, run_id: str, notes: list[str], role: str) -> dict[str, Any] | None:
    try:
        run = client.get_pipeline_run(UUID(str(run_id)))
    except (KeyError, ValueError):
        notes.append(f"The {role} run {run_id} is not in the ZenML store.")
        return None
    reference = run.code_reference
    return {
        "id": str(run.id),
        "name": run.name,
        "pipeline": run.pipeline.name if run.pipeline else None,
        "status": str(run.status),
        "created": str(run.created),
        "code_repository": (
            {
                "name": reference.code_repository.name,
                "commit": reference.commit,
                "subdirectory": reference.subdirectory,
            }
            if reference is not None
            else None
        ),
    }


def _typed(key: str, arrow_type: pa.DataType, column: str) -> pa.Scalar:
    try:
        return pa.scalar(int(key) if pa.types.is_integer(arrow_type) else key, arrow_type)
    except (ValueError, OverflowError, pa.ArrowInvalid) as error:  # too large for the column
        raise LineageNotFoundError(
            f"{key!r} cannot be a {column} ({arrow_type}); pass the id as it appears in the input."
        ) from error


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _holds_request(path: Path, request_id: str) -> bool:
    """Whether an unrecorded log part (anyone may have put it there) names the request; a file
    that is not a readable part names nothing."""
    try:
        table = pq.read_table(path, columns=["request_id"])
    except (pa.ArrowException, OSError, KeyError, ValueError):
        return False
    return bool(table.filter(pc.field("request_id") == request_id).num_rows)


def trace_request(log_dir: Path, request_id: str, env: str = "local") -> dict[str, Any]:
    """The lineage of one served request: its predictions (and shadow scores) from the log parts
    a stopped service of ``env`` recorded in the verified trail (`serving_stopped`: each part's
    SHA-256), the model version that answered with its registration, training run, data and
    code, the `serving_started` record of the service, and the version's governance events.

    The log's own manifest is written by whoever can write the directory, so it is never
    evidence: a part no stopped service recorded is not read (a running service's parts count
    once it stops), and a recorded part whose bytes changed raises `PredictionsIntegrityError`.
    """
    from zenml.client import Client

    from mlops_platform.monitoring.predictions import (
        PredictionsIntegrityError,
        recorded_parts_from,
        stopped_services,
        verified_log_parts,
    )
    from mlops_platform.serving.log import parts

    directory = Path(log_dir).expanduser().resolve()
    # Refuses first if a part the trail records here is gone (a request could vanish with it).
    verified, unrecorded = verified_log_parts(directory, recorded_parts_from(stopped_services(env)))
    if not directory.is_dir() or not parts(directory):
        raise LineageNotFoundError(
            f"No prediction log at {log_dir}: pass the --log-dir of `mlops serve start` (default "
            "$MLOPS_STATE_DIR/prediction-log) with --predictions."
        )
    rows: list[dict[str, Any]] = []
    for path, entry, table, _ in verified:
        for row in table.filter(pc.field("request_id") == request_id).to_pylist():
            if str(row.get("inference_run_id")) != entry.inference_run_id:
                raise PredictionsIntegrityError(
                    f"Prediction log part {path} is recorded for service run "
                    f"{entry.inference_run_id}, but its row for request {request_id!r} names "
                    f"run {row.get('inference_run_id')}."
                )
            rows.append({k: _plain(v) for k, v in row.items()} | {"log_part": path.name})
    if not rows:
        elsewhere = [name for name in unrecorded if _holds_request(directory / name, request_id)]
        if elsewhere:
            raise LineageNotFoundError(
                f"Request {request_id!r} is only in log part(s) {', '.join(elsewhere)} of "
                f"{log_dir}, which no stopped service recorded in the {env} audit trail: a "
                "running service's answers can be traced once it stops (`mlops serve stop`); "
                "a part no service recorded is not evidence of what was served."
            )
        raise LineageNotFoundError(
            f"No served request {request_id!r} in the recorded parts of the prediction log "
            f"{log_dir} ({env}); the response's request_id names it, and a service's parts are "
            "recorded when it stops."
        )
    served = [r for r in rows if not r["shadow"]]
    shadow = [r for r in rows if r["shadow"]]
    if not served:
        raise LineageNotFoundError(
            f"Request {request_id!r} has only shadow scores in the recorded parts of {log_dir} "
            "read here (the answer it got is in another part): pass the directory the service "
            "wrote its whole log to with --predictions."
        )
    first = served[0]
    client = Client()
    notes: list[str] = []
    version, training_data, code, training = _version_and_training(
        client, first["model_name"], first["model_version"], "the prediction log", notes
    )
    # The service's records, whichever version had the number then: the one that answered must
    # be the one the number names now.
    started = [
        e
        for e in governance_events(version.model.name, version.name, None, notes, _SERVING_EVENTS)
        if (e.get("details") or {}).get("inference_run_id") == first["inference_run_id"]
    ]
    for event in started:
        _require_same_version(
            version,
            (event.get("details") or {}).get(VERSION_IDENTITY_KEY),
            f"service record {event['seq']} ({event['trail']})",
            notes,
        )
    return {
        "request_id": request_id,
        "predictions": served,
        "shadow_predictions": shadow,
        "log_dir": str(log_dir),
        "service": started,
        "model_version": {
            "name": version.model.name,
            "version": version.name,
            "stage_at_scoring": first["model_stage"],
            "stage_now": version.stage,
            "model_file": model_file_status(version, _verifying_env(first["model_stage"], {})),
        },
        "training_run": training,
        "training_data": training_data,
        "code": {**code, "code_repository": (training or {}).pop("code_repository", None)},
        "governance": governance_events(version.model.name, version.name, str(version.id), notes),
        "notes": notes,
    }

"""Hash chain of governance events: canonical serialisation, hashing and verification.

Each record's hash covers all of its fields plus the previous record's hash, so editing, deleting,
reordering or inserting a record breaks the chain at that record. An auditor can re-check a chain
without this code: ``record_hash = sha256(utf8(json))`` where ``json`` is the object of the nine
fields below, keys sorted, separators ``,`` and ``:``, non-ASCII kept as is.

Each record is also signed: ``signature`` is the writer's Ed25519 signature over the ASCII bytes of
``record_hash`` and ``key_id`` names the key (`mlops_platform.trust.signing`). Because a record's
hash covers the previous record's hash, a valid signature on record N vouches for records 1..N, so
a database writer without the key can neither forge a record nor re-seal the whole chain.

What hashes and signatures cannot prove on their own: dropping the newest records leaves a chain
that is consistent and signed. The head (seq, hash) is therefore also anchored outside the
database (ZenML model-version metadata, MLflow tags) and `verify` compares the trail with it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64


class AuditEventType(StrEnum):
    """Governance events the trail accepts; anything else is a typo or an unreviewed event."""

    TRAINING_COMPLETED = "training_completed"
    GATE_PASSED = "gate_passed"
    GATE_FAILED = "gate_failed"
    APPROVAL_RECORDED = "approval_recorded"
    PROMOTION_STARTED = "promotion_started"
    PROMOTION = "promotion"
    PROMOTION_ABORTED = "promotion_aborted"
    PROMOTION_DENIED = "promotion_denied"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK = "rollback"
    ROLLBACK_ABORTED = "rollback_aborted"
    STAGE_RESTORED = "stage_restored"  # ZenML's stage given back to the recorded holder
    OVERRIDE = "override"
    COUNTERSIGNATURE = "countersignature"
    APPROVAL_WITHDRAWN = "approval_withdrawn"  # by the person who gave it, before it was used
    BATCH_INFERENCE = "batch_inference"
    DRIFT_DETECTED = "drift_detected"
    PIPELINE_FAILED = "pipeline_failed"
    OUTCOMES_CHECKED = "outcomes_checked"
    SERVING_STARTED = "serving_started"
    SERVING_MODEL_SWITCHED = "serving_model_switched"
    SERVING_SWITCH_REFUSED = "serving_switch_refused"
    SERVING_STOPPED = "serving_stopped"


EVENT_TYPES: frozenset[str] = frozenset(event.value for event in AuditEventType)


class AuditError(RuntimeError):
    """The audit trail could not record or read an event."""


class AuditTrailMissing(AuditError):
    """The trail's database, file or table does not exist; trails are created only explicitly."""


class AuditChainBroken(AuditError):
    """The trail does not verify (edited, forged, unsigned, truncated or rewritten records)."""


class InvalidAuditEvent(ValueError):
    """An event was rejected before it reached the trail."""


@dataclass(frozen=True)
class AuditRecord:
    """One link of the chain, exactly as stored."""

    seq: int
    recorded_at: str
    event_type: str
    actor: str
    model_name: str | None
    model_version: str | None
    stage: str | None
    details: dict[str, Any]
    prev_hash: str
    record_hash: str
    key_id: str | None = None
    signature: str | None = None

    def signed_bytes(self) -> bytes:
        """What the writer signs: the record hash, which covers every field and the chain."""
        return self.record_hash.encode("ascii")


# The details key, in every record about one model version, of what tells that version apart from
# an earlier one that had the same number (ZenML gives a deleted version's number to the next).
VERSION_IDENTITY_KEY = "version_identity"


@dataclass(frozen=True)
class VersionIdentity:
    """One ZenML model version as records name it: its ZenML id and, once it is registered, the
    SHA-256 of its model file (from its signed model-file pin)."""

    version_id: str
    model_sha256: str | None = None

    def as_dict(self) -> dict[str, str]:
        found = {"model_version_id": self.version_id}
        if self.model_sha256:
            found["model_sha256"] = self.model_sha256
        return found

    def matches(self, recorded: Any) -> bool:
        """Whether a record's identity (``details[VERSION_IDENTITY_KEY]``) names this version.

        Not when it names another id, or another model file (a record made once the version was
        registered). A record without one was written before records named versions this way
        and matches by number alone (docs/SECURITY.md, "What remains").
        """
        if recorded is None:
            return True
        if not isinstance(recorded, dict) or str(recorded.get("model_version_id")) != (
            self.version_id
        ):
            return False
        sha = recorded.get("model_sha256")
        return sha is None or sha == self.model_sha256

    def recorded_in(self, record: AuditRecord) -> bool:
        return self.matches(record.details.get(VERSION_IDENTITY_KEY))


@dataclass(frozen=True)
class ChainVerification:
    """Outcome of a verification; ``records_checked`` counts the records found intact."""

    ok: bool
    records_checked: int
    first_bad_seq: int | None
    problem: str | None


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value``: sorted keys, no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_payload(
    seq: int,
    recorded_at: str,
    event_type: str,
    actor: str,
    model_name: str | None,
    model_version: str | None,
    stage: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """Bytes that are hashed: every field of the record except its own hash."""
    fields = {
        "seq": seq,
        "recorded_at": recorded_at,
        "event_type": event_type,
        "actor": actor,
        "model_name": model_name,
        "model_version": model_version,
        "stage": stage,
        "details": details,
        "prev_hash": prev_hash,
    }
    return canonical_json(fields).encode("utf-8")


def compute_hash(
    seq: int,
    recorded_at: str,
    event_type: str,
    actor: str,
    model_name: str | None,
    model_version: str | None,
    stage: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    """Hex SHA-256 of the canonical payload."""
    payload = canonical_payload(
        seq, recorded_at, event_type, actor, model_name, model_version, stage, details, prev_hash
    )
    return hashlib.sha256(payload).hexdigest()


def _recompute(record: AuditRecord, seq: int | None = None) -> str:
    return compute_hash(
        record.seq if seq is None else seq,
        record.recorded_at,
        record.event_type,
        record.actor,
        record.model_name,
        record.model_version,
        record.stage,
        record.details,
        record.prev_hash,
    )


def _check_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAuditEvent(f"{path} is {value}; JSON evidence needs finite numbers")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEvent(
                    f"{path} has key {key!r} of type {type(key).__name__}; keys must be strings"
                )
            _check_json(item, f"{path}[{key!r}]")
        return
    raise InvalidAuditEvent(
        f"{path} is a {type(value).__name__} ({value!r}), which is not JSON; "
        "convert it to str, int, float, bool, None, list or dict first"
    )


def validate_event(
    event_type: str,
    actor: str,
    model_name: str | None,
    model_version: str | None,
    stage: str | None,
    details: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """Check an event before it is chained; return the plain event type and JSON-normalised
    details (tuples become lists), so the returned record equals what a later read yields."""
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise InvalidAuditEvent(
            f"unknown audit event_type {event_type!r}; expected one of {sorted(EVENT_TYPES)}"
        )
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidAuditEvent(
            f"actor must name the person or service responsible, got {actor!r}; "
            "pass a user id, e-mail or CI job identity"
        )
    for name, value in (
        ("model_name", model_name),
        ("model_version", model_version),
        ("stage", stage),
    ):
        if value is not None and not isinstance(value, str):
            raise InvalidAuditEvent(
                f"{name} must be a string or None, got {type(value).__name__} {value!r}; "
                f"pass str({value!r})"
            )
    details = {} if details is None else details
    if not isinstance(details, dict):
        raise InvalidAuditEvent(f"details must be a dict, got {type(details).__name__}")
    _check_json(details, "details")
    return str(event_type), json.loads(canonical_json(details))


def seal_record(
    *,
    seq: int,
    recorded_at: str,
    event_type: str,
    actor: str,
    model_name: str | None,
    model_version: str | None,
    stage: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> AuditRecord:
    """Build a record whose hash matches its fields."""
    record_hash = compute_hash(
        seq, recorded_at, event_type, actor, model_name, model_version, stage, details, prev_hash
    )
    return AuditRecord(
        seq=seq,
        recorded_at=recorded_at,
        event_type=event_type,
        actor=actor,
        model_name=model_name,
        model_version=model_version,
        stage=stage,
        details=details,
        prev_hash=prev_hash,
        record_hash=record_hash,
    )


def _edit_problem(record: AuditRecord, seq_by_hash: dict[str, int]) -> str:
    """Explain a hash mismatch; a record moved to another seq still hashes under its old seq."""
    recomputed = _recompute(record)
    if record.prev_hash == GENESIS:
        original_seq: int | None = 1
    else:
        previous = seq_by_hash.get(record.prev_hash)
        original_seq = None if previous is None else previous + 1
    if (
        original_seq is not None
        and original_seq != record.seq
        and _recompute(record, original_seq) == record.record_hash
    ):
        return (
            f"record {record.seq} holds the content of record {original_seq} "
            f"(its hash only matches with seq {original_seq}): records were reordered or renumbered"
        )
    return (
        f"record {record.seq} was edited "
        f"(stored hash {record.record_hash} != recomputed {recomputed})"
    )


def _missing(first: int, last: int, context: str) -> str:
    if first == last:
        return f"record {first} is missing ({context})"
    return f"records {first}-{last} are missing ({context})"


def _link_problem(
    previous: AuditRecord | None, record: AuditRecord, records: Sequence[AuditRecord]
) -> tuple[int, str] | None:
    """First problem of ``record`` given the last good record before it, as (bad seq, sentence)."""
    if _recompute(record) != record.record_hash:
        return record.seq, _edit_problem(record, {r.record_hash: r.seq for r in records})
    expected_seq = 1 if previous is None else previous.seq + 1
    if record.seq > expected_seq and any(r.seq == expected_seq for r in records):
        return record.seq, (
            f"record {record.seq} appears where record {expected_seq} belongs (out of order)"
        )
    if record.seq > expected_seq:
        context = (
            f"the chain starts at seq {record.seq}"
            if previous is None
            else f"sequence jumps from {previous.seq} to {record.seq}"
        )
        return expected_seq, _missing(expected_seq, record.seq - 1, context)
    if record.seq < expected_seq:
        return record.seq, (
            f"record {record.seq} appears after record {expected_seq - 1} "
            "(duplicated or out of order)"
        )
    expected_prev = GENESIS if previous is None else previous.record_hash
    if record.prev_hash != expected_prev:
        after = "the genesis hash" if previous is None else f"record {previous.seq}"
        return record.seq, (
            f"record {record.seq} does not follow {after} "
            "(prev_hash mismatch: reordered or inserted)"
        )
    return None


def verify_chain(
    records: Sequence[AuditRecord], expected_head: str | None = None
) -> ChainVerification:
    """Check records in the given (seq) order and stop at the first problem.

    ``expected_head`` is an externally kept hash of a record that must still be in the chain;
    records appended after it are fine. It catches dropped newest records and rewritten chains.
    """
    previous: AuditRecord | None = None
    for checked, record in enumerate(records):
        problem = _link_problem(previous, record, records)
        if problem is not None:
            return ChainVerification(False, checked, *problem)
        previous = record

    if expected_head is not None and all(r.record_hash != expected_head for r in records):
        last_seq = 0 if previous is None else previous.seq
        return ChainVerification(
            False,
            len(records),
            last_seq + 1,
            f"anchored hash {expected_head} is not in the chain (last record is {last_seq}): "
            f"records after {last_seq} were removed, or the chain was rewritten",
        )
    return ChainVerification(True, len(records), None, None)

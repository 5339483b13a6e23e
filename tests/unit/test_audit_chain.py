"""The pure hash chain: every kind of tampering is caught and the message names the record."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from mlops_platform.trust.audit import (
    EVENT_TYPES,
    GENESIS,
    AuditEventType,
    AuditRecord,
    InvalidAuditEvent,
    canonical_payload,
    compute_hash,
    seal_record,
    validate_event,
    verify_chain,
)

EVENTS = sorted(EVENT_TYPES)


def build_chain(length: int = 8) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for seq in range(1, length + 1):
        records.append(
            seal_record(
                seq=seq,
                recorded_at=f"2025-03-01T10:00:{seq:02d}.000001+00:00",
                event_type=EVENTS[seq % len(EVENTS)],
                actor=f"user{seq}@hospital.example",
                model_name="readmission" if seq % 2 else None,
                model_version=str(seq),
                stage="staging",
                details={"ticket": f"CHG-{seq}", "metrics": {"auc": 0.7 + seq / 100}, "note": "ñ"},
                prev_hash=records[-1].record_hash if records else GENESIS,
            )
        )
    return records


def fields_of(record: AuditRecord) -> dict[str, object]:
    """Every hashed field of a record, i.e. all but its own hash and its signature."""
    unhashed = ("record_hash", "key_id", "signature")
    return {f: v for f, v in dataclasses.asdict(record).items() if f not in unhashed}


def test_intact_chain_verifies() -> None:
    records = build_chain()
    result = verify_chain(records)
    assert result.ok
    assert result.records_checked == len(records)
    assert result.first_bad_seq is None
    assert result.problem is None


def test_empty_chain_verifies() -> None:
    assert verify_chain([]).ok


def test_hash_is_sha256_of_documented_json() -> None:
    record = build_chain(1)[0]
    by_hand = json.dumps(
        fields_of(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert hashlib.sha256(by_hand.encode("utf-8")).hexdigest() == record.record_hash


@pytest.mark.parametrize(
    "field",
    [
        "seq",
        "recorded_at",
        "event_type",
        "actor",
        "model_name",
        "model_version",
        "stage",
        "details",
        "prev_hash",
    ],
)
def test_payload_covers_every_field(field: str) -> None:
    record = build_chain(1)[0]
    fields = fields_of(record)
    changed = {**fields, field: {"x": 1} if field == "details" else 99 if field == "seq" else "x"}
    assert canonical_payload(**changed) != canonical_payload(**fields)
    assert compute_hash(**changed) != compute_hash(**fields)


def test_payload_ignores_key_order() -> None:
    record = build_chain(1)[0]
    fields = fields_of(record)
    reordered = {**fields, "details": dict(reversed(list(record.details.items())))}
    assert canonical_payload(**reordered) == canonical_payload(**fields)


@pytest.mark.parametrize(
    "change",
    [{"actor": "mallory"}, {"details": {"ticket": "CHG-forged"}}, {"stage": "production"}],
)
def test_edited_record_is_named(change: dict[str, object]) -> None:
    records = build_chain()
    records[4] = dataclasses.replace(records[4], **change)
    result = verify_chain(records)
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.records_checked == 4
    assert result.problem is not None
    assert result.problem.startswith("record 5 was edited")
    assert records[4].record_hash in result.problem


def test_deleted_record_is_named() -> None:
    records = build_chain()
    del records[3]
    result = verify_chain(records)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert result.problem == "record 4 is missing (sequence jumps from 3 to 5)"


def test_deleted_run_of_records_is_named() -> None:
    records = build_chain()
    del records[2:5]
    result = verify_chain(records)
    assert result.first_bad_seq == 3
    assert result.problem == "records 3-5 are missing (sequence jumps from 2 to 6)"


def test_deleted_first_record_is_caught() -> None:
    result = verify_chain(build_chain()[1:])
    assert result.first_bad_seq == 1
    assert result.problem == "record 1 is missing (the chain starts at seq 2)"


def test_deleted_and_renumbered_record_is_caught() -> None:
    records = build_chain()
    del records[3]
    records[3:] = [dataclasses.replace(r, seq=r.seq - 1) for r in records[3:]]
    result = verify_chain(records)
    assert result.first_bad_seq == 4


def test_swapped_records_are_caught() -> None:
    records = build_chain()
    records[2], records[5] = records[5], records[2]
    result = verify_chain(records)
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.problem == "record 6 appears where record 3 belongs (out of order)"


def test_swapped_seq_values_are_explained_as_reordering() -> None:
    records = build_chain()
    records[2], records[5] = (
        dataclasses.replace(records[5], seq=3),
        dataclasses.replace(records[2], seq=6),
    )
    result = verify_chain(records)
    assert result.first_bad_seq == 3
    assert result.problem is not None
    assert result.problem.startswith("record 3 holds the content of record 6")


def test_forged_record_with_valid_hash_but_broken_link_is_caught() -> None:
    records = build_chain()
    records[4] = seal_record(**fields_of(records[4]) | {"actor": "mallory", "prev_hash": "f" * 64})
    result = verify_chain(records)
    assert result.first_bad_seq == 5
    assert result.problem == (
        "record 5 does not follow record 4 (prev_hash mismatch: reordered or inserted)"
    )


def test_inserted_record_linked_to_its_predecessor_is_caught() -> None:
    records = build_chain()
    inserted = seal_record(
        seq=5,
        recorded_at=records[4].recorded_at,
        event_type=AuditEventType.APPROVAL_RECORDED,
        actor="mallory",
        model_name="readmission",
        model_version="5",
        stage="production",
        details={"approvers": ["mallory"]},
        prev_hash=records[3].record_hash,
    )
    records.insert(4, inserted)
    result = verify_chain(records)
    assert result.first_bad_seq == 5
    assert result.problem == "record 5 appears after record 5 (duplicated or out of order)"


def test_first_record_must_start_from_genesis() -> None:
    record = build_chain(1)[0]
    forged = seal_record(**fields_of(record) | {"prev_hash": "1" * 64})
    result = verify_chain([forged])
    assert result.problem == (
        "record 1 does not follow the genesis hash (prev_hash mismatch: reordered or inserted)"
    )


def test_truncated_head_is_invisible_without_an_anchor() -> None:
    records = build_chain()
    assert verify_chain(records[:5]).ok


def test_expected_head_catches_truncation() -> None:
    records = build_chain()
    result = verify_chain(records[:5], expected_head=records[-1].record_hash)
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.problem is not None
    assert records[-1].record_hash in result.problem
    assert "last record is 5" in result.problem


def test_expected_head_catches_rewritten_chain() -> None:
    records = build_chain()
    rewritten = records[:2]
    for record in records[2:]:
        changes = {"actor": "mallory", "prev_hash": rewritten[-1].record_hash}
        rewritten.append(seal_record(**fields_of(record) | changes))
    assert verify_chain(rewritten).ok
    result = verify_chain(rewritten, expected_head=records[-1].record_hash)
    assert not result.ok
    assert result.problem is not None
    assert "rewritten" in result.problem


def test_expected_head_allows_later_appends() -> None:
    records = build_chain()
    assert verify_chain(records, expected_head=records[4].record_hash).ok
    assert verify_chain(records, expected_head=records[-1].record_hash).ok


def test_validate_event_normalises_details() -> None:
    event_type, details = validate_event(
        AuditEventType.PROMOTION, "ci@github", "readmission", "3", "production", {"runs": (1, 2)}
    )
    assert type(event_type) is str
    assert event_type == "promotion"
    assert details == {"runs": [1, 2]}
    assert validate_event("rollback", "alice", None, None, None, None)[1] == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_type": "promoted"}, "unknown audit event_type 'promoted'"),
        ({"actor": "  "}, "actor must name"),
        ({"actor": None}, "actor must name"),
        ({"model_version": 3}, r"model_version must be a string or None, got int 3"),
        ({"details": ["a"]}, "details must be a dict"),
        ({"details": {"auc": float("nan")}}, r"details\['auc'\] is nan"),
        ({"details": {"at": object()}}, r"details\['at'\] is a object"),
        ({"details": {"m": {1: "x"}}}, r"details\['m'\] has key 1 of type int"),
    ],
)
def test_validate_event_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    arguments = {
        "event_type": "promotion",
        "actor": "alice",
        "model_name": None,
        "model_version": None,
        "stage": None,
        "details": None,
    } | kwargs
    with pytest.raises(InvalidAuditEvent, match=message):
        validate_event(**arguments)  # type: ignore[arg-type]


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidAuditEvent, ValueError)

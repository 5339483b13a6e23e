"""Anchors in ZenML metadata: an edited or re-labelled anchor stops the cross-check (exit 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.trust.audit import AuditChainBroken, AuditRecord
from mlops_platform.trust.events import ANCHOR_PREFIX, ENVIRONMENTS, mirror_value, parse_anchor

KEY = "audit_000012_promotion"
DIGEST = "ab" * 32


def anchor_value(**changes: Any) -> dict[str, Any]:
    """What `mirror_to_model_version` writes for record 12, a staging promotion."""
    value: dict[str, Any] = {
        "seq": 12,
        "event_type": "promotion",
        "actor": "bob",
        "stage": "staging",
        "recorded_at": "2026-11-30T12:00:00+00:00",
        "record_hash": DIGEST,
        "details": {"environment": "staging"},
    }
    value.update(changes)
    return value


def test_a_well_formed_anchor_is_read() -> None:
    anchor = parse_anchor(KEY, anchor_value(), "readmission", "3")
    assert anchor is not None
    assert (anchor.seq, anchor.record_hash) == (12, DIGEST)
    assert KEY in anchor.source and "version 3" in anchor.source


@pytest.mark.parametrize("key", ["registration", "gate_metrics", "audit_head", "audit_12_x"])
def test_other_metadata_is_not_an_anchor(key: str) -> None:
    assert parse_anchor(key, {"seq": "anything"}, "readmission", "3") is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (anchor_value(details={"environment": "nowhere"}), "environment 'nowhere'"),
        (anchor_value(details={}), "environment None"),
        (anchor_value(details="staging"), "environment None"),
        (anchor_value(seq=11), "seq 11"),
        (anchor_value(seq="12"), "seq '12'"),
        (anchor_value(seq=True), "seq True"),
        (anchor_value(event_type="approval_recorded"), "event type"),
        (anchor_value(record_hash="0" * 63), "record_hash"),
        (anchor_value(record_hash=None), "record_hash"),
        ({k: v for k, v in anchor_value().items() if k != "seq"}, "seq None"),
        ("deleted", "not a mapping"),
    ],
)
def test_an_edited_anchor_is_an_integrity_failure(value: Any, named: str) -> None:
    with pytest.raises(AuditChainBroken, match="not a well-formed audit anchor") as caught:
        parse_anchor(KEY, value, "readmission", "3")
    assert named in str(caught.value) and KEY in str(caught.value)


def test_every_environment_can_be_anchored() -> None:
    for env in ENVIRONMENTS:
        assert parse_anchor(KEY, anchor_value(details={"environment": env}), "m", "1") is not None


def test_a_local_mlflow_store_that_does_not_exist_has_no_anchor_and_is_not_created(
    tmp_path: Path,
) -> None:
    from mlops_platform.trust.events import mlflow_anchors

    store = tmp_path / "mlflow" / "mlflow.db"
    assert mlflow_anchors(f"sqlite:///{store}", "patient_readmission_predictor", ["local"]) == []
    assert not store.exists() and not store.parent.exists()


def _record(details: dict[str, object]) -> AuditRecord:
    return AuditRecord(
        seq=105,
        event_type="promotion",
        actor="bob",
        model_name="readmission",
        model_version="2",
        stage="production",
        recorded_at="2026-12-03T01:00:00+00:00",
        details=details,
        prev_hash="0" * 64,
        record_hash="ab" * 32,
    )


def test_mirror_of_large_details_fits_and_stays_an_anchor() -> None:
    """ZenML skips, with a warning only, a metadata value over 65,535 characters: the mirror of
    a record with huge details holds their digest instead, and still parses as its anchor."""
    from zenml.metadata.metadata_types import validate_metadata

    record = _record({"environment": "production", "reason": "B" * 130_000})
    value = mirror_value(record)
    key = f"{ANCHOR_PREFIX}000105_promotion"

    assert len(json.dumps(value)) < 20_000
    assert key in validate_metadata({key: value})
    assert value["details"]["environment"] == "production"
    assert len(value["details"]["details_sha256"]) == 64
    anchor = parse_anchor(key, value, "readmission", "2")
    assert anchor is not None and (anchor.seq, anchor.record_hash) == (105, "ab" * 32)


def test_mirror_of_small_details_keeps_them() -> None:
    details = {"environment": "local", "reason": "Q3 refresh"}
    assert mirror_value(_record(details))["details"] == details

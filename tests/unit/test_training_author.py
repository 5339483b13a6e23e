"""Who trained a version comes from the platform's `training_completed` records, never from
ZenML metadata; `mlops check` compares the metadata and the `rejected` tag with those records."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_platform.governance.check import version_record_findings
from mlops_platform.governance.promotion import (
    MODEL_VERSION_ID_KEY,
    TrainingAuthorUnknown,
    training_author,
)
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG
from mlops_platform.trust.audit import GENESIS, AuditError, AuditEventType, AuditRecord, seal_record

MODEL = "m"
VERSION_ID = "0b9c2f6e-0000-4000-8000-000000000003"


def record(
    seq: int, actor: str, version: str = "3", event: str = AuditEventType.TRAINING_COMPLETED,
    **details: Any,
) -> AuditRecord:  # fmt: skip
    return seal_record(
        seq=seq,
        recorded_at="2026-01-01T00:00:00+00:00",
        event_type=event,
        actor=actor,
        model_name=MODEL,
        model_version=version,
        stage=None,
        details=details,
        prev_hash=GENESIS,
    )


def trained(seq: int, actor: str, version: str = "3", version_id: str = VERSION_ID) -> AuditRecord:
    identity = {"name": actor, "source": "github-oidc"}
    return record(seq, actor, version, **{MODEL_VERSION_ID_KEY: version_id, "identity": identity})


def test_author_and_source_come_from_the_training_record() -> None:
    records = [
        trained(1, "dan", version="2", version_id="other"),
        record(2, "ci", event=AuditEventType.GATE_PASSED),
        trained(3, "alice"),
    ]
    author = training_author(records, MODEL, "3", VERSION_ID)
    assert (author.name, author.source, author.seq) == ("alice", "github-oidc", 3)


def test_no_record_of_the_version_is_refused_as_a_trail_problem() -> None:
    # Same number, but another ZenML version (another store): not this version's record.
    records = [trained(1, "alice", version_id="0b9c2f6e-ffff-4000-8000-000000000003")]
    with pytest.raises(TrainingAuthorUnknown, match="no training_completed record") as refused:
        training_author(records, MODEL, "3", VERSION_ID)
    assert isinstance(refused.value, AuditError)  # exit 8
    with pytest.raises(TrainingAuthorUnknown):
        training_author([], MODEL, "3", VERSION_ID)


def test_records_that_disagree_on_the_author_are_refused() -> None:
    with pytest.raises(TrainingAuthorUnknown, match="different training authors"):
        training_author([trained(1, "alice"), trained(2, "dan")], MODEL, "3", VERSION_ID)
    # The same person under another case or width is one author.
    assert training_author([trained(1, "alice"), trained(2, "ALICE")], MODEL, "3", VERSION_ID)


def findings(
    tags: set[str], claimed: str | None, training: list[AuditRecord], rejected: int | None = None
) -> list[tuple[str, str]]:
    found = version_record_findings(
        "model m version 3", tags, claimed, training, rejected, (MODEL, "3", VERSION_ID)
    )
    return [(f.rule, f.message) for f in found]


def test_metadata_author_that_differs_from_the_trail_is_a_finding() -> None:
    assert findings({VALIDATED_TAG}, "alice", [trained(1, "alice")]) == []
    ((rule, message),) = findings({VALIDATED_TAG}, "dan", [trained(1, "alice")])
    assert rule == "author-vs-trail" and "'dan'" in message and "'alice'" in message
    ((rule, message),) = findings({VALIDATED_TAG}, None, [trained(1, "alice")])
    assert rule == "author-vs-trail" and "None" in message
    ((rule, message),) = findings({VALIDATED_TAG}, "alice", [])
    assert rule == "author-vs-trail" and "no training_completed record" in message
    ((rule, _),) = findings({VALIDATED_TAG}, "alice", [trained(1, "alice"), trained(2, "dan")])
    assert rule == "author-vs-trail"
    assert findings({REJECTED_TAG}, None, []) == []  # a rejected version was never registered


def test_rejected_tag_removed_is_a_finding() -> None:
    assert findings({REJECTED_TAG}, None, [], rejected=4) == []
    ((rule, message),) = findings(set(), None, [], rejected=4)
    assert rule == "rejected-tag-vs-trail" and "record 4" in message

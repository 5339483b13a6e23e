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


def test_registration_metadata_that_differs_from_the_training_record_is_a_finding() -> None:
    from mlops_platform.governance.check import registration_findings
    from mlops_platform.governance.promotion import MLFLOW_REGISTERED_VERSION_KEY

    recorded = {"data_file_sha256": "a" * 64, "data_sha256": "b" * 64}
    honest = {"data": {"file_sha256": "a" * 64, "sha256": "b" * 64}, "mlflow": {}}
    assert registration_findings("v3", honest, recorded) == []
    assert (
        registration_findings("v3", honest, {**recorded, MLFLOW_REGISTERED_VERSION_KEY: None}) == []
    )  # a run without MLflow
    assert (
        registration_findings(
            "v3",
            {**honest, "mlflow": {"registered_version": "3"}},
            {**recorded, MLFLOW_REGISTERED_VERSION_KEY: "3"},
        )
        == []
    )

    doctored = {**honest, "data": {"file_sha256": "d" * 64, "sha256": "b" * 64}}
    ((data,),) = [registration_findings("v3", doctored, recorded)]
    assert data.rule == "data-vs-trail" and "d" * 64 in data.message and "a" * 64 in data.message

    aimed = {**honest, "mlflow": {"registered_version": "1"}}
    ((alias,),) = [
        registration_findings("v3", aimed, {**recorded, MLFLOW_REGISTERED_VERSION_KEY: "3"})
    ]
    assert alias.rule == "mlflow-version-vs-trail" and "'1'" in alias.message
    # a legacy record that does not name the MLflow version has nothing to compare it with
    assert registration_findings("v3", aimed, recorded) == []


def test_lineage_and_check_take_commit_run_and_data_from_the_training_record() -> None:
    from mlops_platform.governance.check import registration_findings
    from mlops_platform.governance.promotion import recorded_training_facts

    recorded = {
        "data_file_sha256": "a" * 64, "data_sha256": "b" * 64, "data_source": "file",
        "git_sha": "c" * 40, "git_dirty": False, "pipeline_run_id": "run-1",
    }  # fmt: skip
    honest = {
        "data": {"file_sha256": "a" * 64, "sha256": "b" * 64, "location": "/d.csv", "rows": 9},
        "code": {"git_sha": "c" * 40, "git_dirty": False},
        "pipeline_run_id": "run-1",
    }
    data, code, run, disagreements = recorded_training_facts(honest, recorded)
    assert data == {
        "source": "file", "sha256": "b" * 64, "file_sha256": "a" * 64, "location": "/d.csv",
        "rows": 9, "unverified": ["location", "rows"],
    }  # fmt: skip
    assert code == {"git_sha": "c" * 40, "git_dirty": False} and run == "run-1"
    assert disagreements == [] and registration_findings("v3", honest, recorded) == []

    forged = {
        "data": {**honest["data"], "sha256": "f" * 64, "location": "/approved.csv"},
        "code": {"git_sha": "1" * 40, "git_dirty": True},
        "pipeline_run_id": "run-0",
    }
    data, code, run, disagreements = recorded_training_facts(forged, recorded)
    assert (data["sha256"], code["git_sha"], run) == ("b" * 64, "c" * 40, "run-1")
    assert "location" not in data  # a description of data the record does not name
    assert len(disagreements) == 4
    rules = sorted(f.rule for f in registration_findings("v3", forged, recorded))
    assert rules == ["code-vs-trail", "code-vs-trail", "data-vs-trail", "run-vs-trail"]
    # a legacy record without a commit or run has nothing to compare them with
    assert recorded_training_facts(forged, {"data_sha256": "f" * 64})[3] == []


def test_a_version_is_scored_at_the_threshold_its_gate_judged_not_the_configured_one() -> None:
    from mlops_platform.governance.promotion import (
        OPERATING_THRESHOLD_KEY,
        OperatingThresholdError,
        judged_threshold,
    )

    bounds = (0.08, 0.5)
    assert judged_threshold({OPERATING_THRESHOLD_KEY: 0.15}, 0.99, "3", bounds) == 0.15
    assert judged_threshold({OPERATING_THRESHOLD_KEY: 0.15}, 0.15, "3", bounds) == 0.15
    # recorded before the platform recorded thresholds: the configured one, inside the policy
    assert judged_threshold({}, 0.2, "3", bounds) == 0.2
    with pytest.raises(OperatingThresholdError, match=r"outside the policy's range \[0.08, 0.5\]"):
        judged_threshold({}, 0.99, "3", bounds)
    with pytest.raises(OperatingThresholdError):
        judged_threshold({OPERATING_THRESHOLD_KEY: True}, 0.99, "3", bounds)  # not a number


def test_a_standing_degraded_outcome_verdict_keeps_a_version_out_of_production() -> None:
    from mlops_platform.governance.promotion import degraded_outcome_problem

    checked = AuditEventType.OUTCOMES_CHECKED
    degraded = record(7, "dan", "3", checked, verdict="degraded", as_of="2026-03-01",
                      labels_sha256="e" * 64, recommendation="Retrain it.")  # fmt: skip
    later_ok = record(9, "dan", "3", checked, verdict="ok", labels_sha256="f" * 64)
    other = record(8, "dan", "4", checked, verdict="degraded", labels_sha256="e" * 64)
    problem = degraded_outcome_problem([degraded, later_ok, other], "3")
    assert problem is not None and "audit record 7" in problem and "Retrain it." in problem
    assert degraded_outcome_problem([later_ok], "3") is None  # only ok checks
    assert degraded_outcome_problem([other], "3") is None  # another version's verdict
    assert degraded_outcome_problem([], "3") is None

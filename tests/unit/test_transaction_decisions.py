"""The pure parts of the promotion transaction: which promotions are unfinished, and the check
that the gate compared the candidate with the holder it really replaces."""

from __future__ import annotations

from typing import Any

from mlops_platform.governance.transaction import (
    Unfinished,
    _gate_problems,
    champion_moved,
    recorded_gate_problem,
    roll_forward_problem,
    unfinished,
)
from mlops_platform.trust.audit import GENESIS, AuditEventType, AuditRecord, seal_record


def chain(*events: tuple[str, dict[str, Any]]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for seq, (event, details) in enumerate(events, start=1):
        records.append(
            seal_record(
                seq=seq,
                recorded_at="2026-01-01T00:00:00+00:00",
                event_type=event,
                actor="bob",
                model_name="m",
                model_version=str(seq),
                stage="staging",
                details=details,
                prev_hash=records[-1].record_hash if records else GENESIS,
            )
        )
    return records


def test_started_without_end_is_unfinished() -> None:
    records = chain(
        (AuditEventType.PROMOTION_STARTED, {}),
        (AuditEventType.PROMOTION, {"started_seq": 1}),
        (AuditEventType.PROMOTION_STARTED, {}),
        (AuditEventType.PROMOTION_STARTED, {}),
        (AuditEventType.PROMOTION_ABORTED, {"started_seq": 4}),
        (AuditEventType.PROMOTION, {"started_seq": 99}),  # closes nothing that exists
    )
    assert [u.started.seq for u in unfinished(records)] == [3]


def test_rollbacks_are_tracked_like_promotions() -> None:
    records = chain(
        (AuditEventType.ROLLBACK_STARTED, {}),
        (AuditEventType.ROLLBACK, {"started_seq": 1}),
        (AuditEventType.ROLLBACK_STARTED, {}),
        (AuditEventType.PROMOTION_STARTED, {}),
        (AuditEventType.ROLLBACK_ABORTED, {"started_seq": 4}),  # another kind's end: not closed
        (AuditEventType.ROLLBACK, {}),  # without started_seq: closes nothing
        (AuditEventType.PROMOTION_ABORTED, {"started_seq": 3}),  # nor a promotion's end
    )
    assert [(u.started.seq, u.kind) for u in unfinished(records)] == [
        (3, "rollback"),
        (4, "promotion"),
    ]
    assert unfinished(chain((AuditEventType.PROMOTION_STARTED, {})))[0].kind == "promotion"


def test_promotion_without_started_seq_closes_nothing() -> None:
    records = chain((AuditEventType.PROMOTION_STARTED, {}), (AuditEventType.PROMOTION, {}))
    assert [u.started.seq for u in unfinished(records)] == [1]


def test_gate_must_have_compared_with_the_real_holder() -> None:
    gate = {"environment": "staging", "passed": True, "champion_version": "3"}
    assert _gate_problems(gate, "staging", "3") == []
    (problem,) = _gate_problems(gate, "staging", "5")
    assert "compared this version with 3, but version 5 holds the stage now" in problem
    (problem,) = _gate_problems({**gate, "champion_version": None}, "staging", "5")
    assert "with no holder, but version 5" in problem
    assert _gate_problems({**gate, "passed": False}, "staging", "3") == [
        "the model gate did not pass"
    ]
    (problem,) = _gate_problems(gate, "production", "3")
    assert "under the 'staging' policy" in problem


def test_champion_moved_only_when_the_gate_named_another_holder() -> None:
    gate = {"environment": "staging", "passed": True, "champion_version": "3"}
    assert not champion_moved(gate, "3")
    assert champion_moved(gate, "5") and champion_moved(gate, None)
    assert not champion_moved({**gate, "champion_version": None}, None)
    assert not champion_moved({**gate, "champion_version": ""}, None)  # "" is no holder too
    # A gate that did not compare with a champion (a training gate) has nothing to re-judge.
    assert not champion_moved({"environment": "staging", "passed": True}, "5")


def test_a_failed_rejudgement_names_its_checks_and_the_holder() -> None:
    rejudged = {
        "environment": "staging",
        "passed": False,
        "champion_version": "5",
        "rejudged": True,
        "checks": [
            {"name": "roc_auc", "passed": True},
            {"name": "roc_auc_drop_vs_champion", "passed": False},
        ],
    }
    (problem,) = _gate_problems(rejudged, "staging", "5")
    assert problem == (
        "the model gate did not pass (failed: roc_auc_drop_vs_champion) when judged again "
        "against version 5, which holds the stage since this run's gate ran"
    )
    (problem,) = _gate_problems({**rejudged, "champion_version": None}, "staging", None)
    assert "when judged again against no holder, which holds" in problem


def gate_records(*gates: tuple[str, str, str | None, bool]) -> list[AuditRecord]:
    """Gate records (version, run, champion, passed), in this order."""
    records: list[AuditRecord] = []
    for seq, (version, run, champion, passed) in enumerate(gates, start=1):
        records.append(
            seal_record(
                seq=seq,
                recorded_at="2026-01-01T00:00:00+00:00",
                event_type=AuditEventType.GATE_PASSED if passed else AuditEventType.GATE_FAILED,
                actor="bob",
                model_name="m",
                model_version=version,
                stage=None,
                details={"pipeline_run_id": run, "champion_version": champion},
                prev_hash=records[-1].record_hash if records else GENESIS,
            )
        )
    return records


def test_only_a_recorded_passing_gate_of_this_run_against_the_holder_promotes() -> None:
    records = gate_records(
        ("4", "run-a", "3", True),  # seq 1
        ("4", "run-b", None, True),  # seq 2: another run of the same version
        ("5", "run-c", "3", True),  # seq 3: another version
        ("4", "run-d", "3", True),
        ("4", "run-d", "6", False),  # seq 5: judged again against 6, failed
    )
    assert recorded_gate_problem(records, "4", "run-a", "3") is None
    assert recorded_gate_problem(records, "4", "run-b", None) is None
    # A run that recorded no gate of this version, or no run at all.
    assert "holds no gate record of version 4 from pipeline run run-c" in str(
        recorded_gate_problem(records, "4", "run-c", "3")
    )
    assert "from pipeline run (none)" in str(recorded_gate_problem(records, "4", None, "3"))
    # Compared with another holder than the one it replaces.
    assert "compared version 4 with 3, not with the holder it replaces (6)" in str(
        recorded_gate_problem(records, "4", "run-a", "6")
    )
    assert "with no holder, not with the holder it replaces (3)" in str(
        recorded_gate_problem(records, "4", "run-b", "3")
    )
    # The newest record of the run decides: the failed re-judgement.
    assert "(record 5) is gate_failed" in str(recorded_gate_problem(records, "4", "run-d", "6"))


def test_a_crashed_move_rolls_forward_only_if_it_gave_the_stage_itself() -> None:
    """Attack review: reconcile finished a crashed promotion whenever ZenML's holder had its
    number, also when someone set the stage with ZenML long after the crash."""
    from datetime import datetime, timedelta

    (start,) = chain(
        (AuditEventType.PROMOTION_STARTED, {"version_identity": {"model_version_id": "id-1"}})
    )
    crashed = Unfinished(start)
    at = datetime.fromisoformat(start.recorded_at)

    def why(number: str = "1", ident: str = "id-1", after: float = 3.0) -> str | None:
        holder = (number, ident, (at + timedelta(seconds=after)).replace(tzinfo=None))
        return roll_forward_problem(crashed, holder, None, 300.0, 120.0)

    assert why() is None  # moved by the move itself, seconds after its start (ZenML: naive UTC)
    assert "never moved" in str(roll_forward_problem(crashed, None, None))
    assert "never moved" in str(why(number="2"))
    assert "another model with number 1" in str(why(ident="id-9"))
    assert "set outside the platform" in str(why(after=300 + 120 + 1))
    assert "set outside the platform" in str(why(after=-121))
    (verdict,) = chain((AuditEventType.OUTCOMES_CHECKED, {"verdict": "degraded"}))
    later = verdict.__class__(**{**vars(verdict), "recorded_at": "2026-01-01T00:00:05+00:00"})
    holder = ("1", "id-1", at + timedelta(seconds=3))
    assert "recorded after the promotion started" in str(
        roll_forward_problem(crashed, holder, later)
    )
    assert roll_forward_problem(crashed, holder, verdict) is None  # stood before: decided on it


def test_history_names_the_requester_of_a_move_reconcile_finished() -> None:
    """Attack review: `mlops history` named `mlops-reconcile` as who moved the stage."""
    from dataclasses import replace

    from mlops_platform.governance.promotion import stage_history

    started, done = chain(
        (AuditEventType.PROMOTION_STARTED, {"identity": {"name": "bob"}}),
        (AuditEventType.PROMOTION, {"identity": {"name": "bob"}, "reconciled": True}),
    )
    done = replace(done, actor="mlops-reconcile", model_version="1")
    (tenure,) = stage_history([started, done], "m")["staging"]
    assert tenure.actor == "bob (finished by mlops-reconcile)"
    plain = replace(done, details={"identity": {"name": "bob"}}, actor="bob")
    assert stage_history([plain], "m")["staging"][0].actor == "bob"

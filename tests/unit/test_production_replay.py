"""Recorded production moves replayed against the rules no approval policy relaxes (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING
from mlops_platform.governance.replay import production_move_problems
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY

MODEL = "m"
AUTHOR, REQUESTER, APPROVER = "alice", "bob", "carol"


def record(seq: int, event: str, actor: str, version: str = "3", **details: Any) -> AuditRecord:
    details.setdefault(VERSION_IDENTITY_KEY, {"model_version_id": f"id-{version}"})
    details.setdefault("target_stage", PRODUCTION)
    at = f"2026-03-01T10:{seq // 60:02d}:{seq % 60:02d}+00:00"  # records in seq order
    return AuditRecord(seq, at, event, actor, MODEL, version, details["target_stage"], details,
                       "p", f"h{seq}")  # fmt: skip


def approval(seq: int, actor: str = APPROVER, **details: Any) -> AuditRecord:
    return record(seq, AuditEventType.APPROVAL_RECORDED, actor, **details)


def move(seq: int, approvals: list[dict[str, Any]], started: int | None = None,
         actor: str = REQUESTER, **details: Any) -> AuditRecord:  # fmt: skip
    if started is not None:
        details["started_seq"] = started
    return record(seq, AuditEventType.PROMOTION, actor, approvals=approvals, **details)


def started(seq: int, actor: str = REQUESTER) -> AuditRecord:
    return record(seq, AuditEventType.PROMOTION_STARTED, actor)


def problems(
    *records: AuditRecord, author: str | None = AUTHOR, outcomes: tuple[AuditRecord, ...] = ()
) -> list[str]:
    return [why for _, why in production_move_problems(records, lambda _: author, None, outcomes)]


def uses(seq: int, approver: str = APPROVER) -> dict[str, Any]:
    return {"approver": approver, "source": "zenml-server", "seq": seq}


def test_a_move_with_an_approval_by_a_third_person_is_clean() -> None:
    assert problems(approval(1), started(2), move(3, [uses(1)], started=2)) == []


def test_a_move_without_approval_or_override_is_named() -> None:
    (why,) = problems(started(2), move(3, [], started=2))
    assert "consumed no approval" in why


def test_a_staging_move_is_not_replayed() -> None:
    assert problems(move(3, [], target_stage=STAGING)) == []


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (approval(1, actor=REQUESTER), "requester's own"),
        (approval(1, actor="bоb"), "requester's own"),  # Cyrillic о: the same person
        (approval(1, actor=AUTHOR), "training author"),
        (approval(1, target_stage=STAGING), "not an approval of this version for production"),
        (approval(1, version="2"), "not an approval of this version"),
        (
            approval(1, **{VERSION_IDENTITY_KEY: {"model_version_id": "a-deleted-one"}}),
            "not an approval of this version",
        ),
        (record(1, AuditEventType.GATE_PASSED, APPROVER), "no approval in this trail"),
    ],
)
def test_an_approval_that_could_not_have_counted_is_named(
    evidence: AuditRecord, expected: str
) -> None:
    found = problems(evidence, started(2), move(3, [uses(1, evidence.actor)], started=2))
    assert any(expected in why for why in found), found


def test_the_requester_is_who_started_the_move_not_who_finished_it() -> None:
    """A crashed move is finished by whoever reconciles it; the approval must differ from the
    person who asked for the move."""
    found = problems(approval(1), started(2, actor=APPROVER), move(3, [uses(1)], started=2,
                                                                    actor="dan"))  # fmt: skip
    assert any("requester's own" in why for why in found), found


def test_an_approval_recorded_after_the_move_or_named_for_another_person_is_named() -> None:
    found = problems(started(2), move(3, [uses(4)], started=2), approval(4))
    assert any("recorded before the move" in why for why in found), found
    found = problems(approval(1), started(2), move(3, [uses(1, "erin")], started=2))
    assert any("names 'erin'" in why for why in found), found


def test_an_approval_consumed_twice_is_named_at_the_second_move() -> None:
    found = production_move_problems(
        [approval(1), started(2), move(3, [uses(1)], started=2), started(4),
         move(5, [uses(1)], started=4)],
        lambda _: AUTHOR,
    )  # fmt: skip
    assert [(m.seq, why) for m, why in found] == [
        (5, "promotion: record 1 was already consumed by move 3")
    ]


def test_a_countersigned_override_stands_for_the_approvals() -> None:
    signed = record(1, AuditEventType.COUNTERSIGNATURE, APPROVER)
    override = {"countersigner": APPROVER, "source": "zenml-server", "reason": "r", "seq": 1}
    assert problems(signed, started(2), move(3, [], started=2, override=override)) == []
    own = record(1, AuditEventType.COUNTERSIGNATURE, REQUESTER)
    found = problems(own, started(2), move(3, [], started=2,
                                            override={**override, "countersigner": REQUESTER}))  # fmt: skip
    assert any("countersignature of record 1 is the requester's own" in w for w in found), found


def rollback(seq: int, version: str, **details: Any) -> AuditRecord:
    return record(seq, AuditEventType.ROLLBACK, REQUESTER, version, **details)


def held(seq: int, version: str) -> AuditRecord:
    """Version ``version`` given production by a clean promotion (its own approval, start)."""
    return record(seq, AuditEventType.PROMOTION, REQUESTER, version, approvals=[])


def rollback_findings(*records: AuditRecord) -> list[str]:
    return [why for m, why in production_move_problems(records, lambda _: AUTHOR)
            if m.event_type == AuditEventType.ROLLBACK]  # fmt: skip


def test_a_move_whose_target_stage_disagrees_with_its_stage_is_still_replayed() -> None:
    """The second review: `target_stage: staging` (or "Production") on a production move hid it."""
    hidden = record(3, AuditEventType.PROMOTION, REQUESTER, approvals=[], target_stage="staging")
    hidden = AuditRecord(3, "t", AuditEventType.PROMOTION, REQUESTER, MODEL, "3", PRODUCTION,
                         hidden.details, "p", "h")  # fmt: skip
    found = problems(hidden)
    assert any("target_stage 'staging'" in why for why in found), found
    assert any("consumed no approval" in why for why in found), found
    cased = record(3, AuditEventType.PROMOTION, REQUESTER, approvals=[], target_stage="Production")
    assert any("consumed no approval" in why for why in problems(cased))


def test_a_rollback_restores_only_the_holder_before_the_current_one() -> None:
    """The second review: a patched planner rolled production to a version that never held it."""
    assert rollback_findings(held(1, "1"), held(2, "2"), rollback(3, "1")) == []
    (why,) = rollback_findings(held(1, "1"), held(2, "2"), rollback(3, "7"))
    assert "the holder before version 2 was version 1" in why
    other = {VERSION_IDENTITY_KEY: {"model_version_id": "a-new-1"}}
    (why,) = rollback_findings(held(1, "1"), held(2, "2"), rollback(3, "1", **other))
    assert "another model with that number" in why
    (why,) = rollback_findings(rollback(3, "1"))
    assert "nothing held production" in why
    undo = rollback_findings(held(1, "1"), held(2, "2"), rollback(3, "1"), rollback(4, "2"))
    assert any("undid a rollback" in why for why in undo), undo


def test_an_approval_given_before_the_version_last_left_production_does_not_count() -> None:
    """The second review: carol approved v3 while it held production, it was rolled back, and a
    patched decision let the old approval promote it again."""
    found = problems(
        held(1, "2"), held(2, "3"), approval(3), rollback(4, "2"), started(5),
        move(6, [uses(3)], started=5),
    )  # fmt: skip
    assert any("before the version last left production (record 4)" in w for w in found), found


def test_the_start_record_must_be_this_move_s_own() -> None:
    """The second review: a move pointed at another version's finished start record, so the
    approver's own request looked like someone else's."""
    other_start = record(2, AuditEventType.PROMOTION_STARTED, REQUESTER, "1")
    found = problems(approval(1), other_start, move(3, [uses(1)], started=2, actor=APPROVER))
    assert any("start of another move" in why for why in found), found
    assert any("requester's own" in why for why in found), found
    found = problems(approval(1), approval(4), started(2), move(3, [uses(1)], started=2),
                     move(5, [uses(4)], started=2))  # fmt: skip
    assert any("already started another move" in why for why in found), found


def test_a_move_without_an_identity_cannot_use_an_approval_of_a_named_version() -> None:
    """The second review: the move record left out its version id and consumed the approval
    of a deleted version with the same number."""
    bare = move(3, [uses(1)], started=2, **{VERSION_IDENTITY_KEY: {}})
    start = record(2, AuditEventType.PROMOTION_STARTED, REQUESTER, **{VERSION_IDENTITY_KEY: {}})
    found = problems(approval(1), start, bare)
    assert any("not an approval of this version" in why for why in found), found


def test_production_needs_the_version_to_have_held_staging() -> None:
    from mlops_platform.governance.promotion import Tenure

    staged = [Tenure(STAGING, "3", "2026-03-01T09:00:00+00:00", None, AuditEventType.PROMOTION, REQUESTER, 1,
                     identity={"model_version_id": "id-3"})]  # fmt: skip
    chain = (approval(1), started(2), move(3, [uses(1)], started=2))
    assert [w for _, w in production_move_problems(chain, lambda _: AUTHOR, staged)] == []
    found = [w for _, w in production_move_problems(chain, lambda _: AUTHOR, [])]
    assert any("had not held staging" in why for why in found), found
    # Staging held only after the move does not count (the third review: a move that skipped
    # staging stopped being named once the version reached staging later).
    later = [Tenure(STAGING, "3", "2026-03-01T11:00:00+00:00", None, AuditEventType.PROMOTION, REQUESTER, 9,
                    identity={"model_version_id": "id-3"})]  # fmt: skip
    found = [w for _, w in production_move_problems(chain, lambda _: AUTHOR, later)]
    assert any("had not held staging" in why for why in found), found


def test_a_move_without_identity_in_a_trail_that_names_them_is_named() -> None:
    """The third review: a rollback recorded without `version_identity` restored, by number, a
    new version given a deleted holder's number."""
    bare = {VERSION_IDENTITY_KEY: {}}
    found = rollback_findings(held(1, "1"), held(2, "2"), rollback(3, "1", **bare))
    assert any("names no version identity" in why for why in found), found


def test_a_promotion_without_its_start_or_author_or_with_a_repeated_approval_is_named() -> None:
    found = problems(approval(1), move(3, [uses(1)]))
    assert any("is no promotion_started" in why for why in found), found
    found = problems(approval(1), started(2), move(3, [uses(1)], started=2), author=None)
    assert any("training author is unknown" in why for why in found), found
    found = problems(approval(1), started(2), move(3, [uses(1), uses(1)], started=2))
    assert any("names record 1 twice" in why for why in found), found
    found = problems(approval(1), started(2), move(3, [{**uses(1), "seq": True}], started=2))
    assert any("without a record number" in why for why in found), found


def verdict(seq: int, outcome: str, version: str = "3") -> AuditRecord:
    """An `outcomes_checked` record (`mlops monitor outcomes`), in any trail."""
    return record(seq, AuditEventType.OUTCOMES_CHECKED, "dan", version, verdict=outcome,
                  target_stage=PRODUCTION)  # fmt: skip


COUNTERSIGNED = {"countersigner": APPROVER, "source": "zenml-server", "reason": "r", "seq": 1}


def test_a_promotion_past_a_standing_degraded_verdict_must_name_it_in_its_override() -> None:
    """A promotion decided past a degraded verdict without the override naming it could only
    have come from code that changed the decision (the decision refuses it otherwise)."""
    degraded = (verdict(2, "degraded"),)
    shown = {"degraded_outcomes_seen": [{"seq": 2, "record_hash": degraded[0].record_hash}]}
    signed = record(3, AuditEventType.COUNTERSIGNATURE, APPROVER, **shown)
    named = {**COUNTERSIGNED, "seq": 3, "despite_degraded_outcomes": ["version 3 ... record 2"]}
    assert problems(signed, started(4), move(5, [], started=4, override=named),
                    outcomes=degraded) == []  # fmt: skip
    # The attack review's: a countersignature given before the verdict existed (it names none)
    # went past it, so the requester alone decided to.
    blind = record(1, AuditEventType.COUNTERSIGNATURE, APPROVER)
    (why,) = problems(blind, started(4), move(5, [], started=4, override={**named, "seq": 1}),
                      outcomes=degraded)  # fmt: skip
    assert "its countersignature (record 1) does not name that verdict" in why
    signed = record(1, AuditEventType.COUNTERSIGNATURE, APPROVER)
    (why,) = problems(approval(1), started(4), move(5, [uses(1)], started=4), outcomes=degraded)
    assert "outcomes stood judged degraded (outcome record 2)" in why
    assert "countersigned override" in why
    (why,) = problems(signed, started(4), move(5, [], started=4, override=COUNTERSIGNED),
                      outcomes=degraded)  # fmt: skip
    assert "degraded (outcome record 2)" in why


def test_only_a_degraded_verdict_of_that_version_standing_before_the_decision_counts() -> None:
    clean = (approval(1), started(4), move(5, [uses(1)], started=4))
    assert problems(*clean, outcomes=(verdict(2, "ok"),)) == []
    assert problems(*clean, outcomes=(verdict(2, "degraded", version="2"),)) == []
    # Recorded after the promotion started: the decision could not have seen it.
    assert problems(*clean, outcomes=(verdict(4, "degraded"),)) == []
    # ... unless reconcile finished the move after it (attack review): it rolls back then.
    reconciled = (approval(1), started(4), move(6, [uses(1)], started=4, reconciled=True))
    found = problems(*reconciled, outcomes=(verdict(5, "degraded"),))
    assert len(found) == 1 and "outcome record 5" in found[0], found
    # A later `ok` does not clear a degraded verdict (`standing_checks`).
    found = problems(*clean, outcomes=(verdict(2, "degraded"), verdict(3, "ok")))
    assert len(found) == 1 and "outcome record 2" in found[0], found


def test_a_rollback_past_a_degraded_verdict_must_say_despite_degraded() -> None:
    history = (approval(1), started(2), move(3, [uses(1)], started=2),
               record(4, AuditEventType.APPROVAL_RECORDED, APPROVER, "4"),
               record(5, AuditEventType.PROMOTION_STARTED, REQUESTER, "4"),
               record(6, AuditEventType.PROMOTION, REQUESTER, "4", approvals=[uses(4)],
                      started_seq=5))  # fmt: skip
    degraded = (verdict(7, "degraded"),)
    assert problems(*history, rollback(9, "3", started_seq=8), outcomes=degraded) == [
        "rollback: version 3's outcomes stood judged degraded (outcome record 7) when it moved, "
        "and the move does not name that verdict; only a rollback with `--despite-degraded` "
        "(which names it) goes past it"
    ]
    named = rollback(9, "3", started_seq=8, despite_degraded_outcomes=["version 3 ..."])
    assert problems(*history, named, outcomes=degraded) == []


def withdrawal(seq: int, withdrawn: list[int], actor: str = APPROVER) -> AuditRecord:
    return record(seq, AuditEventType.APPROVAL_WITHDRAWN, actor, withdrawn=withdrawn)


def test_an_approval_its_giver_withdrew_before_the_move_is_named() -> None:
    (why,) = problems(approval(1), withdrawal(2, [1]), started(3), move(4, [uses(1)], started=3))
    assert why == (
        "promotion: record 1 was withdrawn by the person who gave it (record 2) before the move"
    )
    # Withdrawn after the move started (the decision had it), or by somebody else: not named.
    assert (
        problems(approval(1), started(2), withdrawal(3, [1]), move(4, [uses(1)], started=2)) == []
    )
    assert problems(approval(1), withdrawal(2, [1], actor=REQUESTER), started(3),
                    move(4, [uses(1)], started=3)) == []  # fmt: skip


def test_only_the_giver_withdraws_and_withdrawn_evidence_is_not_available() -> None:
    from mlops_platform.governance.promotion import available_evidence, withdrawals

    source = {"source": "zenml-server", "reason": "reviewed the report"}
    signed = record(2, AuditEventType.COUNTERSIGNATURE, "erin", countersigner="erin", **source)
    trail = [approval(1, approver=APPROVER, **source), signed]
    given = available_evidence(trail, MODEL, "3", PRODUCTION)
    assert ([a.record_seq for a in given.approvals], len(given.countersignatures)) == ([1], 1)
    assert withdrawals([*trail, withdrawal(3, [1, 2])], MODEL) == {1: 3}  # erin's is erin's
    assert withdrawals([*trail, withdrawal(3, [1, 2], actor="erin")], MODEL) == {2: 3}
    # A withdrawal naming a later record (or itself) withdraws nothing.
    assert withdrawals([*trail, withdrawal(3, [3, 4])], MODEL) == {}
    left = available_evidence([*trail, withdrawal(3, [1])], MODEL, "3", PRODUCTION)
    assert left.approvals == () and [c.record_seq for c in left.countersignatures] == [2]

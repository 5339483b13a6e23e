"""Recorded production moves replayed against the rules no approval policy can relax (pure).

A promotion decides in the process that runs it, and that process also runs data-science code
(the pipelines it launches import it): code that changes the decision there writes records a
valid decision could never have produced (an attack review promoted to production with
``approvals: []``). `mlops check` reads the verified trail afterwards and replays every
`promotion` to production against what every valid policy keeps
(`approvals.policy._stage_problems`): at least one approval or a countersigned override; each
approval an `approval_recorded` of that version for production, recorded before the move by
the person it names, who is neither the requester nor the training author, and consumed once.
What a policy may vary (roles, counts above one, windows) is the decision's own, not replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_platform.governance.approvals.policy import PRODUCTION, same_person
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY


def _version_id(record: AuditRecord) -> str | None:
    identity = record.details.get(VERSION_IDENTITY_KEY)
    found = identity.get("model_version_id") if isinstance(identity, Mapping) else None
    return str(found) if found else None


def _evidence_problem(
    move: AuditRecord,
    requester: str,
    entry: Any,
    by_seq: Mapping[int, AuditRecord],
    event_type: str,
    person_field: str,
    author: str | None,
) -> list[str]:
    """Why one consumed approval or countersignature could not have counted for ``move``."""
    what = "approval" if event_type == AuditEventType.APPROVAL_RECORDED else "countersignature"
    article = "an" if what == "approval" else "a"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("seq"), int):
        return [f"it names a {what} without a record number ({entry!r})"]
    evidence = by_seq.get(entry["seq"])
    if evidence is None or evidence.event_type != event_type:
        return [f"it names {what} record {entry['seq']}, which is no {what} in this trail"]
    problems = []
    moved_id, given_id = _version_id(move), _version_id(evidence)
    if (
        evidence.seq > move.seq
        or evidence.model_name != move.model_name
        or evidence.model_version != move.model_version
        or (moved_id and given_id and moved_id != given_id)
        or (evidence.details.get("target_stage") or evidence.stage) != PRODUCTION
    ):
        problems.append(
            f"{what} record {evidence.seq} is not {article} {what} of this version for "
            "production recorded before the move"
        )
    named = str(entry.get(person_field) or "")
    if not same_person(named, evidence.actor):
        problems.append(f"it names {named!r} for {what} record {evidence.seq}, recorded by "
                        f"{evidence.actor!r}")  # fmt: skip
    if same_person(evidence.actor, requester):
        problems.append(f"the {what} of record {evidence.seq} is the requester's own")
    if author and same_person(evidence.actor, author):
        problems.append(
            f"the {what} of record {evidence.seq} is by the version's training author {author!r}"
        )
    return problems


def production_move_problems(
    records: Sequence[AuditRecord], author_of: Callable[[AuditRecord], str | None]
) -> list[tuple[AuditRecord, str]]:
    """(move, why) for each recorded `promotion` to production among ``records`` (one verified
    trail: its approvals, countersignatures, started and finished moves) that no valid decision
    could have recorded; ``author_of`` gives a move's training author from the verified training records
    (None: unknown, reported by other checks)."""
    by_seq = {r.seq: r for r in records}
    consumed: dict[tuple[str, int], int] = {}
    found: list[tuple[AuditRecord, str]] = []
    moves = [
        r
        for r in records
        if r.event_type == AuditEventType.PROMOTION
        and (r.details.get("target_stage") or r.stage) == PRODUCTION
    ]
    for move in sorted(moves, key=lambda r: r.seq):
        # The requester is who started it (a crashed move is finished by whoever reconciles).
        started = by_seq.get(move.details.get("started_seq"))  # type: ignore[arg-type]
        if started is not None and started.event_type == AuditEventType.PROMOTION_STARTED:
            requester = started
        else:
            requester = move
        approvals = move.details.get("approvals") or []
        override = move.details.get("override")
        problems: list[str] = []
        if not isinstance(approvals, list):
            problems.append(f"its approvals are not a list ({approvals!r})")
            approvals = []
        if not approvals and not override:
            problems.append(
                "it consumed no approval and no countersigned override, and production always "
                "needs one"
            )
        author = author_of(move)
        evidence = [(e, AuditEventType.APPROVAL_RECORDED, "approver") for e in approvals]
        if override:
            evidence.append((override, AuditEventType.COUNTERSIGNATURE, "countersigner"))
        for entry, event_type, person_field in evidence:
            problems += _evidence_problem(
                move, requester.actor, entry, by_seq, event_type, person_field, author
            )
            seq = entry.get("seq") if isinstance(entry, Mapping) else None
            if isinstance(seq, int):
                earlier = consumed.setdefault((event_type, seq), move.seq)
                if earlier != move.seq:
                    problems.append(f"record {seq} was already consumed by move {earlier}")
        found += [(move, problem) for problem in problems]
    return found

"""Recorded production moves replayed against the rules no approval policy relaxes (pure).

A promotion decides in the process that runs it, and that process also runs data-science code
(the pipelines it launches import it): code that changes the decision there writes records a
valid decision could never have produced (an attack review promoted to production with
``approvals: []``). `mlops check` reads the verified trail afterwards and replays every
`promotion` and `rollback` to production against what every valid policy keeps
(`approvals.policy._stage_problems`) and what the code enforces whatever the policy says:

- a promotion consumed at least one approval or a countersigned override; each an
  `approval_recorded` (`countersignature`) of that version (by ZenML id when either names one)
  for production, recorded before the move and after the version last left production, by the
  person it names, who is neither the requester nor the training author (known from a single
  verified training record), consumed once, named once and not withdrawn by its giver before
  the move; the requester is who recorded the move's own `promotion_started` (same version,
  stage and id, one move each; required); the version held staging before the move;
- a rollback restored the holder before the one it replaced, by identity, and did not undo a
  rollback (`promotion.previous_tenure`, `rollback_undo_problem`);
- a move's ``details.target_stage`` and its ``stage`` name the same stage, and a move names its
  version's identity once the trail names identities;
- a move of a version whose outcome verdict stood `degraded` when it was decided names that
  verdict: a promotion in its countersigned override, whose countersignature names that very
  verdict (the countersigner was shown it), a rollback as ``despite_degraded``
  (`promotion.standing_degraded` on the verified `outcomes_checked` records before it).

What a policy may vary (roles, counts above one, approval windows, identity sources) is the
decision's own and is not replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from mlops_platform.governance.approvals.policy import PRODUCTION, normalize_name, same_person
from mlops_platform.governance.promotion import (
    STAGE_EVENTS,
    Tenure,
    previous_tenure,
    rollback_undo_problem,
    stage_history,
    standing_degraded,
    withdrawals,
)
from mlops_platform.trust.audit import AuditEventType, AuditRecord
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY, VersionIdentity

_MOVES = {AuditEventType.PROMOTION: "promotion", AuditEventType.ROLLBACK: "rollback"}


def _identity(record: AuditRecord) -> VersionIdentity | None:
    found = record.details.get(VERSION_IDENTITY_KEY)
    version_id = found.get("model_version_id") if isinstance(found, Mapping) else None
    if not version_id:
        return None
    return VersionIdentity(str(version_id), found.get("model_sha256"))


def _stages(record: AuditRecord) -> tuple[str, str]:
    """(the record's stage, its details' target stage), normalized as the history reads them."""
    stage = normalize_name(record.stage or "")
    target = normalize_name(str(record.details.get("target_stage") or stage))
    return stage, target


def _evidence_problem(
    move: AuditRecord,
    parties: Sequence[str],
    entry: Any,
    by_seq: Mapping[int, AuditRecord],
    event_type: str,
    person_field: str,
    author: str | None,
    left_seq: int | None,
) -> list[str]:
    """Why one consumed approval or countersignature could not have counted for ``move``."""
    what = "approval" if event_type == AuditEventType.APPROVAL_RECORDED else "countersignature"
    article = "an" if what == "approval" else "a"
    if not isinstance(entry, Mapping) or type(entry.get("seq")) is not int:
        return [f"it names {article} {what} without a record number ({entry!r})"]
    evidence = by_seq.get(entry["seq"])
    if evidence is None or evidence.event_type != event_type:
        return [f"it names {what} record {entry['seq']}, which is no {what} in this trail"]
    problems = []
    moved, given = _identity(move), _identity(evidence)
    if (
        evidence.seq > move.seq
        or evidence.model_name != move.model_name
        or evidence.model_version != move.model_version
        or (given is not None and (moved is None or moved.version_id != given.version_id))
        or _stages(evidence)[1] != PRODUCTION
    ):
        problems.append(
            f"{what} record {evidence.seq} is not {article} {what} of this version for "
            "production recorded before the move"
        )
    if left_seq is not None and evidence.seq < left_seq:
        problems.append(
            f"{what} record {evidence.seq} was given before the version last left production "
            f"(record {left_seq}), when it no longer counts"
        )
    named = str(entry.get(person_field) or "")
    if not same_person(named, evidence.actor):
        problems.append(f"it names {named!r} for {what} record {evidence.seq}, recorded by "
                        f"{evidence.actor!r}")  # fmt: skip
    if any(same_person(evidence.actor, party) for party in parties):
        problems.append(f"the {what} of record {evidence.seq} is the requester's own")
    if author and same_person(evidence.actor, author):
        problems.append(
            f"the {what} of record {evidence.seq} is by the version's training author {author!r}"
        )
    return problems


def _start_problem(move: AuditRecord, started: AuditRecord | None, taken: set[int]) -> str | None:
    """Why ``started`` (what ``move.details.started_seq`` points at) is not this move's start."""
    if started is None or started.event_type != AuditEventType.PROMOTION_STARTED:
        return f"its start record {move.details.get('started_seq')!r} is no promotion_started"
    moved, begun = _identity(move), _identity(started)
    if (
        started.seq > move.seq
        or started.model_version != move.model_version
        or _stages(started)[1] != _stages(move)[1]
        or (moved is None) != (begun is None)
        or (moved is not None and begun is not None and moved.version_id != begun.version_id)
    ):
        return f"its start record {started.seq} is the start of another move"
    if started.seq in taken:
        return f"its start record {started.seq} already started another move"
    return None


def _promotion_problems(
    move: AuditRecord,
    by_seq: Mapping[int, AuditRecord],
    tenures: Sequence[Tenure],
    staging: Sequence[Tenure] | None,
    author: str | None,
    consumed: dict[tuple[str, int], int],
    starts: set[int],
    withdrawn: Mapping[int, int],
) -> list[str]:
    problems: list[str] = []
    parties = [move.actor]
    start_seq = move.details.get("started_seq")
    started = by_seq.get(start_seq) if type(start_seq) is int else None
    problem = _start_problem(move, started, starts)
    if problem:
        problems.append(problem)
    elif started is not None:
        starts.add(started.seq)
        # A crashed move is finished by whoever reconciles it; the requester is who started it.
        rolled_forward = move.details.get("outcome") == "rolled forward"
        parties = [started.actor] if rolled_forward else [started.actor, move.actor]
    identity = _identity(move)
    if staging is not None and not any(
        t.is_of(move.model_version, identity) and t.since <= move.recorded_at for t in staging
    ):
        problems.append("the version had not held staging, and production needs it to have")
    if author is None:
        problems.append(
            "its training author is unknown (no single verified training record of the "
            "version), so separation of duties cannot be shown"
        )
    left = [
        t.ended_seq
        for t in tenures
        if t.ended_seq is not None and t.is_of(move.model_version, identity)
    ]
    left_seq = max(left, default=None)
    approvals = move.details.get("approvals") or []
    override = move.details.get("override")
    if not isinstance(approvals, list):
        problems.append(f"its approvals are not a list ({approvals!r})")
        approvals = []
    if not approvals and not override:
        problems.append(
            "it consumed no approval and no countersigned override, and production always needs one"
        )
    evidence = [(e, AuditEventType.APPROVAL_RECORDED, "approver") for e in approvals]
    mine: set[tuple[str, int]] = set()
    if override:
        evidence.append((override, AuditEventType.COUNTERSIGNATURE, "countersigner"))
    decided = started.seq if started is not None else move.seq
    for entry, event_type, person_field in evidence:
        problems += _evidence_problem(
            move, parties, entry, by_seq, event_type, person_field, author, left_seq
        )
        seq = entry.get("seq") if isinstance(entry, Mapping) else None
        if type(seq) is int and withdrawn.get(seq, decided) < decided:
            problems.append(
                f"record {seq} was withdrawn by the person who gave it (record "
                f"{withdrawn[seq]}) before the move"
            )
        if type(seq) is int:
            if (event_type, seq) in mine:
                problems.append(f"it names record {seq} twice")
            mine.add((event_type, seq))
            earlier = consumed.setdefault((event_type, seq), move.seq)
            if earlier != move.seq:
                problems.append(f"record {seq} was already consumed by move {earlier}")
    return problems


def _rollback_problems(move: AuditRecord, tenures: Sequence[Tenure]) -> list[str]:
    """A rollback restores the holder before the current one, and never undoes a rollback."""
    current = next((t for t in reversed(tenures) if t.until is None), None)
    if current is None:
        return ["nothing held production when it was recorded, so there was nothing to roll back"]
    before = previous_tenure(tenures, current.model_version)
    if before is None or not before.is_of(move.model_version, _identity(move)):
        held = f"version {before.model_version}" if before else "nobody"
        if before is not None and before.model_version == move.model_version:
            held += " (another model with that number)"
        return [
            f"it restored version {move.model_version}, but the holder before version "
            f"{current.model_version} was {held}"
        ]
    undo = rollback_undo_problem(tenures, str(move.model_name), PRODUCTION)
    return [f"it undid a rollback: {undo}"] if undo else []


def _degraded_problem(
    move: AuditRecord, by_seq: Mapping[int, AuditRecord], outcomes: Sequence[AuditRecord]
) -> str | None:
    """Why ``move`` could not have gone past the outcome verdict standing when it was decided (its
    start record's time, else, or when reconcile finished it, its own): a degraded one stood
    and the move does not name it (a promotion names it in its countersigned override, a
    rollback in ``despite_degraded_outcomes``). Verdicts may sit in another trail, so time
    orders them."""
    if not outcomes:
        return None
    start = by_seq.get(move.details.get("started_seq"))  # type: ignore[arg-type]
    # A crashed move finished by reconcile is finished only if no degraded verdict came since
    # its start (`transaction.roll_forward_problem`): its own time counts for it.
    reconciled = move.details.get("reconciled") is True
    decided = datetime.fromisoformat((move if reconciled or start is None else start).recorded_at)
    before = [r for r in outcomes if datetime.fromisoformat(r.recorded_at) < decided]
    standing = standing_degraded(before, str(move.model_version))
    if standing is None:
        return None
    stood = (
        f"version {move.model_version}'s outcomes stood judged degraded (outcome record "
        f"{standing.seq}) when it moved"
    )
    if move.event_type == AuditEventType.ROLLBACK:
        if move.details.get("despite_degraded_outcomes"):
            return None
        return (
            f"{stood}, and the move does not name that verdict; only a rollback with "
            "`--despite-degraded` (which names it) goes past it"
        )
    override = move.details.get("override")
    override = override if isinstance(override, Mapping) else {}
    if not override.get("despite_degraded_outcomes"):
        return (
            f"{stood}, and the move does not name that verdict; only a countersigned override "
            "that names it goes past it"
        )
    signed = by_seq.get(override.get("seq"))  # type: ignore[arg-type]
    seen = signed.details.get("degraded_outcomes_seen") if signed is not None else None
    hashes = {v.get("record_hash") for v in seen or [] if isinstance(v, Mapping)}
    if standing.record_hash not in hashes:
        return (
            f"{stood}, and its countersignature (record {override.get('seq')}) does not name "
            "that verdict: an override goes past only the verdicts its countersigner was shown"
        )
    return None


def production_move_problems(
    records: Sequence[AuditRecord],
    author_of: Callable[[AuditRecord], str | None],
    staging: Sequence[Tenure] | None = None,
    outcomes: Sequence[AuditRecord] = (),
) -> list[tuple[AuditRecord, str]]:
    """(move, why) for each recorded `promotion` or `rollback` to production among ``records``
    (one verified trail: its approvals, countersignatures, started and finished moves and every
    stage event) that no valid decision could have recorded. ``author_of`` gives a move's
    training author from the verified training records (None: unknown, reported by other
    checks); ``staging``: the staging stage's tenures from its own verified trail (None: not
    readable here, not checked); ``outcomes``: the verified `outcomes_checked` records of every
    readable trail (a verdict counts for a move recorded after it)."""
    by_seq = {r.seq: r for r in records}
    stage_events = sorted((r for r in records if r.event_type in STAGE_EVENTS), key=lambda r: r.seq)
    consumed: dict[tuple[str, int], int] = {}
    starts: set[int] = set()
    models = {str(r.model_name) for r in records}
    withdrawn = {seq: w for model in models for seq, w in withdrawals(records, model).items()}
    found: list[tuple[AuditRecord, str]] = []
    for move in stage_events:
        if move.event_type not in _MOVES:
            continue
        stage, target = _stages(move)
        if PRODUCTION not in (stage, target):
            continue
        problems: list[str] = []
        if stage != target:
            problems.append(
                f"it records stage {move.stage!r} but target_stage "
                f"{move.details.get('target_stage')!r}"
            )
        earlier = [r for r in stage_events if r.seq < move.seq]
        tenures = stage_history(earlier, str(move.model_name)).get(PRODUCTION, [])
        if _identity(move) is None and any(_identity(r) is not None for r in earlier):
            problems.append(
                "it names no version identity, which every move since the trail named them "
                "records: it cannot be shown to be about the version with that number now"
            )
        if move.event_type == AuditEventType.PROMOTION:
            problems += _promotion_problems(
                move, by_seq, tenures, staging, author_of(move), consumed, starts, withdrawn
            )
        else:
            problems += _rollback_problems(move, tenures)
        if degraded := _degraded_problem(move, by_seq, outcomes):
            problems.append(degraded)
        found += [(move, f"{_MOVES[move.event_type]}: {problem}") for problem in problems]
    return found

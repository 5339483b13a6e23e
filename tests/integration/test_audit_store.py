"""The audit store on real SQLite and PostgreSQL: round trip, raw-SQL tampering, forged and re-sealed
records, deleted and dropped trails, truncation, verified reads, concurrency."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mlops_platform.trust.audit import (
    AuditChainBroken,
    AuditError,
    AuditEventType,
    AuditTrail,
    AuditTrailMissing,
    InvalidAuditEvent,
    seal_record,
)
from mlops_platform.trust.audit.chain import canonical_json
from mlops_platform.trust.audit.store import LockRowForged
from mlops_platform.trust.signing import Signer, Verifier, parse_private_key, private_pem
from tests.conftest import postgres_database
from tests.integration.helpers import tamper

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

WRITERS = 8
EVENTS_PER_WRITER = 25


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty audit database: a fresh file (in a not yet existing folder) or a fresh database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'audit.db'}"
        return
    with postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


WRITER_KEY = Ed25519PrivateKey.generate()
WRITER = Signer(WRITER_KEY)
TRUSTED = Verifier({WRITER.key_id: WRITER_KEY.public_key()})


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


def open_trail(url: str, checkpoints: Path | None = None, signer: Signer = WRITER) -> AuditTrail:
    return AuditTrail(url, signer=signer, verifier=TRUSTED, checkpoint_dir=checkpoints)


@pytest.fixture
def trail(store_url: str, checkpoints: Path) -> Iterator[AuditTrail]:
    store = AuditTrail.initialize(
        store_url, signer=WRITER, verifier=TRUSTED, checkpoint_dir=checkpoints
    )
    yield store
    store.close()


def _fill(trail: AuditTrail, count: int = 10) -> None:
    for index in range(1, count + 1):
        trail.append(
            AuditEventType.GATE_PASSED if index % 2 else AuditEventType.PROMOTION,
            f"user{index}",
            model_name="readmission" if index % 3 else "sepsis",
            model_version=str(index),
            stage="staging",
            details={"ticket": f"CHG-{index}", "auc": 0.8, "approvers": ["dr. Zoë"]},
        )


def test_round_trip(store_url: str, trail: AuditTrail) -> None:
    assert trail.head() is None
    assert trail.verify().ok
    first = trail.append(
        "training_completed",
        "ci@github",
        model_name="readmission",
        model_version="7",
        details={
            "run_id": "abc",
            "approver": "dr. Zoë → QA",
            "metrics": {"auc": 0.71234567890123},
            "runs": ("a", "b"),
        },
    )
    second = trail.append("promotion", "dr.ada", model_name="readmission", stage="production")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.record_hash
    assert trail.head() == second
    assert trail.records() == [first, second]
    assert first.details["runs"] == ["a", "b"]

    reopened = open_trail(store_url)
    assert reopened.records() == [first, second]
    assert reopened.verify().ok
    assert reopened.verify().records_checked == 2
    reopened.close()


def test_filters(trail: AuditTrail) -> None:
    _fill(trail)
    sepsis = trail.records(model_name="sepsis")
    assert [r.seq for r in sepsis] == [3, 6, 9]
    promotions = trail.records(model_name="readmission", event_types=["promotion"])
    assert [r.seq for r in promotions] == [2, 4, 8, 10]
    with pytest.raises(InvalidAuditEvent, match="unknown event_types filter"):
        trail.records(event_types=["promoted"])


def test_rejected_event_writes_nothing(trail: AuditTrail) -> None:
    with pytest.raises(ValueError, match="unknown audit event_type 'deployed'"):
        trail.append("deployed", "alice")
    with pytest.raises(ValueError, match="actor must name"):
        trail.append("promotion", "")
    assert trail.records() == []


@pytest.mark.parametrize(
    "change",
    ['details = \'{"ticket":"CHG-forged"}\'', "actor = 'mallory'", "details = 'not json'"],
)
def test_edited_row_is_named(store_url: str, trail: AuditTrail, change: str) -> None:
    _fill(trail)
    tamper(store_url, f"UPDATE audit_events SET {change} WHERE seq = 4")
    result = trail.verify()
    assert not result.ok
    assert result.first_bad_seq == 4
    assert result.problem is not None
    assert result.problem.startswith("record 4 was edited")


def test_deleted_row_is_named(store_url: str, trail: AuditTrail) -> None:
    _fill(trail)
    tamper(store_url, "DELETE FROM audit_events WHERE seq = 5")
    result = trail.verify()
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.problem == "record 5 is missing (sequence jumps from 4 to 6)"


def test_reordered_rows_are_caught(store_url: str, trail: AuditTrail) -> None:
    _fill(trail)
    tamper(
        store_url,
        "UPDATE audit_events SET seq = -1 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 7",
        "UPDATE audit_events SET seq = 7 WHERE seq = -1",
    )
    result = trail.verify()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.problem is not None
    assert result.problem.startswith("record 3 holds the content of record 7")


def test_dropped_newest_rows_need_the_anchor(store_url: str, trail: AuditTrail) -> None:
    _fill(trail)
    head = trail.head()
    assert head is not None
    tamper(store_url, "DELETE FROM audit_events WHERE seq > 8")
    assert trail.verify().ok
    result = trail.verify(expected_head=head.record_hash)
    assert not result.ok
    assert result.first_bad_seq == 9


def _insert(url: str, record: object, key_id: str | None, signature: str | None) -> None:
    row = {k: v for k, v in dataclasses.asdict(record).items() if k != "details"}  # type: ignore[call-overload]
    row.update(details=canonical_json(record.details), key_id=key_id, signature=signature)  # type: ignore[attr-defined]
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, recorded_at, event_type, actor, model_name, "
                "model_version, stage, details, prev_hash, record_hash, key_id, signature) "
                "VALUES (:seq, :recorded_at, :event_type, :actor, :model_name, :model_version, "
                ":stage, :details, :prev_hash, :record_hash, :key_id, :signature)"
            ),
            row,
        )
    engine.dispose()


def _forged_approval(trail: AuditTrail) -> object:
    head = trail.head()
    assert head is not None
    return seal_record(
        seq=head.seq + 1,
        recorded_at=head.recorded_at,
        event_type=AuditEventType.APPROVAL_RECORDED,
        actor="mallory",
        model_name="readmission",
        model_version="10",
        stage="production",
        details={"approver": "mallory"},
        prev_hash=head.record_hash,
    )


@pytest.mark.parametrize("signed_by", ["nobody", "garbage", "untrusted key"])
def test_forged_row_with_a_valid_hash_is_refused(
    store_url: str, trail: AuditTrail, signed_by: str
) -> None:
    _fill(trail)
    forged = _forged_approval(trail)
    if signed_by == "nobody":
        _insert(store_url, forged, None, None)
        problem = "record 11 carries no signature"
    elif signed_by == "garbage":
        _insert(store_url, forged, WRITER.key_id, "c2lnbmF0dXJl")
        problem = "record 11 is not signed by a trusted key"
    else:
        mallory = Signer(Ed25519PrivateKey.generate()).sign(forged.signed_bytes())  # type: ignore[attr-defined]
        _insert(store_url, forged, mallory.key_id, mallory.value)
        problem = "record 11 is not signed by a trusted key"

    result = trail.verify()
    assert (result.ok, result.first_bad_seq) == (False, 11)
    assert result.problem is not None and result.problem.startswith(problem)
    with pytest.raises(AuditChainBroken, match=problem):
        trail.records(model_name="readmission", event_types=["approval_recorded"], verified=True)
    with pytest.raises(AuditChainBroken, match="refusing to record 'promotion'"):
        trail.append("promotion", "bob", model_name="readmission", model_version="10")
    assert trail.count() == 11  # nothing was chained on top


def test_resealed_chain_without_the_key_is_refused(store_url: str, trail: AuditTrail) -> None:
    """The whole chain rewritten with seal_record (record 3 dropped) and a key of one's own."""
    _fill(trail)
    mallory = Signer(Ed25519PrivateKey.generate())
    kept = [r for r in trail.records() if r.seq != 3]
    tamper(store_url, "DELETE FROM audit_events")
    previous = "0" * 64
    for seq, record in enumerate(kept, start=1):
        fields = {
            k: v
            for k, v in dataclasses.asdict(record).items()
            if k not in ("record_hash", "key_id", "signature")
        }
        resealed = seal_record(**{**fields, "seq": seq, "prev_hash": previous})
        signature = mallory.sign(resealed.signed_bytes())
        _insert(store_url, resealed, signature.key_id, signature.value)
        previous = resealed.record_hash

    result = trail.verify()
    assert not result.ok
    assert result.problem is not None and "not signed by a trusted key" in result.problem
    assert mallory.key_id in result.problem
    with pytest.raises(AuditChainBroken):
        trail.records(verified=True)


def test_deleted_newest_record_is_refused_after_a_checkpoint(
    store_url: str, trail: AuditTrail, checkpoints: Path
) -> None:
    _fill(trail)
    assert trail.verify().ok  # the verified head becomes this checkout's checkpoint
    tamper(store_url, "DELETE FROM audit_events WHERE seq = 10")

    result = trail.verify()
    assert (result.ok, result.first_bad_seq) == (False, 10)
    with pytest.raises(AuditChainBroken, match="record 10, verified here before, is gone"):
        open_trail(store_url, checkpoints).records(verified=True)
    with pytest.raises(AuditChainBroken, match="the newest records were deleted"):
        trail.append("promotion", "bob")


def test_anchor_outside_the_database_finds_truncation_and_rewrite(
    store_url: str, trail: AuditTrail
) -> None:
    from mlops_platform.trust.audit.store import Anchor

    _fill(trail)
    head = trail.head()
    assert head is not None
    anchor = Anchor(head.seq, head.record_hash, "ZenML metadata of version 10")
    assert trail.verify(anchors=[anchor]).ok
    tamper(store_url, "DELETE FROM audit_events WHERE seq = 10")
    fresh = open_trail(store_url)  # no checkpoint: only the anchor knows
    result = fresh.verify(anchors=[anchor])
    assert result.problem is not None
    assert "the trail ends at record 9: the newest records were deleted" in result.problem
    assert "ZenML metadata of version 10" in result.problem

    fresh.append("gate_passed", "alice")  # a different record 10
    result = fresh.verify(anchors=[anchor])
    assert result.problem is not None and "the chain was rewritten" in result.problem

    tamper(store_url, "DELETE FROM audit_events")
    result = fresh.verify(anchors=[anchor])
    assert result.problem is not None and "the trail is empty" in result.problem


def test_a_writer_key_the_trail_does_not_trust_records_nothing(
    store_url: str, trail: AuditTrail
) -> None:
    """The attack review: the writer key file replaced by a new key. The append used to
    succeed, signed with the untrusted key, and every later command then stopped on a broken
    chain (a rotation mistake looking like tampering). Refused before anything is written."""
    _fill(trail, 3)
    swapped = open_trail(store_url, signer=Signer(Ed25519PrivateKey.generate()))
    try:
        with pytest.raises(AuditError, match="is not one the trail trusts"):
            swapped.append(AuditEventType.APPROVAL_RECORDED, "carol", model_name="readmission")
    finally:
        swapped.close()
    assert trail.head().seq == 3 and trail.verify().ok


def test_the_sampled_pass_fails_on_a_key_the_environment_no_longer_trusts(
    store_url: str, trail: AuditTrail
) -> None:
    """Day-one review: after a key rotation that dropped the old public key, `mlops audit
    verify` (sampled signatures) said verified while every decision refused the old records."""
    _fill(trail, 5)
    new_key = Ed25519PrivateKey.generate()
    rotated = Signer(new_key)
    both = Verifier({WRITER.key_id: WRITER_KEY.public_key(), rotated.key_id: new_key.public_key()})
    writer = AuditTrail(store_url, signer=rotated, verifier=both)
    try:
        _fill(writer, 3)
        assert writer.verify().ok
    finally:
        writer.close()
    only_new = AuditTrail(store_url, verifier=Verifier({rotated.key_id: new_key.public_key()}))
    try:
        result = only_new.verify()
    finally:
        only_new.close()
    assert not result.ok and result.first_bad_seq == 1
    assert "not signed by a trusted key" in str(result.problem)


def test_verified_reads_check_old_records_they_use(
    store_url: str, trail: AuditTrail, checkpoints: Path
) -> None:
    """The incremental check starts at the checkpoint, but every record a decision reads is
    re-hashed and signature-checked; an edit to an older record nobody reads is left to the
    full pass."""
    _fill(trail)
    trail.records(verified=True)  # checkpoint at 10
    tamper(store_url, "UPDATE audit_events SET actor = 'mallory' WHERE seq IN (1, 2)")
    reader = open_trail(store_url, checkpoints)
    with pytest.raises(AuditChainBroken, match="record 2 was edited"):
        reader.records(model_name="readmission", event_types=["promotion"], verified=True)
    assert [r.seq for r in reader.records(model_name="sepsis", verified=True)] == [3, 6, 9]
    assert not reader.verify().ok


def test_missing_trail_is_never_created(store_url: str) -> None:
    with pytest.raises(AuditTrailMissing, match="mlops audit init --env staging"):
        AuditTrail(store_url, env="staging")
    if store_url.startswith("sqlite"):
        assert not Path(make_url(store_url).database or "").exists()
    AuditTrail.initialize(store_url).close()
    AuditTrail(store_url).close()


def test_dropped_table_stops_reads_and_writes(store_url: str, trail: AuditTrail) -> None:
    _fill(trail, 3)
    tamper(store_url, "DROP TABLE audit_events")
    with pytest.raises(AuditTrailMissing, match="has no table audit_events"):
        open_trail(store_url)
    with pytest.raises(AuditTrailMissing, match="mlops audit verify"):
        trail.append("promotion", "bob")
    with pytest.raises(AuditTrailMissing):
        trail.records(verified=True)


def _wait_for_lock_wait(url: str) -> None:
    """Block until another PostgreSQL session waits on a row lock, i.e. the append is racing."""
    engine = create_engine(url)
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with engine.connect() as connection:
        while connection.execute(query).scalar_one() == 0:
            assert time.monotonic() < deadline, "the append never waited on the racing insert"
            time.sleep(0.02)
    engine.dispose()


def test_writer_that_skips_the_queue_cannot_fork_the_chain(
    store_url: str, trail: AuditTrail, caplog: pytest.LogCaptureFixture
) -> None:
    """A rogue writer inserts the next seq without the lock; the append must land after it."""
    caplog.set_level(logging.DEBUG, logger="mlops_platform.trust.audit.store")
    _fill(trail, 3)
    head = trail.head()
    assert head is not None
    rogue = seal_record(
        seq=4,
        recorded_at=head.recorded_at,
        event_type="override",
        actor="rogue-client",
        model_name=None,
        model_version=None,
        stage=None,
        details={},
        prev_hash=head.record_hash,
    )
    engine = create_engine(store_url)
    with engine.connect() as connection:
        # An older client with the key that skips the queue: its row is signed, so the append
        # chains onto it once it is committed.
        signed = WRITER.sign(rogue.signed_bytes())
        row = {k: v for k, v in dataclasses.asdict(rogue).items() if k != "details"}
        connection.execute(
            text(
                "INSERT INTO audit_events VALUES (:seq, :recorded_at, :event_type, :actor, "
                ":model_name, :model_version, :stage, '{}', :prev_hash, :record_hash, "
                ":key_id, :signature)"
            ),
            {**row, "key_id": signed.key_id, "signature": signed.value},
        )
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            appended = pool.submit(trail.append, "promotion", "dr.ada")
            if make_url(store_url).get_backend_name() == "postgresql":
                _wait_for_lock_wait(store_url)
            else:
                time.sleep(0.3)
            connection.commit()
            record = appended.result(timeout=60)
    engine.dispose()

    assert (record.seq, record.prev_hash) == (5, rogue.record_hash)
    assert trail.verify().ok
    retried = any("taken by another writer" in r.getMessage() for r in caplog.records)
    assert retried == (make_url(store_url).get_backend_name() == "postgresql")


def _append_many(url: str, key_pem: str, writer: int, start: Barrier) -> None:
    key = parse_private_key(key_pem, "test key")
    signer = Signer(key)
    trail = AuditTrail(url, signer=signer, verifier=Verifier({signer.key_id: key.public_key()}))
    start.wait()
    for index in range(EVENTS_PER_WRITER):
        trail.append(
            "batch_inference", f"writer{writer}", details={"writer": writer, "index": index}
        )
    trail.close()


def test_concurrent_processes_keep_one_chain(store_url: str) -> None:
    AuditTrail.initialize(store_url).close()
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    key_pem = private_pem(WRITER_KEY)
    writers = [
        context.Process(target=_append_many, args=(store_url, key_pem, writer, start))
        for writer in range(WRITERS)
    ]
    began = time.perf_counter()
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=600)
    print(
        f"\n{WRITERS}x{EVENTS_PER_WRITER} concurrent appends took "
        f"{time.perf_counter() - began:.2f}s (including process start-up)"
    )
    assert [p.exitcode for p in writers] == [0] * WRITERS

    trail = open_trail(store_url)
    records = trail.records()
    result = trail.verify(all_signatures=True)
    trail.close()
    assert [r.seq for r in records] == list(range(1, WRITERS * EVENTS_PER_WRITER + 1))
    assert result.ok, result.problem
    for writer in range(WRITERS):
        own = [r.details["index"] for r in records if r.details["writer"] == writer]
        assert own == list(range(EVENTS_PER_WRITER))


def test_promotion_lock_serialises_and_times_out(store_url: str, trail: AuditTrail) -> None:
    """One holder at a time (advisory lock on PostgreSQL, lock row on SQLite); a waiter gives up
    with its own error (exit 5, never the broken-trail exit 8) saying who holds the lock since
    when; on SQLite a crashed holder's row stops blocking once its lease ends."""
    from mlops_cli.errors import ExitCode, as_cli_error
    from mlops_platform.trust.audit import AuditError, LockBusy

    other = open_trail(store_url)
    taken = datetime.now(UTC).replace(microsecond=0)
    with trail.lock("promotion:staging:m") as waited:
        assert waited < 5
        busy = other.lock("promotion:staging:m", holder="another promotion of m", wait_seconds=0.3)
        with pytest.raises(LockBusy, match="another promotion of m holds the lock") as refused:
            busy.__enter__()
        since = re.search(r"since (\S+) \(waited", str(refused.value))
        assert since is not None, refused.value
        held_from = datetime.fromisoformat(since.group(1).replace("Z", "+00:00"))
        assert taken - timedelta(seconds=2) <= held_from <= datetime.now(UTC)
        assert not isinstance(refused.value, AuditError)
        cli_error = as_cli_error(refused.value)
        assert cli_error is not None and cli_error.code == ExitCode.DENIED
        with other.lock("promotion:staging:another-model"):
            pass  # locks are per model and environment
    with other.lock("promotion:staging:m"):
        pass
    if store_url.startswith("sqlite"):
        # A holder that died without releasing: its row stays until the lease has passed.
        crashed = trail.lock("promotion:production:m", lease_seconds=0.2)
        crashed.__enter__()
        time.sleep(0.3)
        with other.lock("promotion:production:m", wait_seconds=1):
            pass
    other.close()


def test_a_lock_row_written_by_hand_is_refused_at_once(tmp_path: Path) -> None:
    """The attack review: a `promotion_locks` row with a lease ending in 2100, inserted with raw
    SQL, made `mlops rollback` wait 600 s and then say a crashed holder's lock ends with its
    300 s lease. No promotion writes such a row: refused at once, naming the row's lease end
    and how to remove it, and nothing is appended."""
    store_url = f"sqlite:///{tmp_path / 'audit.db'}"  # PostgreSQL locks are advisory, not rows
    trail = AuditTrail.initialize(store_url, signer=WRITER, verifier=TRUSTED)
    _fill(trail, 2)
    with trail.lock("promotion:production:m"):
        pass  # the lock table exists, as after any promotion
    tamper(
        store_url,
        "INSERT INTO promotion_locks (name, holder, expires_at) "
        "VALUES ('promotion:production:m', 'x', 4102444800)",
    )
    refused = pytest.raises(LockRowForged, match="2100-01-01")  # not LockBusy after a wait
    with refused, trail.lock("promotion:production:m", wait_seconds=5):
        pass
    assert trail.head().seq == 2
    trail.close()


def test_a_waiter_says_whom_it_waits_for(
    store_url: str, trail: AuditTrail, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command held by another's lock says so on stderr after two seconds (the review's
    reconcile waited silently for a dead holder's lease), then gives up as before."""
    from mlops_platform.trust.audit import LockBusy

    other = open_trail(store_url)
    with trail.lock("promotion:staging:quiet"):
        busy = other.lock("promotion:staging:quiet", holder="bob's promotion", wait_seconds=2.5)
        with pytest.raises(LockBusy):
            busy.__enter__()
    other.close()
    said = capsys.readouterr().err
    assert "waiting for the lock 'promotion:staging:quiet' (bob's promotion" in said
    assert said.count("waiting for the lock") == 1


def test_a_clock_set_back_can_neither_stamp_a_record_nor_date_a_decision(
    store_url: str, trail: AuditTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a promotion run under `faketime -5d`, so that an approval given ten days ago
    looks five days old. On SQLite this machine's clock stamps records: set back, it records
    nothing and dates no decision. On PostgreSQL the database server's clock stamps them, so a
    writer's own clock changes nothing."""
    from mlops_platform.trust.audit import store

    _fill(trail, 2)
    head = trail.head()
    assert head is not None
    real = store.datetime

    class FiveDaysBack(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return real.now(tz) - timedelta(days=5)

    monkeypatch.setattr(store, "datetime", FiveDaysBack)

    def approve() -> object:
        return trail.append(
            AuditEventType.APPROVAL_RECORDED, "carol", model_name="readmission",
            model_version="3", stage="production", details={"reason": "backdated"},
        )  # fmt: skip

    if make_url(store_url).get_backend_name() == "postgresql":
        stamped = approve()
        assert stamped.recorded_at >= head.recorded_at  # type: ignore[attr-defined]
        assert trail.now() >= datetime.fromisoformat(head.recorded_at)
        return
    with pytest.raises(store.ClockBehindTrail, match="before the audit trail's newest record"):
        approve()
    with pytest.raises(store.ClockBehindTrail):
        trail.now()
    monkeypatch.undo()
    assert trail.count() == 2 and trail.head() == head and trail.verify().ok


def test_a_clock_a_little_behind_stamps_the_head_s_time_keeping_the_order() -> None:
    from mlops_platform.trust.audit.store import (
        CLOCK_TOLERANCE_SECONDS,
        ClockBehindTrail,
        record_time,
    )

    head = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    later = head + timedelta(seconds=1)
    assert record_time(later, head.isoformat()) == later
    assert record_time(head - timedelta(seconds=5), head.isoformat()) == head
    assert record_time(head, None) == head
    with pytest.raises(ClockBehindTrail):
        record_time(head - timedelta(seconds=CLOCK_TOLERANCE_SECONDS + 1), head.isoformat())


def test_a_head_dated_far_ahead_by_raw_sql_dates_no_decision(
    store_url: str, trail: AuditTrail
) -> None:
    """Raw SQL moves the newest record's time to 2099 (to freeze approvals, or lock everyone
    out): its signature no longer verifies, so it is reported as a broken trail, not a clock."""
    _fill(trail, 2)
    engine = create_engine(store_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET recorded_at = :when WHERE seq = 2"),
            {"when": "2099-01-01T00:00:00.000000+00:00"},
        )
    engine.dispose()
    with pytest.raises(AuditChainBroken, match="does not verify"):
        trail.now()
    with pytest.raises(AuditChainBroken):
        trail.append(AuditEventType.GATE_PASSED, "bob", model_name="readmission")
    assert trail.count() == 2

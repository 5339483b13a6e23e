"""Append-only persistence of the audit chain in SQLite (local) or PostgreSQL (staging, production).

Concurrent writers never fork the chain: an append reads the head and inserts ``seq = head + 1`` in
one transaction, and the primary key on ``seq`` lets only one writer win each position; the loser
retries on the new head. To keep retries rare, writers queue first: SQLite transactions start with
``BEGIN IMMEDIATE`` and PostgreSQL appends take a transaction-scoped advisory lock (without it,
16 writers on two cores needed up to 27 retries for one append). The primary key still protects
the chain from writers that skip the queue, such as older clients or manual inserts.

Fail closed:

- A trail is created only by `AuditTrail.initialize` (`mlops audit init`); opening a missing file,
  database or table raises `AuditTrailMissing`, so no write or read starts a new empty chain.
- Every append is signed with the environment's writer key and refuses to chain onto a head whose
  hash or signature does not verify, or that is older than the last verified checkpoint.
- `records(verified=True)`, used by every decision, first checks the chain incrementally from the
  last verified checkpoint, then re-hashes and signature-checks every record it returns.
  The incremental check covers the checkpoint record itself, the number of records up to it, and
  every record after it; it does not re-hash older records that the decision does not read. The
  full pass (`verify`, i.e. `mlops audit verify`) re-hashes and re-links every record.
- Signatures: a record's hash covers its predecessor's, so a valid signature on record N vouches
  for records 1..N. The full pass checks every record's hash and link, that every record carries a
  signature, and the signature of every `SIGNATURE_STRIDE`-th record, of the first record of each
  signing key (so a key the environment no longer trusts fails the pass) and of the head (on a
  failure it finds the first bad one); ``all_signatures=True`` checks every signature (slower:
  about 0.15 ms each on this project's 2-core machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)

from mlops_platform.config import ConfigError
from mlops_platform.trust.audit.chain import (
    EVENT_TYPES,
    GENESIS,
    AuditChainBroken,
    AuditError,
    AuditRecord,
    AuditTrailMissing,
    ChainVerification,
    InvalidAuditEvent,
    canonical_json,
    compute_hash,
    seal_record,
    validate_event,
    verify_chain,
)
from mlops_platform.trust.signing import Signature, Signer, SigningError, Verifier
from mlops_platform.workspace import sqlite_path

logger = logging.getLogger(__name__)

MAX_APPEND_ATTEMPTS = 50
_WRITER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('audit_events'))"
SQLITE_BUSY_TIMEOUT_SECONDS = 60
_BACKOFF_SECONDS = 0.005
_BACKOFF_CAP_SECONDS = 0.1
SIGNATURE_STRIDE = 256
_STREAM_BATCH = 5000
TABLE = "audit_events"

_metadata = MetaData()
audit_events = Table(
    TABLE,
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("recorded_at", String(32), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("actor", Text, nullable=False),
    Column("model_name", Text, nullable=True, index=True),
    Column("model_version", Text, nullable=True),
    Column("stage", Text, nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False, unique=True),
    # Nullable so that a row inserted behind the API without them is reported, not refused by SQL.
    Column("key_id", String(32), nullable=True),
    Column("signature", Text, nullable=True),
)
# One row per held promotion lock on SQLite (PostgreSQL uses session advisory locks instead).
promotion_locks = Table(
    "promotion_locks",
    _metadata,
    Column("name", String(256), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)
# One row per GitHub job token an identity was taken from (`use_job_token`): a token counts once.
job_tokens = Table(
    "job_tokens",
    _metadata,
    Column("jti", String(256), primary_key=True),
    Column("actor", Text, nullable=False),
    Column("used_at", Float, nullable=False),
)
# Each ZenML server account that acted, by its id, with the name it acted under: one name per
# account and one account per name (`AuditTrail.bind_account`).
server_accounts = Table(
    "server_accounts",
    _metadata,
    Column("server_url", String(512), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("name_key", String(256), nullable=False),
    Column("name", Text, nullable=False),
    Column("first_seen", Float, nullable=False),
    UniqueConstraint("server_url", "name_key", name="one_account_per_name"),
)
# A job token lives minutes; its row is kept well beyond that, then pruned.
JOB_TOKEN_KEEP_SECONDS = 86_400.0
LOCK_LEASE_SECONDS = 300.0
LOCK_WAIT_SECONDS = 600.0
# How far another writer's clock may run ahead of this one's for its lease still to be believed.
LOCK_CLOCK_SLACK = 120.0
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


class AuditUrlError(ConfigError):
    """The audit database URL names no database SQLAlchemy can open (exit 7)."""


class AccountRebound(RuntimeError):
    """A ZenML account acts under another name than before, or a name under another account."""


class JobTokenUsed(RuntimeError):
    """An identity was already taken from this job token (its `jti`)."""

    def __init__(self, jti: str, actor: str | None, used_at: float | None) -> None:
        self.jti, self.actor, self.used_at = jti, actor, used_at
        when = (
            datetime.fromtimestamp(used_at, UTC).isoformat(timespec="seconds")
            if used_at is not None
            else "at the same moment"
        )
        super().__init__(f"job token {jti} was already used for {actor or 'an identity'} {when}")


class LockBusy(RuntimeError):
    """Another holder kept a promotion lock for longer than the wait: try again (exit 5, not a
    broken trail)."""


class LockRowForged(AuditError):
    """A SQLite promotion lock row whose lease ends later than any lease the platform writes:
    written into the database by hand (exit 8), not a holder to wait for."""


class ClockBehindTrail(RuntimeError):
    """The clock a record would be stamped with reads before the trail's newest record."""


# How far a clock may read behind the trail's newest record (clock steps on one machine, skew
# between writers) before a record is refused; within it, the record takes the head's time.
CLOCK_TOLERANCE_SECONDS = 60.0


def record_time(now: datetime, head_recorded_at: str | None) -> datetime:
    """The time a new record is stamped with (pure): ``now``, never before the trail's newest
    record. A clock more than CLOCK_TOLERANCE_SECONDS behind it is refused: a record dated back
    would make an expired approval look fresh and reorder the history people read."""
    if head_recorded_at is None:
        return now
    try:
        last = datetime.fromisoformat(head_recorded_at)
    except ValueError as error:
        raise AuditChainBroken(
            f"the audit trail's newest record has no readable time ({head_recorded_at!r}): it was "
            "not written by the platform; run `mlops audit verify`"
        ) from error
    if last.tzinfo is None:  # written without an offset: the platform writes UTC
        last = last.replace(tzinfo=UTC)
    if now >= last:
        return now
    if (last - now).total_seconds() <= CLOCK_TOLERANCE_SECONDS:
        return last
    raise ClockBehindTrail(
        f"this clock reads {now.isoformat(timespec='seconds')}, before the audit trail's newest "
        f"record ({last.isoformat(timespec='seconds')}): nothing was decided or recorded, since "
        "records and approval ages must not go back in time. Either this machine's clock is "
        "behind (set it right: `timedatectl`, NTP), or that record was stamped ahead by a clock "
        "set forward (`mlops audit log` names who wrote it; records cannot be dated back, so "
        "the trail resumes when real time passes it)"
    )


@dataclass
class _Waiting:
    name: str
    holder: str
    deadline: float
    seconds: float
    said: bool = False  # the wait was announced on stderr (once, after two seconds)


# The session holding the advisory lock of hashtext(:name) (a bigint key is split into classid,
# the high 32 bits, and objid, the low ones) and when it last ran a statement.
_ADVISORY_HOLDER_SINCE = text(
    "SELECT a.query_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.objid::text::bigint = (hashtext(:name)::bigint & 4294967295) "
    "AND l.classid::text::bigint = ((hashtext(:name)::bigint >> 32) & 4294967295) LIMIT 1"
)


@dataclass(frozen=True)
class Anchor:
    """A head (seq, hash) kept outside the database, and where it was found (for messages)."""

    seq: int
    record_hash: str
    source: str


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so the "begin" hook below decides how to BEGIN.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _to_record(row: Row[Any], *, strict: bool = True) -> AuditRecord:
    """Row to record; with ``strict=False`` unparseable details are kept as text so verification
    reports the row as edited, in seq order with any other problem, instead of crashing."""
    try:
        details = json.loads(row.details)
    except json.JSONDecodeError as error:
        if not strict:
            details = {"unparseable_details": row.details}
        else:
            raise AuditError(
                f"record {row.seq} has details that are not valid JSON ({error}); the row was "
                "changed outside the audit API: run verify() and restore it from a backup"
            ) from error
    return AuditRecord(
        seq=row.seq,
        recorded_at=row.recorded_at,
        event_type=row.event_type,
        actor=row.actor,
        model_name=row.model_name,
        model_version=row.model_version,
        stage=row.stage,
        details=details,
        prev_hash=row.prev_hash,
        record_hash=row.record_hash,
        key_id=row.key_id,
        signature=row.signature,
    )


def _fast_hash(row: Row[Any]) -> str | None:
    """The record hash of a raw row without building a record; None if details are not JSON.
    Every value is encoded from its parsed form, so a crafted column cannot shift text between
    fields; the result equals `compute_hash` of the parsed record."""
    try:
        details = _ENCODE(json.loads(row.details))
    except ValueError:
        return None
    payload = (
        f'{{"actor":{_ENCODE(row.actor)},"details":{details},'
        f'"event_type":{_ENCODE(row.event_type)},"model_name":{_ENCODE(row.model_name)},'
        f'"model_version":{_ENCODE(row.model_version)},"prev_hash":{_ENCODE(row.prev_hash)},'
        f'"recorded_at":{_ENCODE(row.recorded_at)},"seq":{int(row.seq)},'
        f'"stage":{_ENCODE(row.stage)}}}'
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def unsigned_problem(seq: int) -> str:
    return (
        f"record {seq} carries no signature: it was inserted behind the audit API, or the trail "
        "was written by code older than signed records. An unsigned trail cannot be trusted: keep "
        "it as evidence, move it aside and start a new one with `mlops audit init`"
    )


def signature_problem(record: AuditRecord, verifier: Verifier) -> str | None:
    """Why ``record``'s content or signature cannot be trusted, or None."""
    if (
        compute_hash(
            record.seq,
            record.recorded_at,
            record.event_type,
            record.actor,
            record.model_name,
            record.model_version,
            record.stage,
            record.details,
            record.prev_hash,
        )
        != record.record_hash
    ):
        return f"record {record.seq} was edited (its content does not match its stored hash)"
    if not record.signature or not record.key_id:
        return unsigned_problem(record.seq)
    try:
        verifier.verify(record.signed_bytes(), Signature(record.key_id, record.signature))
    except SigningError as error:
        return (
            f"record {record.seq} is not signed by a trusted key of this environment ({error}); "
            "it was forged, or the chain was re-sealed without the writer's key"
        )
    return None


class AuditTrail:
    """Hash-chained, signed, append-only log of governance events behind a SQLAlchemy URL.

    ``signer`` is needed to append, ``verifier`` to verify and for verified reads; ``env`` only
    names the environment in messages; ``checkpoint_dir`` keeps the last verified head so that
    verified reads check only what was appended since (no directory: a full pass every time).
    """

    def __init__(
        self,
        url: str,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        env: str | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        try:
            make_url(url)
        except ArgumentError as error:
            raise AuditUrlError(
                "the audit database URL cannot be opened: it is not a database URL (not shown: "
                "it may hold a password). Use sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                "(audit.url in configs/<env>/platform.yaml, or MLOPS_AUDIT_DB_URL)"
            ) from error
        self.url = url
        self.location = self._shown(url)
        self.env = env
        self._signer = signer
        self._verifier = verifier
        self._checkpoint_dir = checkpoint_dir
        file = sqlite_path(url)
        if file is not None and not file.is_file():
            raise AuditTrailMissing(
                f"{self._name()} ({self.location}) does not exist. A trail is never created by a "
                f"write: on a new checkout run `mlops setup`; for a new environment, `mlops "
                f"audit init --env {env or '<env>'}`; if it existed, it was deleted: restore it "
                "from a backup"
            )
        self._engine = self._make_engine(url)
        self._check_schema()
        self._tables_made: set[str] = set()  # side tables checked or created by this instance

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        try:
            parsed = make_url(url)
            if parsed.drivername in ("postgresql", "postgres"):
                # The PostgreSQL driver this project installs is psycopg 3, not SQLAlchemy's
                # default psycopg2.
                parsed = parsed.set(drivername="postgresql+psycopg")
            return create_engine(parsed, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as error:
            raise AuditUrlError(
                f"the audit database URL {AuditTrail._shown(url)} cannot be opened ({error}). Use "
                "sqlite:///PATH or postgresql://USER@HOST:PORT/DB (audit.url in "
                "configs/<env>/platform.yaml, or MLOPS_AUDIT_DB_URL)"
            ) from error

    @staticmethod
    def _shown(url: str) -> str:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return "(not a URL)"

    def _name(self) -> str:
        return f"the {self.env} audit trail" if self.env else "the audit trail"

    @contextmanager
    def _database(self) -> Iterator[None]:
        """A table dropped or a database gone while the trail is open: fail closed, one line."""
        try:
            yield
        except (OperationalError, ProgrammingError) as error:
            if "locked" in str(error.orig):
                raise
            raise AuditTrailMissing(
                f"{self._name()} ({self.location}) cannot be read or written: {error.orig}. "
                "If its table or database was removed, restore it from a backup; run "
                "`mlops audit verify` for a full report"
            ) from error

    @classmethod
    def initialize(cls, url: str, **options: Any) -> AuditTrail:
        """Create the trail's table (and SQLite folder) if missing; the only way a trail starts."""
        file = sqlite_path(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        engine = cls._make_engine(url)
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Serialise CREATE TABLE across processes that open a fresh database together.
                    connection.exec_driver_sql(_WRITER_LOCK)
                _metadata.create_all(connection, checkfirst=True)
        except OperationalError as error:
            raise AuditError(
                f"cannot create the audit trail at "
                f"{make_url(url).render_as_string(hide_password=True)}: {error.orig}"
            ) from error
        finally:
            engine.dispose()
        return cls(url, **options)

    def _check_schema(self) -> None:
        try:
            inspector = inspect(self._engine)
            present = inspector.has_table(TABLE)
            columns = (
                {column["name"] for column in inspector.get_columns(TABLE)} if present else set()
            )
        except OperationalError as error:
            self._engine.dispose()
            raise AuditTrailMissing(
                f"cannot open {self._name()} ({self.location}): {error.orig}. Check the URL and "
                f"that the database exists; create a new trail only with `mlops audit init`"
            ) from error
        if not present:
            self._engine.dispose()
            raise AuditTrailMissing(
                f"{self._name()} ({self.location}) has no table {TABLE}: it was dropped, or the "
                f"trail was never created. Restore it from a backup; for a new environment run "
                f"`mlops audit init --env {self.env or '<env>'}`"
            )
        if not {"key_id", "signature"} <= columns:
            self._engine.dispose()
            raise AuditChainBroken(
                f"{self._name()} ({self.location}) was created by older code without record "
                "signatures, so its records cannot be trusted. Keep it as evidence, move it "
                f"aside and start a new trail with `mlops audit init --env {self.env or '<env>'}`"
            )

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        event_type: str,
        actor: str,
        *,
        model_name: str | None = None,
        model_version: str | None = None,
        stage: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Sign and chain one event after the current head and return it as stored."""
        event_type, details = validate_event(
            event_type, actor, model_name, model_version, stage, details
        )
        if self._signer is None:
            raise AuditError(
                f"cannot record {event_type!r} in {self._name()}: no signing key was given; "
                "records are signed by the environment's writer key (run `mlops setup` locally)"
            )
        if self._verifier is not None and not self._verifier.trusts(self._signer.key_id):
            raise AuditError(
                f"cannot record {event_type!r} in {self._name()}: this writer's signing key "
                f"{self._signer.key_id} is not one the trail trusts (trusted: "
                f"{', '.join(self._verifier.key_ids) or 'none'}), so the record would break the "
                "chain for every later check. Nothing was recorded. Put the writer key back "
                "(locally: the state directory's keys/), or add its public key to the "
                "environment's trusted keys in a reviewed change."
            )
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                with self._database(), self._engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        connection.exec_driver_sql(_WRITER_LOCK)
                    head_row = connection.execute(
                        select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)
                    ).first()
                    head = None if head_row is None else _to_record(head_row, strict=False)
                    self._check_head_before_append(head, event_type)
                    stamp = record_time(
                        self._clock(connection), None if head is None else head.recorded_at
                    )
                    sealed = seal_record(
                        seq=1 if head is None else head.seq + 1,
                        recorded_at=stamp.isoformat(timespec="microseconds"),
                        event_type=event_type,
                        actor=actor,
                        model_name=model_name,
                        model_version=model_version,
                        stage=stage,
                        details=details,
                        prev_hash=GENESIS if head is None else head.record_hash,
                    )
                    signature = self._signer.sign(sealed.signed_bytes())
                    connection.execute(
                        insert(audit_events).values(
                            seq=sealed.seq,
                            recorded_at=sealed.recorded_at,
                            event_type=sealed.event_type,
                            actor=sealed.actor,
                            model_name=sealed.model_name,
                            model_version=sealed.model_version,
                            stage=sealed.stage,
                            details=canonical_json(sealed.details),
                            prev_hash=sealed.prev_hash,
                            record_hash=sealed.record_hash,
                            key_id=signature.key_id,
                            signature=signature.value,
                        )
                    )
                return AuditRecord(
                    **{**sealed.__dict__, "key_id": signature.key_id, "signature": signature.value}
                )
            except IntegrityError:
                logger.debug(
                    "audit seq taken by another writer (attempt %d of %d); retrying",
                    attempt + 1,
                    MAX_APPEND_ATTEMPTS,
                )
                ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_SECONDS * 2**attempt)
                time.sleep(random.uniform(0, ceiling))
        raise AuditError(
            f"could not append a {event_type!r} event after {MAX_APPEND_ATTEMPTS} attempts: "
            f"other writers kept taking the next seq in {self.location}; "
            "check for a runaway writer, then retry"
        )

    def _check_head_before_append(self, head: AuditRecord | None, event_type: str) -> None:
        """Never chain onto a forged or edited head, or onto a trail shorter than verified."""
        problem = None
        if head is not None and self._verifier is not None:
            problem = signature_problem(head, self._verifier)
        checkpoint = self._load_checkpoint()
        last = 0 if head is None else head.seq
        if problem is None and checkpoint is not None and last < checkpoint.seq:
            problem = (
                f"the trail ends at record {last}, but record {checkpoint.seq} was verified "
                "here before: the newest records were deleted"
            )
        if problem is not None:
            raise AuditChainBroken(
                f"refusing to record {event_type!r} in {self._name()} ({self.location}): "
                f"{problem}. Nothing was written; run `mlops audit verify` and restore the trail "
                "from a backup"
            )

    # -- reading -------------------------------------------------------------------------------

    def records(
        self,
        *,
        model_name: str | None = None,
        event_types: Iterable[str] | None = None,
        verified: bool = False,
    ) -> list[AuditRecord]:
        """Stored records ordered by seq, optionally for one model and some event types.

        ``verified=True`` (every read that decides): first the incremental chain check, then
        each returned record's hash and signature; any problem raises `AuditChainBroken`.
        """
        with self._database():
            return self._records(model_name, event_types, verified)

    def _records(
        self, model_name: str | None, event_types: Iterable[str] | None, verified: bool
    ) -> list[AuditRecord]:
        if verified:
            self.verify_incremental()
        query = select(audit_events).order_by(audit_events.c.seq)
        if model_name is not None:
            query = query.where(audit_events.c.model_name == model_name)
        if event_types is not None:
            wanted = sorted(set(event_types))
            unknown = [name for name in wanted if name not in EVENT_TYPES]
            if unknown:
                raise InvalidAuditEvent(
                    f"unknown event_types filter {unknown}; expected some of {sorted(EVENT_TYPES)}"
                )
            query = query.where(audit_events.c.event_type.in_(wanted))
        with self._engine.connect() as connection:
            found = [_to_record(row) for row in connection.execute(query)]
        if verified:
            verifier = self._require_verifier()
            for record in found:
                problem = signature_problem(record, verifier)
                if problem is not None:
                    raise self._broken(record.seq, problem)
        return found

    @staticmethod
    def _clock(connection: Connection) -> datetime:
        """Now, by the database server's clock where it has one (PostgreSQL: no writer's own
        clock decides), else this machine's."""
        if connection.dialect.name == "postgresql":
            # By its full name: a function of the same name in a schema earlier on the role's
            # search_path (the database owner can create one) must not stop the clock.
            found = connection.execute(text("SELECT pg_catalog.clock_timestamp()")).scalar()
            if found is not None:  # a timezone-aware datetime (timestamptz)
                return found.astimezone(UTC)
        return datetime.now(UTC)

    def now(self) -> datetime:
        """The time decisions about this trail use (approval ages, rollback windows): the clock
        records are stamped with (`_clock`), refused like a record when it reads before the
        trail's newest record (`record_time`)."""
        query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)
        with self._database(), self._engine.connect() as connection:
            row = connection.execute(query).first()
            head = None if row is None else _to_record(row, strict=False)
            # Only a head the environment's keys signed dates a decision (a forged row does not).
            problem = None
            if head is not None and self._verifier is not None:
                problem = signature_problem(head, self._verifier)
            if problem is not None:
                raise AuditChainBroken(
                    f"the newest record of {self._name()} ({self.location}) does not verify: "
                    f"{problem}. Nothing was decided; run `mlops audit verify`"
                )
            return record_time(self._clock(connection), None if head is None else head.recorded_at)

    def head(self) -> AuditRecord | None:
        """Newest record, or None for an empty trail."""
        query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _to_record(row, strict=False)

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(audit_events)).scalar())

    # -- verification --------------------------------------------------------------------------

    def _require_verifier(self) -> Verifier:
        if self._verifier is None:
            raise AuditError(
                f"cannot verify {self._name()}: no trusted public keys were given; the "
                "environment's keys are listed under signing.public_keys in platform.yaml"
            )
        return self._verifier

    def _broken(self, seq: int | None, problem: str) -> AuditChainBroken:
        return AuditChainBroken(
            f"{self._name()} ({self.location}) does not verify at record {seq}: {problem}. "
            "Nothing was decided or moved; run `mlops audit verify` for a full report, restore "
            "the trail from a backup and find out who changed it"
        )

    def verify(
        self,
        expected_head: str | None = None,
        *,
        anchors: Sequence[Anchor] = (),
        all_signatures: bool = False,
    ) -> ChainVerification:
        """Full pass: every record's hash, link and presence of a signature, signatures (see the
        module docstring), ``expected_head`` (a hash that must still be in the chain) and the
        ``anchors`` found outside the database. Saves the verified head as the checkpoint."""
        checkpoint = self._load_checkpoint()
        if checkpoint is not None:
            checkpoint = Anchor(
                checkpoint.seq, checkpoint.record_hash, "the last verified checkpoint"
            )
            anchors = [*anchors, checkpoint]
        wanted = {anchor.seq for anchor in anchors}
        with self._database():
            result, head, found = self._scan(0, GENESIS, all_signatures, wanted, expected_head)
        if result.ok:
            problem = _anchor_problem(anchors, head, found)
            if problem is not None:
                return ChainVerification(False, result.records_checked, *problem)
            if head is not None:
                self._save_checkpoint(head)
        return result

    def check_anchors(self, anchors: Sequence[Anchor]) -> Anchor | None:
        """Raise `AuditChainBroken` if an anchor kept outside the database names a record this
        trail no longer has (newest records deleted, trail emptied) or has with another hash.
        Returns the head it compared them with (None for an empty trail), read in the same
        transaction as the anchored rows, so a caller remembers the head that was compared.

        Cheap (the head and one row per anchor): decisions call it after their verified read, so
        a truncation that the incremental check cannot see (no checkpoint on this machine) still
        stops them."""
        wanted = sorted({anchor.seq for anchor in anchors})
        newest = select(func.max(audit_events.c.seq)).scalar_subquery()
        # One statement, so one snapshot: the head and the anchored rows as they were together.
        query = select(audit_events.c.seq, audit_events.c.record_hash).where(
            or_(audit_events.c.seq.in_(wanted), audit_events.c.seq == newest)
        )
        with self._database(), self._engine.connect() as connection:
            found = {int(seq): str(digest) for seq, digest in connection.execute(query)}
        top = max(found, default=None)
        head = None if top is None else Anchor(top, found[top], "trail")
        problem = _anchor_problem(anchors, head, found) if anchors else None
        if problem is not None:
            raise self._broken(*problem)
        return head

    def verify_incremental(self) -> None:
        """Check what was appended since the last verified checkpoint; raise if broken."""
        checkpoint = self._load_checkpoint()
        if checkpoint is None:
            result, head, _ = self._scan(0, GENESIS, False, set(), None)
        else:
            self._check_up_to(checkpoint)
            result, head, _ = self._scan(checkpoint.seq, checkpoint.record_hash, False, set(), None)
        if not result.ok:
            raise self._broken(result.first_bad_seq, result.problem or "")
        if head is not None:
            self._save_checkpoint(head)

    def _check_up_to(self, checkpoint: Anchor) -> None:
        """The checkpoint record is unchanged and nothing before it was removed or added."""
        with self._engine.connect() as connection:
            stored = connection.execute(
                select(audit_events.c.record_hash).where(audit_events.c.seq == checkpoint.seq)
            ).scalar()
            number, lowest = connection.execute(
                select(func.count(), func.min(audit_events.c.seq)).where(
                    audit_events.c.seq <= checkpoint.seq
                )
            ).one()
        if stored is None:
            raise self._broken(
                checkpoint.seq,
                f"record {checkpoint.seq}, verified here before, is gone: the newest records "
                "were deleted or the trail was replaced",
            )
        if stored != checkpoint.record_hash:
            raise self._broken(
                checkpoint.seq,
                f"record {checkpoint.seq} now has hash {stored}, but {checkpoint.record_hash} "
                "was verified here before: the chain was rewritten",
            )
        if number != checkpoint.seq or lowest != 1:
            raise self._broken(
                checkpoint.seq,
                f"{number} records (from seq {lowest}) up to record {checkpoint.seq}, which was "
                "verified here with exactly one record per seq from 1: records were deleted or "
                "inserted",
            )

    def _scan(
        self,
        after_seq: int,
        after_hash: str,
        all_signatures: bool,
        wanted: set[int],
        expected_head: str | None,
    ) -> tuple[ChainVerification, Anchor | None, dict[int, str]]:
        """Stream the records after ``after_seq``; the first problem is diagnosed in full."""
        verifier = self._require_verifier()
        previous_seq, previous_hash = after_seq, after_hash
        checked = 0
        found: dict[int, str] = {}
        seen_expected = expected_head is None
        pending: list[Row[Any]] = []
        last_key: str | None = None
        query = (
            select(audit_events).where(audit_events.c.seq > after_seq).order_by(audit_events.c.seq)
        )
        failure: ChainVerification | None = None
        diagnose_at: int | None = None
        with self._engine.connect() as connection:
            rows = connection.execution_options(
                stream_results=True, yield_per=_STREAM_BATCH
            ).execute(query)
            for row in rows:
                if (
                    row.seq != previous_seq + 1
                    or row.prev_hash != previous_hash
                    or _fast_hash(row) != row.record_hash
                ):
                    diagnose_at = row.seq
                    break
                if not row.signature or not row.key_id:
                    failure = ChainVerification(False, checked, row.seq, unsigned_problem(row.seq))
                    break
                if row.key_id != last_key:
                    # The first record of each key is checked whatever the stride: a record whose
                    # key this environment no longer trusts (a key removed in a rotation) fails
                    # here as every decision reading it fails (review: the sampled pass said
                    # verified while `mlops infer` refused the trail).
                    problem = _signature_fails(row, verifier)
                    if problem is not None:
                        failure = ChainVerification(False, checked, row.seq, problem)
                        break
                    last_key = row.key_id
                if row.seq in wanted:
                    found[row.seq] = row.record_hash
                if not seen_expected and row.record_hash == expected_head:
                    seen_expected = True
                pending.append(row)
                if all_signatures or row.seq % SIGNATURE_STRIDE == 0:
                    bad = _first_bad_signature(pending, verifier, all_signatures)
                    if bad is not None:
                        failure = ChainVerification(False, checked, *bad)
                        break
                    pending.clear()
                previous_seq, previous_hash = row.seq, row.record_hash
                checked += 1
            rows.close()
        # The connection is closed first: SQLite holds a write lock for the whole transaction.
        if diagnose_at is not None:
            return self._diagnose(diagnose_at, checked), None, found
        if failure is not None:
            return failure, None, found
        bad = _first_bad_signature(pending, verifier, all_signatures)
        if bad is not None:
            return ChainVerification(False, checked, *bad), None, found
        if not seen_expected:
            return (
                ChainVerification(
                    False,
                    checked,
                    previous_seq + 1,
                    f"anchored hash {expected_head} is not in the chain (last record is "
                    f"{previous_seq}): records after {previous_seq} were removed, or the chain "
                    "was rewritten",
                ),
                None,
                found,
            )
        head = None if previous_seq == 0 else Anchor(previous_seq, previous_hash, "trail")
        return ChainVerification(True, after_seq + checked, None, None), head, found

    def _diagnose(self, bad_seq: int, checked: int) -> ChainVerification:
        """The slow, explanatory check of the whole chain, run only once a problem was seen."""
        query = select(audit_events).order_by(audit_events.c.seq)
        with self._engine.connect() as connection:
            records = [_to_record(row, strict=False) for row in connection.execute(query)]
        result = verify_chain(records)
        if not result.ok:
            return result
        return ChainVerification(
            False,
            checked,
            bad_seq,
            f"record {bad_seq} follows a record that was changed or removed after it was "
            "verified here, or its stored details are not in canonical form",
        )

    # -- locks ---------------------------------------------------------------------------------

    @contextmanager
    def lock(
        self,
        name: str,
        *,
        holder: str = "another promotion",
        lease_seconds: float = LOCK_LEASE_SECONDS,
        wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> Iterator[float]:
        """Hold the named lock (yields the seconds spent waiting for it).

        PostgreSQL: a session advisory lock, released on exit or when the session dies. SQLite: a
        row in ``promotion_locks`` with a lease, so a crashed holder blocks others for at most
        ``lease_seconds``. Raises `LockBusy` (not a broken trail) after ``wait_seconds``, naming
        ``holder`` (who else holds it, for the message) and since when.
        """
        started = time.perf_counter()
        deadline = time.monotonic() + wait_seconds
        # The holder's row says since when it holds the lock (for the waiters' message).
        token = f"{uuid.uuid4().hex}@{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        waiting = _Waiting(name, holder, deadline, wait_seconds)
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as connection:
                while not connection.execute(
                    select(func.pg_try_advisory_lock(func.hashtext(name)))
                ).scalar():
                    connection.commit()
                    self._wait_or_fail(waiting, connection)
                connection.commit()
                try:
                    yield time.perf_counter() - started
                finally:
                    connection.execute(select(func.pg_advisory_unlock(func.hashtext(name))))
                    connection.commit()
            return
        self._side_table(promotion_locks)
        while not self._take_row_lock(name, token, lease_seconds):
            self._wait_or_fail(waiting, None)
        try:
            yield time.perf_counter() - started
        finally:
            with self._database(), self._engine.begin() as connection:
                connection.execute(
                    delete(promotion_locks).where(
                        promotion_locks.c.name == name, promotion_locks.c.holder == token
                    )
                )

    def _side_table(self, table: Table) -> None:
        """Create a side table (locks, job tokens, accounts) that a trail made before it existed
        lacks (`initialize` makes them all for a new trail); checked once per instance, in its
        own transaction so that what is remembered was committed."""
        if table.name in self._tables_made:
            return
        with self._database(), self._engine.begin() as connection:
            table.create(connection, checkfirst=True)
        self._tables_made.add(table.name)

    def _take_row_lock(self, name: str, token: str, lease_seconds: float) -> bool:
        now = time.time()
        with self._database(), self._engine.begin() as connection:
            connection.execute(
                delete(promotion_locks).where(
                    promotion_locks.c.name == name, promotion_locks.c.expires_at < now
                )
            )
            held = connection.execute(
                select(promotion_locks.c.holder, promotion_locks.c.expires_at).where(
                    promotion_locks.c.name == name
                )
            ).first()
            if held is not None and held.expires_at > now + LOCK_LEASE_SECONDS + LOCK_CLOCK_SLACK:
                until = datetime.fromtimestamp(held.expires_at, UTC).isoformat(timespec="seconds")
                raise LockRowForged(
                    f"the lock {name!r} in {self._name()} is held by a row whose lease ends "
                    f"{until}, later than any lease the platform writes ({LOCK_LEASE_SECONDS:g} s "
                    "from taking it): a promotion did not write it, someone wrote it into the "
                    "database. Nothing was done. Find out who, then delete the row "
                    f"(DELETE FROM promotion_locks WHERE name = '{name}') and run the command "
                    "again."
                )
            if held is not None:
                return False
            connection.execute(
                insert(promotion_locks).values(
                    name=name, holder=token, expires_at=now + lease_seconds
                )
            )
        return True

    def _wait_or_fail(self, waiting: _Waiting, connection: Connection | None) -> None:
        if not waiting.said and time.monotonic() > waiting.deadline - waiting.seconds + 2:
            waiting.said = True  # said once per wait, after two seconds, not silently
            since = self._lock_since(waiting.name, connection)
            sys.stderr.write(
                f"note: waiting for the lock {waiting.name!r} ({waiting.holder}, held since "
                f"{since or 'an unknown time'}), for up to {waiting.seconds:g} s; a crashed "
                f"holder's lock ends with its lease ({LOCK_LEASE_SECONDS:g} s).\n"
            )
        if time.monotonic() > waiting.deadline:
            since = self._lock_since(waiting.name, connection)
            raise LockBusy(
                f"{waiting.holder} holds the lock {waiting.name!r} in {self._name()} since "
                f"{since or 'an unknown time'} (waited {waiting.seconds:g} s); try again when it "
                "has finished. A crashed holder's SQLite lock ends with its lease "
                f"({LOCK_LEASE_SECONDS:g} s), then run `mlops audit reconcile`"
            )
        time.sleep(random.uniform(0.05, 0.25))

    def _lock_since(self, name: str, connection: Connection | None) -> str | None:
        """When the current holder took the lock: from its row (SQLite) or from the holding
        session's last statement, the lock's own COMMIT (PostgreSQL); None if unknown."""
        try:
            if connection is not None:
                found = connection.execute(_ADVISORY_HOLDER_SINCE, {"name": name}).scalar()
                connection.commit()
                return (
                    None if found is None else found.astimezone(UTC).isoformat(timespec="seconds")
                )
            with self._engine.connect() as reading:
                holder = reading.execute(
                    select(promotion_locks.c.holder).where(promotion_locks.c.name == name)
                ).scalar()
        except (OperationalError, ProgrammingError):
            return None
        return holder.partition("@")[2] or None if holder else None

    # -- job tokens ----------------------------------------------------------------------------

    def use_job_token(self, jti: str, actor: str, now: float | None = None) -> None:
        """Record that an identity (`actor`) was taken from the job token `jti`; raise
        `JobTokenUsed` if one already was. Two processes racing with one token: one wins."""
        now = time.time() if now is None else now
        self._side_table(job_tokens)
        try:
            with self._database(), self._engine.begin() as connection:
                connection.execute(
                    delete(job_tokens).where(job_tokens.c.used_at < now - JOB_TOKEN_KEEP_SECONDS)
                )
                earlier = connection.execute(
                    select(job_tokens.c.actor, job_tokens.c.used_at).where(job_tokens.c.jti == jti)
                ).first()
                if earlier is not None:
                    raise JobTokenUsed(jti, earlier.actor, earlier.used_at)
                connection.execute(insert(job_tokens).values(jti=jti, actor=actor, used_at=now))
        except IntegrityError as error:
            raise JobTokenUsed(jti, None, None) from error

    def bind_account(
        self, server_url: str, user_id: str, name: str, name_key: str, now: float | None = None
    ) -> None:
        """Record that account ``user_id`` of ``server_url`` acts as ``name`` (``name_key``: its
        normalised form), the first time it acts; raise `AccountRebound` if that account acted
        under another name, or another account under this name. Racing first uses: one wins."""
        now = time.time() if now is None else now
        table = server_accounts
        self._side_table(table)
        try:
            with self._database(), self._engine.begin() as connection:
                by_id = connection.execute(
                    select(table.c.name_key, table.c.name).where(
                        table.c.server_url == server_url, table.c.user_id == user_id
                    )
                ).first()
                by_name = connection.execute(
                    select(table.c.user_id).where(
                        table.c.server_url == server_url, table.c.name_key == name_key
                    )
                ).first()
                if by_id is not None and by_id.name_key != name_key:
                    raise AccountRebound(
                        f"account {user_id} of {server_url} is bound to {by_id.name!r} (created "
                        f"for that name, or first acted under it) and now calls itself {name!r}"
                    )
                if by_name is not None and by_name.user_id != user_id:
                    raise AccountRebound(
                        f"the name {name!r} on {server_url} belongs to account "
                        f"{by_name.user_id} (created for it, or first to act under it); this is "
                        f"account {user_id}"
                    )
                if by_id is None:
                    connection.execute(
                        insert(table).values(
                            server_url=server_url, user_id=user_id, name_key=name_key,
                            name=name, first_seen=now,
                        )
                    )  # fmt: skip
        except IntegrityError as error:
            raise AccountRebound(
                f"another account took the name {name!r} on {server_url} at the same moment"
            ) from error

    # -- checkpoint ----------------------------------------------------------------------------

    def _checkpoint_path(self) -> Path | None:
        if self._checkpoint_dir is None:
            return None
        return checkpoint_file(self._checkpoint_dir, self.url)

    def _load_checkpoint(self) -> Anchor | None:
        path = self._checkpoint_path()
        if path is None or not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return Anchor(int(saved["seq"]), str(saved["record_hash"]), str(path))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable audit checkpoint %s; verifying in full", path)
            return None

    def _save_checkpoint(self, head: Anchor) -> None:
        path = self._checkpoint_path()
        if path is None:
            return
        current = self._load_checkpoint()
        if current is not None and current.seq > head.seq:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(
            json.dumps({"store": self.location, "seq": head.seq, "record_hash": head.record_hash}),
            encoding="utf-8",
        )
        os.replace(temporary, path)


def _first_bad_signature(
    rows: Sequence[Row[Any]], verifier: Verifier, every: bool
) -> tuple[int, str] | None:
    """(seq, problem) of the first row whose signature fails; checks only the last row unless
    it fails (a valid signature on it vouches for the hashes before it) or ``every``."""
    if not rows:
        return None
    candidates = rows if every else rows[-1:]
    for row in candidates:
        if _signature_fails(row, verifier):
            for earlier in rows:
                problem = _signature_fails(earlier, verifier)
                if problem is not None:
                    return earlier.seq, problem
    return None


def _signature_fails(row: Row[Any], verifier: Verifier) -> str | None:
    try:
        verifier.verify(row.record_hash.encode("ascii"), Signature(row.key_id, row.signature))
    except SigningError as error:
        return (
            f"record {row.seq} is not signed by a trusted key of this environment ({error}); "
            "it was forged, or the chain was re-sealed without the writer's key"
        )
    return None


def _anchor_problem(
    anchors: Sequence[Anchor], head: Anchor | None, found: dict[int, str]
) -> tuple[int, str] | None:
    """Compare anchors kept outside the database with the verified trail."""
    for anchor in sorted(anchors, key=lambda a: a.seq):
        last = 0 if head is None else head.seq
        if anchor.seq > last:
            what = (
                "the trail is empty: it was emptied or replaced, or MLOPS_AUDIT_DB_URL (or the "
                "environment's audit.url) now names another trail than the one these records "
                "were written to: point it back, or start a new project state"
                if head is None
                else f"the trail ends at record {last}: the newest records were deleted, or "
                "MLOPS_AUDIT_DB_URL (or audit.url) names an older or another trail"
            )
            return anchor.seq, (
                f"{anchor.source} records that record {anchor.seq} had hash "
                f"{anchor.record_hash}, but {what}"
            )
        if found.get(anchor.seq) != anchor.record_hash:
            return anchor.seq, (
                f"{anchor.source} records that record {anchor.seq} had hash "
                f"{anchor.record_hash}, but the trail holds {found.get(anchor.seq)}: the chain "
                "was rewritten"
            )
    return None


def checkpoint_file(checkpoint_dir: Path, url: str) -> Path:
    """Where the last verified head of the trail at ``url`` is kept on this machine."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    return checkpoint_dir / f"audit-checkpoint-{digest}.json"

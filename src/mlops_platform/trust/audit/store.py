"""Append-only persistence of the audit chain in SQLite (local) or PostgreSQL (staging, production).

Concurrent writers never fork the chain: an append reads the head and inserts ``seq = head + 1`` in
one transaction, and the primary key on ``seq`` lets only one writer win each position; the loser
retries on the new head. To keep retries rare, writers queue first: SQLite transactions start with
``BEGIN IMMEDIATE`` and PostgreSQL appends take a transaction-scoped advisory lock (without it,
16 writers on two cores needed up to 27 retries for one append). The primary key still protects
the chain from writers that skip the queue, such as older clients or manual inserts.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from mlops_platform.trust.audit.chain import (
    EVENT_TYPES,
    GENESIS,
    AuditError,
    AuditRecord,
    ChainVerification,
    InvalidAuditEvent,
    canonical_json,
    seal_record,
    validate_event,
    verify_chain,
)

logger = logging.getLogger(__name__)

MAX_APPEND_ATTEMPTS = 50
_WRITER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('audit_events'))"
SQLITE_BUSY_TIMEOUT_SECONDS = 60
_BACKOFF_SECONDS = 0.005
_BACKOFF_CAP_SECONDS = 0.1

_metadata = MetaData()
audit_events = Table(
    "audit_events",
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
)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)

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
    )


class AuditTrail:
    """Hash-chained, append-only log of governance events behind a SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            self._engine = _sqlite_engine(url)
        else:
            self._engine = create_engine(url, pool_pre_ping=True)
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Serialise CREATE TABLE across processes that open a fresh database together.
                connection.exec_driver_sql(_WRITER_LOCK)
            _metadata.create_all(connection, checkfirst=True)

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

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
        """Chain one event after the current head and return it as stored."""
        event_type, details = validate_event(
            event_type, actor, model_name, model_version, stage, details
        )
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                with self._engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        connection.exec_driver_sql(_WRITER_LOCK)
                    head = connection.execute(
                        select(audit_events.c.seq, audit_events.c.record_hash)
                        .order_by(audit_events.c.seq.desc())
                        .limit(1)
                    ).first()
                    record = seal_record(
                        seq=1 if head is None else head.seq + 1,
                        recorded_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                        event_type=event_type,
                        actor=actor,
                        model_name=model_name,
                        model_version=model_version,
                        stage=stage,
                        details=details,
                        prev_hash=GENESIS if head is None else head.record_hash,
                    )
                    connection.execute(
                        insert(audit_events).values(
                            seq=record.seq,
                            recorded_at=record.recorded_at,
                            event_type=record.event_type,
                            actor=record.actor,
                            model_name=record.model_name,
                            model_version=record.model_version,
                            stage=record.stage,
                            details=canonical_json(record.details),
                            prev_hash=record.prev_hash,
                            record_hash=record.record_hash,
                        )
                    )
                return record
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
            f"other writers kept taking the next seq in {self._engine.url!r}; "
            "check for a runaway writer, then retry"
        )

    def records(
        self, *, model_name: str | None = None, event_types: Iterable[str] | None = None
    ) -> list[AuditRecord]:
        """Stored records ordered by seq, optionally for one model and some event types."""
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
            return [_to_record(row) for row in connection.execute(query)]

    def head(self) -> AuditRecord | None:
        """Newest record, or None for an empty trail."""
        query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _to_record(row)

    def verify(self, expected_head: str | None = None) -> ChainVerification:
        """Verify every stored record; see ``verify_chain`` for ``expected_head``."""
        query = select(audit_events).order_by(audit_events.c.seq)
        with self._engine.connect() as connection:
            records = [_to_record(row, strict=False) for row in connection.execute(query)]
        return verify_chain(records, expected_head)

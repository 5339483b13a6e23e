"""The prediction log: served (and shadow) predictions, appended in batches to immutable parts.

Appends go to an in-memory buffer; a part file is written when the buffer holds `batch_rows` rows,
when `flush_seconds` have passed since the oldest buffered row, and on `close()` (a normal stop).
With the background thread (the default) the parts are written by that thread, never by the
request that filled the buffer: the request only wakes it. Only if the writer falls behind by
`BACKLOG_BATCHES` batches does an append write inline, which bounds the buffer's memory.

Each part is written to a hidden temporary name and renamed into place, so a reader never sees
half a part; a part, once written, is never changed, so the log is versioned by its parts
(`part-<sequence>-<first row time>-<uuid>.parquet`) and each part's SHA-256 is listed in the log's
manifest (`parts.jsonl`, one line per part, appended before the rename: a part is never in place
without its line, and a line whose rename then failed names a part that does not exist, which
readers ignore; the stop record, not the manifest, says which parts the service wrote).

Nothing is lost on a normal stop: `close()` flushes what is buffered. On a crash at most the
buffered rows are lost (under `flush_seconds` old, at most `BACKLOG_BATCHES` x `batch_rows`); the
issue asks for no loss on a normal stop only, and SECURITY.md notes the rest.

The log fails closed: a directory that cannot be written refuses the log at start, and once a
part cannot be written its rows go back to the buffer and every `append` raises
`PredictionLogError` (the service answers 503: no prediction is given without its record) until
a write succeeds again (the writer retries, making a folder that was moved away again). The rows
of the append that is refused are not kept: that caller got no answer. Part numbers advance only
when a part is written, so the sequence has no gaps; `unwritten_rows` counts what a failed
`close()` could not write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

PART_PREFIX: Final = "part-"
PART_SUFFIX: Final = ".parquet"
MANIFEST: Final = "parts.jsonl"
DEFAULT_BATCH_ROWS: Final = 512
DEFAULT_FLUSH_SECONDS: Final = 2.0
BACKLOG_BATCHES: Final = 8


class PredictionLogError(RuntimeError):
    """The log cannot be written or read (closed, wrong layout, a part that changed)."""


@dataclass(frozen=True)
class Part:
    path: Path
    rows: int
    sha256: str


class PredictionLog:
    """Thread-safe batched appends of Arrow tables with one schema to a directory of parts."""

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        background: bool = True,
    ) -> None:
        if batch_rows < 1 or flush_seconds <= 0:
            raise ValueError("batch_rows must be >= 1 and flush_seconds > 0")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            check_writable(self.directory)
        except OSError as error:
            raise PredictionLogError(
                f"the prediction log directory {self.directory} cannot be written "
                f"({error.strerror or error}): no prediction is answered without its record, so "
                "the service does not start. Choose a writable --log-dir."
            ) from error
        self.schema = schema
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()  # guards the buffer
        self._write_lock = threading.Lock()  # one part written at a time, in order
        self._sequence = _next_sequence(self.directory)
        self._closed = False
        # Why the newest write failed (None: the log is writable); appends are refused meanwhile.
        self.failure: str | None = None
        self.written: list[Part] = []  # parts this writer wrote, in order
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._flush_when_old, name="prediction-log", daemon=True
            )
            self._thread.start()

    def append(self, table: pa.Table) -> None:
        """Buffer `table`. A full buffer wakes the background writer; without one (or when it
        is `BACKLOG_BATCHES` batches behind) this append writes the part itself."""
        if table.schema != self.schema:
            raise PredictionLogError(
                f"prediction log rows have columns {table.schema.names}, expected "
                f"{self.schema.names}"
            )
        with self._lock:
            failed = self.failure is not None
        if failed:
            self.flush()  # the rows a failed write kept, again; still failing: refused here
        with self._lock:
            if self._closed:
                raise PredictionLogError(f"the prediction log {self.directory} is closed")
            self._buffer.append(table)
            self._buffered += table.num_rows
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = self._buffered >= self.batch_rows
            inline = full and (
                self._thread is None or self._buffered >= BACKLOG_BATCHES * self.batch_rows
            )
            taken = self._take() if inline else None
        if taken:
            try:
                self._write(taken)
            except PredictionLogError:
                with self._lock:
                    # This append is refused (the caller answers 503): its own rows must never
                    # be logged later as if answered; the rows of earlier appends stay kept.
                    for index, kept in enumerate(self._buffer):
                        if kept is table:
                            del self._buffer[index]
                            self._buffered -= table.num_rows
                            break
                raise
        elif full:
            self._wake.set()

    def flush(self) -> Part | None:
        with self._lock:
            taken = self._take()
        return self._write(taken) if taken else None

    def close(self) -> None:
        """Flush what is buffered and stop the background thread (a normal stop)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._closed = True
            taken = self._take()
        if taken:
            self._write(taken)

    @property
    def unwritten_rows(self) -> int:
        """Rows accepted but in no part: buffered, or kept after a failed write."""
        return self.buffered_rows

    @property
    def buffered_rows(self) -> int:
        with self._lock:
            return self._buffered

    def _take(self) -> list[pa.Table]:
        taken, self._buffer, self._buffered, self._oldest = self._buffer, [], 0, None
        return taken

    def _write(self, tables: list[pa.Table]) -> Part:
        """Write ``tables`` as the next part; if that fails, they go back to the front of the
        buffer, `failure` says why, and `PredictionLogError` is raised."""
        try:
            part = self._write_part(tables)
        except OSError as error:
            with self._lock:
                self._buffer[:0] = tables
                self._buffered += sum(table.num_rows for table in tables)
                if self._oldest is None:
                    self._oldest = time.monotonic()
                self.failure = f"{type(error).__name__}: {error.strerror or error}"
            raise PredictionLogError(
                f"the prediction log {self.directory} cannot be written ({self.failure}): no "
                "prediction is answered until it can be (the service answers 503); its rows are "
                "kept and written once the directory is writable again."
            ) from error
        with self._lock:
            self.failure = None
        return part

    def _write_part(self, tables: list[pa.Table]) -> Part:
        table = pa.concat_tables(tables)
        with self._write_lock:
            sequence = self._sequence
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"{PART_PREFIX}{sequence:08d}-{stamp}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
            final = self.directory / name
            temporary = self.directory / f".{name}.tmp"
            # The digest is of the bytes this process wrote, not of the file read back (which
            # someone who can write the directory could swap in between).
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            data = sink.getvalue().to_pybytes()
            digest = hashlib.sha256(data).hexdigest()
            entry = json.dumps({"part": name, "rows": table.num_rows, "sha256": digest}) + "\n"
            try:
                # A folder moved away is made again (the parts already written are where the
                # stop record says they were written, and outcome monitoring asks for them).
                self.directory.mkdir(parents=True, exist_ok=True)
                with temporary.open("xb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # The manifest line first: a part is never in place without its listed digest.
                with (self.directory / MANIFEST).open("a", encoding="utf-8") as manifest:
                    manifest.write(entry)
                os.replace(temporary, final)
            except OSError:
                with contextlib.suppress(OSError):
                    temporary.unlink()
                raise
            self._sequence += 1
            part = Part(final, table.num_rows, digest)
            self.written.append(part)
        return part

    def _flush_when_old(self) -> None:
        interval = min(self.flush_seconds / 4, 0.5)
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() writes what is left
            with self._lock:
                due = self._buffered >= self.batch_rows or (
                    self._oldest is not None
                    and time.monotonic() - self._oldest >= self.flush_seconds
                )
                taken = self._take() if due else None
            if taken:
                with contextlib.suppress(PredictionLogError):
                    self._write(taken)  # a failure keeps the rows and refuses appends; retried


def check_writable(directory: Path) -> None:
    """Raise OSError unless a file can be created, written and removed in ``directory``."""
    probe = directory / f".write-check-{uuid.uuid4().hex}"
    with probe.open("xb") as handle:
        handle.write(b"ok")
        handle.flush()
        os.fsync(handle.fileno())
    probe.unlink()


def parts(directory: Path) -> list[Path]:
    """The log's complete parts, oldest first (temporary files are hidden and skipped)."""
    return sorted(
        p
        for p in Path(directory).glob(f"{PART_PREFIX}*{PART_SUFFIX}")
        if not p.name.startswith(".")
    )


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    entries = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {entry["part"]: entry for entry in entries}


def read_log(directory: Path, *, verify: bool = True) -> pa.Table:
    """Every row of the log. With `verify`, each part must hash to its manifest entry."""
    recorded = manifest(directory) if verify else {}
    tables = []
    for path in parts(directory):
        data = path.read_bytes()
        if verify:
            entry = recorded.get(path.name)
            actual = hashlib.sha256(data).hexdigest()
            if entry is None or entry["sha256"] != actual:
                raise PredictionLogError(
                    f"prediction log part {path} is not listed in {MANIFEST} or its SHA-256 "
                    f"{actual[:16]}… differs from the recorded one: the log changed after it "
                    "was written."
                )
        tables.append(pq.read_table(pa.BufferReader(data)))
    if not tables:
        raise PredictionLogError(f"the prediction log {directory} has no parts yet")
    return pa.concat_tables(tables, promote_options="permissive")


def iter_logs(root: Path) -> Iterator[Path]:
    """Every log directory under `root` (a directory holding at least one part)."""
    root = Path(root)
    if parts(root):
        yield root
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if parts(child):
            yield child


def _next_sequence(directory: Path) -> int:
    existing = parts(directory)
    if not existing:
        return 0
    return int(existing[-1].name.removeprefix(PART_PREFIX).split("-", 1)[0]) + 1

"""Read a batch input file in chunks of exactly `chunk_rows` rows of text, with bounded memory.

CSV (plain or gzip) is parsed by `pyarrow.csv.open_csv` from a stream that hashes the bytes as
stored (so the SHA-256 equals `sha256sum FILE`) and checks that the text is UTF-8 as it passes,
which lets an encoding error name its byte offset and line. Every column is read as text, exactly
as written (`?` stays `?`, an empty field is an empty string); typing is the team's `reader`.
Parquet input is read by row groups and its columns are turned into text the same way.
Chunks have a fixed size whatever pyarrow's block size, so the same input and `chunk_rows` always
give the same chunks.
"""

from __future__ import annotations

import atexit
import codecs
import csv
import gc
import gzip
import hashlib
import io
import re
import threading
import time
import weakref
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_PARQUET_MAGIC: Final = b"PAR1"
_UTF8_BOM: Final = "\ufeff"
_BLOCK_BYTES: Final = 1 << 20
_MAX_HEADER_BYTES: Final = 1 << 20
_HASH_BLOCK_BYTES: Final = 1 << 20
_ERROR_TEXT_LIMIT: Final = 300
_ROW_TEXT: Final = re.compile(r"(got \d+): .*", re.DOTALL)
# Longest field accepted, in characters: Python's csv module limit, far above any real value. A
# longer field is refused as not the team's data (a quoting error or a wrong file).
MAX_FIELD_CHARS: Final = 131_072
# Longest row accepted, in bytes: pyarrow needs a whole row within one block.
MAX_ROW_BYTES: Final = _BLOCK_BYTES
_STRADDLES: Final = ("straddl", "block boundar")


class BatchInputError(ValueError):
    """The input cannot be scored: missing, empty, not UTF-8, not CSV or Parquet, or it breaks the
    team's contract. `failures` lists rule violations (column, check, count, rows) when known."""

    def __init__(self, message: str, failures: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


@dataclass(frozen=True)
class Chunk:
    """`table` holds text columns; its first row is data row `first_row` (1-based) of the input."""

    first_row: int
    table: pa.Table


class _HashingReader(io.RawIOBase):
    """Counts and hashes the bytes read from the file, as stored on disk."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0
        self._drained = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.bytes_read += len(data)
        return len(data)

    def drain(self) -> None:
        """Hash whatever the parser did not need (e.g. bytes after a gzip stream), once: the
        file's end was reached, and whatever reads it after (a zip's CSV) is not hashed again."""
        if self._drained:
            return
        while self.readinto(memoryview(bytearray(_HASH_BLOCK_BYTES))):
            pass
        self._drained = True


# Longest the exit waits for pyarrow's read-ahead to quiet down, in all.
_EXIT_WAIT_SECONDS: Final = 5.0
# Streams pyarrow may still read ahead from; quieted before the interpreter finalizes.
_LIVE: weakref.WeakSet[_PeekableText] = weakref.WeakSet()


@atexit.register
def _quiet_read_ahead() -> None:
    """At exit, before the interpreter finalizes: stop every stream, wait until read-ahead got the
    end and no call is in Python, then free unreachable readers now. Freed later, by the final
    collection, a reader whose read-ahead task waits for the interpreter lock hangs the exit
    forever, or a call still in Python aborts it (both seen after refusing a 50 MB field under
    load)."""
    try:
        streams = list(_LIVE)
    except RuntimeError:  # a stream was opened while copying: the exit is not quiet yet
        streams = list(_LIVE)
    for stream in streams:
        stream.stop()
    deadline = time.monotonic() + _EXIT_WAIT_SECONDS  # one deadline for all of them
    for stream in streams:
        remaining = max(deadline - time.monotonic(), 0.0)
        stream.wait_idle(timeout=remaining, end_timeout=min(remaining, 1.0))
    gc.collect()


class _PeekableText(io.RawIOBase):
    """Serves the (decompressed) CSV bytes to pyarrow after letting the reader peek at line 1."""

    def __init__(self, source: BinaryIO, name: str, compression: str = "gzip") -> None:
        self._source = source
        self._name = name
        self._compression = compression
        self._pending = b""
        # pyarrow reads ahead on its own I/O thread, calling back into readinto. A call still in
        # Python when the interpreter exits aborts it ("PyGILState_Release ... finalizing"), so
        # a reader that stops early serves no more bytes and waits until no call is in flight.
        self._calls = threading.Condition()
        self._in_flight = 0
        self._stopped = False
        self._end_served = False  # a call after `stop` got the end: read-ahead stops calling
        _LIVE.add(self)

    def readable(self) -> bool:
        return True

    def header_line(self) -> bytes:
        """The first line, kept in a buffer so that pyarrow still reads it."""
        while b"\n" not in self._pending and len(self._pending) < _MAX_HEADER_BYTES:
            block = self._read_source(64 << 10)
            if not block:
                break
            self._pending += block
        return self._pending.split(b"\n", 1)[0]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        with self._calls:
            if self._stopped:
                self._end_served = True
                self._calls.notify_all()
                return 0
            self._in_flight += 1
        data = b""
        try:
            if self._pending:
                data, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
            else:
                data = self._read_source(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        finally:
            with self._calls:
                self._in_flight -= 1
                if not data:  # the source's own end: read-ahead stops calling too
                    self._end_served = True
                self._calls.notify_all()

    def stop(self) -> None:
        """Serve no more bytes: pyarrow's read-ahead sees the end and stops calling."""
        with self._calls:
            self._stopped = True

    def wait_idle(self, timeout: float = 10.0, end_timeout: float = 0.0) -> bool:
        """Wait until no read-ahead call is inside `readinto` (True) or ``timeout`` passed; then,
        for up to ``end_timeout``, until read-ahead has been served the end.

        A read-ahead task that pyarrow queued but that has not entered Python yet is not "in
        flight"; if the reader is freed while it waits for the interpreter lock (at exit, by the
        collector), the two wait on each other forever (a refused 50 MB field hung `mlops infer`
        under load). Once a call got the end, read-ahead schedules no more reads. When its queue
        is full it reads no more either, and the second wait just times out: so only the exit
        hook waits for it; a refusal while the process goes on does not."""
        with self._calls:
            idle = self._calls.wait_for(lambda: self._in_flight == 0, timeout)
            self._calls.wait_for(lambda: self._end_served and self._in_flight == 0, end_timeout)
            return idle

    def _read_source(self, size: int) -> bytes:
        try:
            return self._source.read(size)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            raise BatchInputError(
                f"{self._name} is not a valid {self._compression} file: {error}"
            ) from error


class BatchInput:
    """An input file opened for chunked reading; use as a context manager.

    After `chunks()` is exhausted, `sha256` is the digest of the whole file as stored.
    """

    def __init__(
        self,
        path: Path,
        chunk_rows: int,
        *,
        zip_csv: bool = False,
        zip_member: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        """``zip_csv``: read a zip holding one CSV (``zip_member``, by file name in any folder of
        the zip; None: its only file), as training data may be; batch scoring refuses zips.
        ``columns``: read only these columns of a CSV (all must be in its header)."""
        if chunk_rows < 1:
            raise BatchInputError(f"chunk_rows must be at least 1; got {chunk_rows}.")
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self._columns = list(columns) if columns is not None else None
        if not self.path.exists():
            raise BatchInputError(
                f"Input {self.path} does not exist. Pass an existing CSV, CSV.gz or Parquet file "
                "(`--input` of mlops infer, `--data` of mlops train)."
            )
        if not self.path.is_file():
            raise BatchInputError(
                f"Input {self.path} is not a file; pass a CSV, CSV.gz or Parquet."
            )
        self.size_bytes = self.path.stat().st_size
        if self.size_bytes == 0:
            raise BatchInputError(
                f"Input {self.path} is empty (0 bytes); expected a CSV with a header and rows."
            )
        self._file: BinaryIO = self.path.open("rb")
        self._hashing = _HashingReader(self._file)
        self._rows_read = 0
        self._parquet: pq.ParquetFile | None = None
        magic = self._file.read(4)
        self._file.seek(0)
        self._zip_name: str | None = None
        if magic.startswith(_ZIP_MAGIC):
            if not zip_csv:
                self.close()
                raise BatchInputError(
                    f"Input {self.path} is a zip archive; batch scoring reads CSV, CSV.gz or "
                    "Parquet. Extract the CSV first."
                )
            self._zip_name = self._zip_csv_name(zip_member)
        self.format = "parquet" if magic == _PARQUET_MAGIC else "csv"
        self.compressed = magic.startswith(_GZIP_MAGIC)
        if self.path.suffix.lower() == ".gz" and not self.compressed:
            self.close()
            raise BatchInputError(
                f"Input {self.path} is named .gz but is not gzip-compressed (it starts with bytes "
                f"{magic[:2].hex(' ')}, not 1f 8b). Compress it with gzip, or name it .csv if it "
                "is plain CSV."
            )

    def _zip_csv_name(self, member: str | None) -> str:
        """The one file of the zip named ``member`` (by file name, in any folder), else refuse."""
        try:
            with zipfile.ZipFile(self._file) as archive:
                names = [
                    n
                    for n in archive.namelist()
                    if not n.endswith("/") and (member is None or Path(n).name == member)
                ]
        except (zipfile.BadZipFile, OSError) as error:
            self.close()
            raise BatchInputError(f"Input {self.path} is not a valid zip file: {error}") from error
        finally:
            self._file.seek(0)
        if len(names) != 1:
            self.close()
            raise BatchInputError(
                f"Input {self.path} is a zip holding {len(names)} files named "
                f"{member or '(any name)'}; it must hold exactly one CSV."
            )
        return names[0]

    def _text_source(self, raw: BinaryIO) -> BinaryIO:
        """The CSV bytes of the file opened as ``raw``: as stored, gunzipped, or the zip's CSV."""
        if self._zip_name is not None:
            return zipfile.ZipFile(raw).open(self._zip_name)  # type: ignore[return-value]
        if self.compressed:
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        return raw

    def __enter__(self) -> BatchInput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._file.close()

    @property
    def rows_read(self) -> int:
        return self._rows_read

    def fraction_read(self) -> float:
        """Share of the input consumed so far, for progress reporting."""
        if self._parquet is not None:
            total = self._parquet.metadata.num_rows
            return self._rows_read / total if total else 1.0
        return min(self._hashing.bytes_read / self.size_bytes, 1.0)

    @property
    def sha256(self) -> str:
        """SHA-256 of the file as stored, once `chunks()` is exhausted (reads any rest)."""
        self._hashing.drain()
        return self._hashing.digest.hexdigest()

    def chunks(self) -> Iterator[Chunk]:
        """Chunks of exactly `chunk_rows` rows (the last may be shorter), in file order."""
        batches = self._parquet_batches() if self.format == "parquet" else self._csv_batches()
        pending: list[pa.RecordBatch] = []
        held = 0
        first_row = 1
        for batch in batches:
            pending.append(batch)
            held += batch.num_rows
            while held >= self.chunk_rows:
                table = pa.Table.from_batches(pending)
                chunk, rest = table.slice(0, self.chunk_rows), table.slice(self.chunk_rows)
                yield Chunk(first_row, chunk.combine_chunks())
                first_row += self.chunk_rows
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield Chunk(first_row, pa.Table.from_batches(pending).combine_chunks())
        elif first_row == 1:
            raise BatchInputError(f"Input {self.path} has a header but no data rows.")

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        if self._zip_name is not None:
            # A zip's directory is at its end: the whole file is hashed first, then its CSV read.
            self._hashing.drain()
            self._file.seek(0)
            source = self._text_source(self._file)
        else:
            source = self._text_source(self._hashing)  # type: ignore[arg-type]
        text = _PeekableText(source, str(self.path), "zip" if self._zip_name else "gzip")
        header = self._header(text)
        absent = [c for c in self._columns or () if c not in header]
        if absent:
            text.stop()
            raise BatchInputError(
                f"Input {self.path} has no column {', '.join(map(repr, absent))} in its header."
            )
        try:
            reader = pa_csv.open_csv(
                pa.PythonFile(text, mode="r"),
                read_options=pa_csv.ReadOptions(
                    block_size=_BLOCK_BYTES, column_names=header, skip_rows=1
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()),
                    include_columns=self._columns,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            try:
                for batch in reader:
                    self._check_field_sizes(batch)
                    self._rows_read += batch.num_rows
                    yield batch
            finally:
                text.stop()
                reader.close()
        except pa.ArrowInvalid as error:
            raise self._format_error(error) from error
        finally:
            # Before any error reaches the caller, no pyarrow thread may still be reading this
            # Python file object (CI saw exit -6 after refusing a 50 MB field).
            text.stop()
            text.wait_idle()

    def _check_field_sizes(self, batch: pa.RecordBatch) -> None:
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            lengths = pc.utf8_length(column)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > MAX_FIELD_CHARS:
                position = pc.index(lengths, longest).as_py()
                raise BatchInputError(
                    f"Input {self.path}: column {name!r} in data row "
                    f"{self._rows_read + position + 1:,} holds {longest:,} characters, over the "
                    f"limit of {MAX_FIELD_CHARS:,} characters per field. Check the file's quoting "
                    "(an unclosed quote swallows the rows after it) or that it is the right file."
                )

    def _header(self, text: _PeekableText) -> list[str]:
        line = text.header_line()
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BatchInputError(_utf8_problem(str(self.path), error, 0, 0)) from error
        decoded = decoded.rstrip("\r").removeprefix(_UTF8_BOM)
        if not decoded.strip():
            raise BatchInputError(
                f"Input {self.path} has no header line; expected a CSV whose first line names "
                "the columns."
            )
        if len(line) >= _MAX_HEADER_BYTES:
            raise BatchInputError(
                f"Input {self.path}: the header line is longer than the limit of "
                f"{_MAX_HEADER_BYTES:,} bytes; expected a CSV whose first line names the columns."
            )
        try:
            return next(csv.reader([decoded]))
        except csv.Error as error:
            raise BatchInputError(
                f"Input {self.path}: the header line is not CSV ({error}); a header field may "
                f"hold at most {MAX_FIELD_CHARS:,} characters. Expected a CSV whose first line "
                "names the columns."
            ) from error

    def _format_error(self, error: pa.ArrowInvalid) -> BatchInputError:
        if "UTF8" in str(error):
            located = self._locate_utf8_error()
            if located:
                return BatchInputError(located)
        if any(marker in str(error) for marker in _STRADDLES):
            return BatchInputError(
                f"Input {self.path} has a row longer than the limit of {MAX_ROW_BYTES:,} bytes "
                f"after data row {self._rows_read:,} (a field may hold at most "
                f"{MAX_FIELD_CHARS:,} characters). Check the file's quoting (an unclosed quote "
                "swallows the rows after it) or that it is the right file."
            )
        # pyarrow quotes the offending row, which is patient data: keep only the diagnosis.
        detail = _ROW_TEXT.sub(r"\1 (row text omitted)", str(error))[:_ERROR_TEXT_LIMIT]
        # A line of binary junk breaks the column count before pyarrow checks its encoding.
        located = self._locate_utf8_error()
        return BatchInputError(
            f"Input {self.path} is not a well-formed CSV file after data row {self._rows_read}: "
            f"{detail}" + (f"\n{located}" if located else "")
        )

    def _locate_utf8_error(self) -> str | None:
        """Second pass, on failure only: pyarrow checks UTF-8 but does not say where it broke."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = lines = 0
        with self.path.open("rb") as raw:
            stream = self._text_source(raw)
            while block := stream.read(_HASH_BLOCK_BYTES):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as error:
                    return _utf8_problem(str(self.path), error, offset, lines)
                offset += len(block)
                lines += block.count(b"\n")
        return None

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            self._parquet = pq.ParquetFile(self.path)
            batches = self._parquet.iter_batches(batch_size=self.chunk_rows)
            for batch in batches:
                self._rows_read += batch.num_rows
                yield pa.RecordBatch.from_arrays(
                    [pc.cast(column, pa.string()).fill_null("") for column in batch.columns],
                    names=batch.schema.names,
                )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
            raise BatchInputError(
                f"Input {self.path} is not a readable Parquet file: {error}"
            ) from error


def _utf8_problem(name: str, error: UnicodeDecodeError, offset: int, lines: int) -> str:
    data = error.object if isinstance(error.object, bytes) else b""
    line = lines + data.count(b"\n", 0, error.start) + 1
    bad = data[error.start : error.end].hex(" ")
    return (
        f"Input {name} is not UTF-8 text: byte(s) {bad} at byte offset {offset + error.start} of "
        f"the CSV text (file line {line}) cannot be decoded. Re-save the file as UTF-8."
    )

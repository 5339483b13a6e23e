"""Load the raw UCI encounters from a file, the official download or the synthetic generator.

Every load returns the raw frame (the 50 columns of `uci.COLUMNS`, integers as int64, the rest
as pandas strings with the file's literal values, `?` and `None` included) and a provenance
record with the SHA-256 of the CSV bytes, so a trained model can name exactly what it saw.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Final, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pydantic

from readmission.core import uci
from readmission.core.synthetic import generate_encounters

logger = logging.getLogger(__name__)

HOW_TO_PROVIDE_DATA: Final = (
    "Provide the data with `--data PATH` or the READMISSION_DATA environment variable "
    f"(a CSV, CSV.gz or the UCI zip holding {uci.UCI_CSV_NAME}), or download the zip from "
    f"{uci.UCI_ZIP_URL} yourself. Staging and production never fall back to synthetic data."
)
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_DOWNLOAD_CHUNK_BYTES: Final = 1 << 20
_SAMPLE_SIZE: Final = 5
_INTEGER_PATTERN: Final = r"^-?[0-9]{1,18}$"
_THREADED_ROWS: Final = 10_000  # tables of this many rows convert to pandas on Arrow's threads


class DataSettings(pydantic.BaseModel):
    """The `data` section of `configs/*/training.yaml`."""

    model_config = pydantic.ConfigDict(extra="forbid")

    path: str | None = None
    download: bool = True
    allow_synthetic: bool = False
    url: str = uci.UCI_ZIP_URL
    # SHA-256 of diabetic_data.csv inside the zip at `url`; change only together with `url`.
    expected_sha256: str = pydantic.Field(default=uci.UCI_CSV_SHA256, pattern="^[0-9a-f]{64}$")
    timeout_seconds: float = pydantic.Field(default=60.0, gt=0)
    cache_dir: str = ".mlops/data"
    synthetic_patients: int = pydantic.Field(default=8000, ge=1)
    synthetic_seed: int = 7


@dataclass(frozen=True)
class DataProvenance:
    """Where the training data came from and the SHA-256 of its CSV bytes."""

    source: Literal["file", "download", "synthetic"]
    location: str
    sha256: str
    rows: int
    patients: int

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


class DataError(RuntimeError):
    """Base class for every failure to obtain the raw encounters."""


class DataUnavailableError(DataError):
    """No data could be obtained: missing file, failed or disabled download, no synthetic."""


class DataIntegrityError(DataError):
    """The downloaded file is not the one whose SHA-256 we pinned."""


class DataFormatError(DataError, ValueError):
    """The bytes are not the UCI CSV: empty, not UTF-8, not CSV, or columns missing.

    Also a `ValueError`, the error the batch-scoring contract expects for bad input; `columns`
    names the refused columns when known.
    """

    def __init__(self, message: str, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.columns = list(columns or [])


def read_encounters(path: str | Path, *, require_target: bool = True) -> tuple[pd.DataFrame, str]:
    """Read a `.csv`, `.csv.gz` or `.zip` (holding `diabetic_data.csv`) into the raw frame.

    Returns the frame and the SHA-256 of the CSV bytes (for a zip or gzip: of the CSV inside).
    Pass `require_target=False` for inference input, which may lack `readmitted`.
    """
    path = Path(path)
    if not path.exists():
        raise DataUnavailableError(f"Data file {path} does not exist. {HOW_TO_PROVIDE_DATA}")
    if not path.is_file():
        raise DataFormatError(f"{path} is not a file; expected a CSV, CSV.gz or zip file.")
    raw = _csv_bytes(path.read_bytes(), source=str(path))
    return parse_encounters(raw, source=str(path), require_target=require_target), _sha256(raw)


def parse_encounters(
    raw: bytes, *, source: str = "<bytes>", require_target: bool = True
) -> pd.DataFrame:
    """Parse UCI CSV bytes into the raw frame; `source` names the input in error messages."""
    _check_utf8(raw, source)
    raw = raw.removeprefix(_UTF8_BOM)
    if not raw.strip():
        raise DataFormatError(
            f"{source} is empty; expected a CSV whose header holds the {len(uci.COLUMNS)} "
            "columns of the UCI file."
        )
    header = _header(raw, source, require_target)
    try:
        table = pa_csv.read_csv(
            BytesIO(raw),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise DataFormatError(f"{source} is not a well-formed CSV file: {error}") from error
    if table.num_rows == 0:
        raise DataFormatError(f"{source} has a header but no data rows.")
    return encounters_from_text(table, source=source, require_target=require_target)


def encounters_from_text(
    table: pa.Table, *, source: str, first_row: int = 1, require_target: bool = True
) -> pd.DataFrame:
    """The raw frame from a table of CSV text columns: the one conversion every reader uses.

    Integer columns must hold plain whole numbers and become int64; every other column keeps
    the file's literal text. `first_row` is the data-row number of the table's first row in
    `source`, so a chunk of a large file names the file's rows in its errors.
    """
    check_header(table.column_names, source, require_target)
    present = set(table.column_names)  # a new list per access: read once, not per column
    columns = [c for c in uci.COLUMNS if c in present]
    integers = [name for name in columns if name in uci.INTEGER_COLUMNS]
    problems = (
        {}
        if _all_integers(table, integers)
        else {
            name: p
            for name in integers
            if (p := _non_integers(table[name], name, first_row, lines=_has_lines(source)))
        }
    )
    if problems:
        raise DataFormatError(
            f"{source} has non-numeric values in integer columns:\n"
            + "\n".join(problems.values())
            + "\nFix these rows or re-export the file from the original UCI zip.",
            columns=list(problems),
        )
    arrays = {
        name: pc.cast(table[name], pa.int64()) if name in uci.INTEGER_COLUMNS else table[name]
        for name in columns
    }
    # Arrow's threads pay for a large table only; handing them a request's few rows costs more.
    return pa.table(arrays).to_pandas(use_threads=table.num_rows >= _THREADED_ROWS)


def encounters_to_score(table: pa.Table, *, source: str, first_row: int = 1) -> pd.DataFrame:
    """`encounters_from_text` for scoring input, which may lack the `readmitted` column."""
    return encounters_from_text(table, source=source, first_row=first_row, require_target=False)


def download_uci(
    url: str,
    cache_dir: Path,
    timeout_seconds: float,
    expected_sha256: str = uci.UCI_CSV_SHA256,
) -> Path:
    """Return the cached `diabetic_data.csv`, downloading and verifying it when needed.

    The cached file is used only if its SHA-256 matches; a fresh download goes to a temporary
    file and is renamed into place only after the CSV inside the zip matched `expected_sha256`,
    so nothing unverified is ever left where a later run would trust it.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / uci.UCI_CSV_NAME
    if target.is_file() and _sha256(target.read_bytes()) == expected_sha256:
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
        archive = Path(scratch) / "download.zip"
        _fetch(url, archive, timeout_seconds)
        raw = _zip_member(archive.read_bytes(), source=url)
        actual = _sha256(raw)
        if actual != expected_sha256:
            raise DataIntegrityError(
                f"SHA-256 of {uci.UCI_CSV_NAME} downloaded from {url} does not match: "
                f"expected {expected_sha256}, got {actual}. The file was discarded. "
                "Check the URL (a proxy or mirror may have altered the file), or provide the "
                "verified file with `--data PATH`."
            )
        staged = Path(scratch) / uci.UCI_CSV_NAME
        staged.write_bytes(raw)
        os.replace(staged, target)
    return target


def load_encounters(settings: DataSettings) -> tuple[pd.DataFrame, DataProvenance]:
    """Load the raw encounters: the given path, else the UCI download, else synthetic if allowed."""
    if settings.path:
        path = Path(settings.path).expanduser()
        frame, digest = read_encounters(path)
        return frame, _provenance("file", str(path.resolve()), digest, frame)
    download_error: DataUnavailableError | None = None
    if settings.download:
        try:
            csv_path = download_uci(
                settings.url,
                Path(settings.cache_dir),
                settings.timeout_seconds,
                settings.expected_sha256,
            )
        except DataUnavailableError as error:
            download_error = error
        else:
            frame, digest = read_encounters(csv_path)
            return frame, _provenance("download", settings.url, digest, frame)
    reason = (
        str(download_error)
        if download_error
        else "no data path is set and downloading is disabled (data.download is false)."
    )
    if settings.allow_synthetic:
        return _synthetic(settings, reason)
    raise DataUnavailableError(f"No encounter data: {reason} {HOW_TO_PROVIDE_DATA}") from (
        download_error
    )


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of the CSV the frame serialises to (header, no index, `\\n` line ends)."""
    return _sha256(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def _synthetic(settings: DataSettings, reason: str) -> tuple[pd.DataFrame, DataProvenance]:
    location = f"synthetic(patients={settings.synthetic_patients}, seed={settings.synthetic_seed})"
    logger.warning(
        "\n%s\nTRAINING ON SYNTHETIC DATA: %s\n"
        "Real data was not available: %s\n"
        "Metrics, model cards and fairness reports from this run say nothing about real "
        "patients.\nTo train on the real UCI file pass `--data PATH` or set READMISSION_DATA "
        "to a CSV, CSV.gz or the UCI zip.\n%s",
        "!" * 78,
        location,
        reason,
        "!" * 78,
    )
    frame = generate_encounters(settings.synthetic_patients, settings.synthetic_seed)
    return frame, _provenance("synthetic", location, frame_sha256(frame), frame)


def _provenance(
    source: Literal["file", "download", "synthetic"],
    location: str,
    digest: str,
    frame: pd.DataFrame,
) -> DataProvenance:
    return DataProvenance(
        source=source,
        location=location,
        sha256=digest,
        rows=len(frame),
        patients=int(frame[uci.PATIENT_ID].nunique()),
    )


def _csv_bytes(data: bytes, source: str) -> bytes:
    """The CSV bytes inside `data`, which may be plain, gzip-compressed or a zip archive."""
    if data.startswith(_ZIP_MAGIC):
        return _zip_member(data, source)
    if data.startswith(_GZIP_MAGIC):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataFormatError(f"{source} is not a valid gzip file: {error}") from error
    return data


def _zip_member(data: bytes, source: str) -> bytes:
    """Bytes of the one `diabetic_data.csv` in the archive, in whatever folder it sits."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = archive.namelist()
            matches = [
                name
                for name in names
                if PurePosixPath(name).name == uci.UCI_CSV_NAME and not name.startswith("__MACOSX")
            ]
            if len(matches) != 1:
                found = "none" if not matches else f"{len(matches)}: {', '.join(matches)}"
                raise DataFormatError(
                    f"{source} must hold exactly one {uci.UCI_CSV_NAME}; found {found}. "
                    f"Archive members: {', '.join(names[:10]) or 'none'}."
                )
            return archive.read(matches[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DataFormatError(f"{source} is not a valid zip archive: {error}") from error


def _check_utf8(raw: bytes, source: str) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        bad = raw[error.start : error.end].hex(" ")
        raise DataFormatError(
            f"{source} is not UTF-8 text: byte(s) {bad} at byte offset {error.start} "
            f"(file line {line}) cannot be decoded. Expected the UCI CSV; if it is, re-save "
            "it as UTF-8."
        ) from error


def _header(raw: bytes, source: str, require_target: bool) -> list[str]:
    """Column names of the first line, checked against the UCI layout."""
    first_line = raw.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    header = next(csv.reader([first_line]))
    check_header(header, source, require_target)
    return header


def check_header(header: Sequence[str], source: str, require_target: bool = True) -> None:
    """Raise `DataFormatError` naming missing, unexpected and duplicated UCI columns."""
    header = list(header)
    present, known = set(header), set(uci.COLUMNS)
    required = [c for c in uci.COLUMNS if require_target or c != uci.TARGET_COLUMN]
    missing = [c for c in required if c not in present]
    unexpected = [c for c in header if c not in known]
    duplicated = sorted(c for c, n in Counter(header).items() if n > 1)
    problems = [
        f"{label}: {_names(names)}"
        for label, names in (
            ("missing columns", missing),
            ("unexpected columns", unexpected),
            ("duplicated columns", duplicated),
        )
        if names
    ]
    if problems:
        delimiter_hint = (
            " The header is a single field: is the file comma-separated?"
            if len(header) == 1
            else ""
        )
        raise DataFormatError(
            f"{source} does not have the UCI columns ({'; '.join(problems)}).{delimiter_hint} "
            f"Expected the {len(required)} columns of {uci.UCI_CSV_NAME}, "
            f"from {required[0]!r} to {required[-1]!r}"
            + ("" if require_target else f" (the outcome {uci.TARGET_COLUMN!r} may be left out)")
            + "."
        )


def _names(names: list[str]) -> str:
    """A short list of column names for a message: the first few, each cut to a sane length."""
    shown = [repr(n if len(n) <= 40 else n[:37] + "...") for n in names[:_SAMPLE_SIZE]]
    more = f" and {len(names) - _SAMPLE_SIZE} more" if len(names) > _SAMPLE_SIZE else ""
    return ", ".join(shown) + more


def _all_integers(table: pa.Table, names: list[str]) -> bool:
    """True when every value of the `names` columns is a plain integer: one pattern match over
    all of them (a request's columns hold a value each; a match per column costs ~50 µs).

    False means "look per column" (`_non_integers`), which also names the bad values; so do
    columns of different types, which cannot be matched as one.
    """
    chunks = [chunk for name in names for chunk in table[name].chunks]
    if len({chunk.type for chunk in chunks}) != 1:
        return False
    matched = pc.match_substring_regex(pa.chunked_array(chunks), _INTEGER_PATTERN)
    return pc.all(matched).as_py() is not False  # None: no values, or only nulls


def _has_lines(source: str) -> bool:
    """Whether ``source`` is a text file whose rows are lines (a Parquet file's are not)."""
    return not str(source).lower().endswith((".parquet", ".pq"))


def _non_integers(
    column: pa.ChunkedArray, name: str, first_row: int = 1, *, lines: bool = True
) -> str | None:
    """One line naming the values that are not plain integers, or None if all are; ``lines``:
    also the file's line numbers (a CSV's header is line 1)."""
    column = column.combine_chunks()
    bad = pc.invert(pc.match_substring_regex(column, _INTEGER_PATTERN))
    positions = pc.indices_nonzero(bad).to_pylist()
    if not positions:
        return None
    shown = positions[:_SAMPLE_SIZE]
    return (
        f"  column {name!r}: {len(positions)} value(s) are not whole numbers, e.g. data rows "
        f"{', '.join(str(p + first_row) for p in shown)} "
        + (f"(file lines {', '.join(str(p + first_row + 1) for p in shown)}) " if lines else "")
        + f"hold {', '.join(repr(column[p].as_py()) for p in shown)}"
    )


def _fetch(url: str, destination: Path, timeout_seconds: float) -> None:
    """Stream `url` to `destination`, failing after `timeout_seconds` without progress or in all."""
    deadline = time.monotonic() + timeout_seconds
    request = urllib.request.Request(url, headers={"User-Agent": "readmission-mlops"})
    try:
        with (
            urllib.request.urlopen(request, timeout=timeout_seconds) as response,
            destination.open("wb") as out,
        ):
            while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
    except urllib.error.HTTPError as error:
        raise DataUnavailableError(
            f"Download of {url} failed: HTTP {error.code} {error.reason}."
        ) from error
    except TimeoutError as error:
        raise _timeout(url, timeout_seconds) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _timeout(url, timeout_seconds) from error
        raise DataUnavailableError(
            f"Download of {url} failed: {error.reason}. Check the network or proxy settings."
        ) from error
    except (OSError, ValueError) as error:
        raise DataUnavailableError(f"Download of {url} failed: {error}.") from error


def _timeout(url: str, timeout_seconds: float) -> DataUnavailableError:
    return DataUnavailableError(
        f"Download of {url} timed out after {timeout_seconds:g} s (data.timeout_seconds). "
        "Raise data.timeout_seconds on a slow network."
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

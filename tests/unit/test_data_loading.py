"""Loading raw encounters: files, the verified download (against a loopback server), fallback."""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pydantic
import pytest
from _raw_frames import NESTED_MEMBER, csv_bytes, raw_frame, zip_bytes

from readmission.core import uci
from readmission.core.data import (
    DataFormatError,
    DataIntegrityError,
    DataProvenance,
    DataSettings,
    DataUnavailableError,
    download_uci,
    encounters_from_text,
    frame_sha256,
    load_encounters,
    read_encounters,
)

REAL_DEV_ROWS = 81_168  # facts of the shared development copy (its README)
REAL_DEV_PATIENTS = 56_990


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LoopbackServer:
    """Serves `routes` (path -> (delay seconds, status, body)) on 127.0.0.1 and counts hits."""

    base_url: str
    routes: dict[str, tuple[float, int, bytes]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    state = LoopbackServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] += 1
            delay, status, body = state.routes.get(self.path, (0.0, 404, b"not found"))
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def frame() -> pd.DataFrame:
    return raw_frame()


@pytest.fixture
def uci_zip(frame: pd.DataFrame) -> tuple[bytes, str]:
    """A zip shaped like the UCI download and the SHA-256 of the CSV inside it."""
    raw = csv_bytes(frame)
    archive = zip_bytes({NESTED_MEMBER: raw, "IDs_mapping.csv": b"admission_type_id,description\n"})
    return archive, _sha256(raw)


# --- files ---------------------------------------------------------------------------------


def test_reads_csv_with_exact_types_and_literal_values(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "encounters.csv"
    path.write_bytes(csv_bytes(frame))
    loaded, digest = read_encounters(path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert digest == _sha256(path.read_bytes()) == frame_sha256(frame)
    assert (loaded["max_glu_serum"] == "None").any()
    assert (loaded["weight"] == uci.MISSING).any()


def test_reads_csv_gz_and_hashes_the_csv_inside(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "encounters.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes(frame)))
    loaded, digest = read_encounters(path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert digest == _sha256(csv_bytes(frame))


def test_reads_uci_zip_from_any_folder(tmp_path: Path, uci_zip: tuple[bytes, str]) -> None:
    archive, expected = uci_zip
    path = tmp_path / "uci.zip"
    path.write_bytes(archive)
    loaded, digest = read_encounters(path)
    assert digest == expected
    assert list(loaded.columns) == list(uci.COLUMNS)


def test_zip_without_the_csv_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    path.write_bytes(zip_bytes({"readme.txt": b"hello"}))
    with pytest.raises(DataFormatError, match=rf"{uci.UCI_CSV_NAME}.*found none.*readme\.txt"):
        read_encounters(path)


def test_columns_in_another_order_are_put_in_uci_order(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "shuffled.csv"
    path.write_bytes(csv_bytes(frame[list(reversed(frame.columns))]))
    pd.testing.assert_frame_equal(read_encounters(path)[0], frame)


def test_crlf_line_endings_like_the_original(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(frame.to_csv(index=False, lineterminator="\r\n").encode())
    pd.testing.assert_frame_equal(read_encounters(path)[0], frame)


def test_inference_input_may_lack_the_target(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "batch.csv"
    path.write_bytes(csv_bytes(frame.drop(columns=uci.TARGET_COLUMN)))
    with pytest.raises(DataFormatError, match=uci.TARGET_COLUMN):
        read_encounters(path)
    loaded, _ = read_encounters(path, require_target=False)
    assert uci.TARGET_COLUMN not in loaded.columns


def test_missing_column_is_named(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "missing.csv"
    path.write_bytes(csv_bytes(frame.drop(columns=["age", "insulin"])))
    with pytest.raises(DataFormatError, match=r"missing columns: 'age', 'insulin'"):
        read_encounters(path)


def test_text_in_an_integer_column_names_column_rows_and_values(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    frame = frame.astype({"num_lab_procedures": "str"})
    frame.loc[[1, 6], "num_lab_procedures"] = ["abc", "4.5"]
    path = tmp_path / "text.csv"
    path.write_bytes(csv_bytes(frame))
    with pytest.raises(DataFormatError) as caught:
        read_encounters(path)
    message = str(caught.value)
    assert "'num_lab_procedures'" in message
    assert "data rows 2, 7 (file lines 3, 8)" in message
    assert "'abc', '4.5'" in message
    assert str(path) in message
    # A Parquet file has rows, not lines: its message names data rows only.
    table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
    with pytest.raises(DataFormatError) as parquet:
        encounters_from_text(table, source=str(tmp_path / "text.parquet"))
    assert "data rows 2, 7 hold 'abc', '4.5'" in str(parquet.value)
    assert "file lines" not in str(parquet.value)


def test_empty_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=rf"{path}.* is empty"):
        read_encounters(path)


def test_header_without_rows_is_a_format_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(csv_bytes(frame.iloc[:0]))
    with pytest.raises(DataFormatError, match="no data rows"):
        read_encounters(path)


def test_non_utf8_bytes_name_file_offset_and_line(tmp_path: Path, frame: pd.DataFrame) -> None:
    lines = csv_bytes(frame).split(b"\n")
    lines[3] = lines[3].replace(b",", b",M\xfcller", 1)  # Latin-1, not UTF-8
    data = b"\n".join(lines)
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    offset = data.index(b"\xfc")
    with pytest.raises(
        DataFormatError, match=rf"{path} is not UTF-8.*offset {offset} \(file line 4\)"
    ):
        read_encounters(path)


def test_ragged_row_is_a_format_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    data = csv_bytes(frame) + b"1,2,3\n"
    path = tmp_path / "ragged.csv"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match="not a well-formed CSV"):
        read_encounters(path)


def test_missing_file_is_unavailable_and_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataUnavailableError, match=rf"{path} does not exist.*--data"):
        load_encounters(DataSettings(path=str(path)))


def test_load_from_path_records_file_provenance(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "encounters.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes(frame)))
    loaded, provenance = load_encounters(DataSettings(path=str(path), allow_synthetic=True))
    assert provenance == DataProvenance(
        source="file",
        location=str(path.resolve()),
        sha256=_sha256(csv_bytes(frame)),
        rows=len(frame),
        patients=frame[uci.PATIENT_ID].nunique(),
    )
    assert provenance.as_dict()["rows"] == len(loaded)


def test_settings_reject_unknown_keys_and_bad_values() -> None:
    assert DataSettings().url == uci.UCI_ZIP_URL
    with pytest.raises(pydantic.ValidationError, match="allow_synthtic"):
        DataSettings.model_validate({"allow_synthtic": True})
    with pytest.raises(pydantic.ValidationError, match="timeout_seconds"):
        DataSettings(timeout_seconds=0)


# --- download ------------------------------------------------------------------------------


def test_download_verifies_and_caches(
    tmp_path: Path, server: LoopbackServer, uci_zip: tuple[bytes, str], frame: pd.DataFrame
) -> None:
    archive, expected = uci_zip
    server.routes["/uci.zip"] = (0.0, 200, archive)
    cache = tmp_path / "cache"
    path = download_uci(server.url("/uci.zip"), cache, 5.0, expected_sha256=expected)
    assert path == cache / uci.UCI_CSV_NAME
    assert _sha256(path.read_bytes()) == expected
    assert sorted(p.name for p in cache.iterdir()) == [uci.UCI_CSV_NAME]
    assert download_uci(server.url("/uci.zip"), cache, 5.0, expected_sha256=expected) == path
    assert server.hits["/uci.zip"] == 1  # the second call used the verified cache


def test_load_downloads_when_no_path_is_given(
    tmp_path: Path,
    server: LoopbackServer,
    uci_zip: tuple[bytes, str],
    frame: pd.DataFrame,
) -> None:
    archive, expected = uci_zip
    server.routes["/uci.zip"] = (0.0, 200, archive)
    settings = DataSettings(
        url=server.url("/uci.zip"), expected_sha256=expected, cache_dir=str(tmp_path / "cache")
    )
    loaded, provenance = load_encounters(settings)
    pd.testing.assert_frame_equal(loaded, frame)
    assert (provenance.source, provenance.location, provenance.sha256) == (
        "download",
        settings.url,
        expected,
    )
    load_encounters(settings)
    assert server.hits["/uci.zip"] == 1


def test_hash_mismatch_raises_and_leaves_nothing_trusted(
    tmp_path: Path, server: LoopbackServer, uci_zip: tuple[bytes, str]
) -> None:
    archive, actual = uci_zip
    server.routes["/uci.zip"] = (0.0, 200, archive)
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(DataIntegrityError) as caught:
        download_uci(server.url("/uci.zip"), cache, 5.0, expected_sha256=wrong)
    assert f"expected {wrong}, got {actual}" in str(caught.value)
    assert list(cache.iterdir()) == []


def test_tampered_cache_is_not_trusted(
    tmp_path: Path, server: LoopbackServer, uci_zip: tuple[bytes, str]
) -> None:
    archive, expected = uci_zip
    server.routes["/uci.zip"] = (0.0, 200, archive)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / uci.UCI_CSV_NAME).write_bytes(b"encounter_id\n1\n")
    path = download_uci(server.url("/uci.zip"), cache, 5.0, expected_sha256=expected)
    assert server.hits["/uci.zip"] == 1
    assert _sha256(path.read_bytes()) == expected


def test_hash_mismatch_never_falls_back_to_synthetic(
    tmp_path: Path, server: LoopbackServer, uci_zip: tuple[bytes, str]
) -> None:
    server.routes["/uci.zip"] = (0.0, 200, uci_zip[0])  # its CSV is not the official file
    settings = DataSettings(
        url=server.url("/uci.zip"), cache_dir=str(tmp_path / "cache"), allow_synthetic=True
    )
    with pytest.raises(DataIntegrityError, match=uci.UCI_CSV_SHA256):
        load_encounters(settings)


def test_slow_server_times_out(tmp_path: Path, server: LoopbackServer) -> None:
    server.routes["/slow.zip"] = (1.0, 200, b"late")
    started = time.monotonic()
    with pytest.raises(DataUnavailableError, match=r"timed out after 0\.2 s"):
        download_uci(server.url("/slow.zip"), tmp_path / "cache", 0.2)
    assert time.monotonic() - started < 0.9
    assert list((tmp_path / "cache").iterdir()) == []


def test_http_error_is_unavailable(tmp_path: Path, server: LoopbackServer) -> None:
    with pytest.raises(DataUnavailableError, match="HTTP 404"):
        download_uci(server.url("/missing.zip"), tmp_path / "cache", 5.0)


def test_download_of_a_non_zip_is_a_format_error(tmp_path: Path, server: LoopbackServer) -> None:
    server.routes["/page.zip"] = (0.0, 200, b"<html>moved</html>")
    with pytest.raises(DataFormatError, match="not a valid zip"):
        download_uci(server.url("/page.zip"), tmp_path / "cache", 5.0)


# --- synthetic fallback --------------------------------------------------------------------


def test_synthetic_only_when_allowed_and_said_loudly(
    tmp_path: Path, server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = DataSettings(
        url=server.url("/missing.zip"),
        cache_dir=str(tmp_path / "cache"),
        allow_synthetic=True,
        synthetic_patients=150,
        synthetic_seed=3,
    )
    with caplog.at_level(logging.WARNING):
        loaded, provenance = load_encounters(settings)
    assert provenance.source == "synthetic"
    assert provenance.location == "synthetic(patients=150, seed=3)"
    assert provenance.sha256 == frame_sha256(loaded)
    assert provenance.patients == 150
    warning = caplog.text
    assert "SYNTHETIC DATA" in warning and "HTTP 404" in warning
    assert "--data PATH" in warning and "READMISSION_DATA" in warning
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and len(warnings[0].splitlines()) >= 4


def test_no_data_and_no_synthetic_tells_how_to_provide_data(
    tmp_path: Path, server: LoopbackServer
) -> None:
    settings = DataSettings(url=server.url("/missing.zip"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataUnavailableError) as caught:
        load_encounters(settings)
    message = str(caught.value)
    assert "HTTP 404" in message
    assert "--data PATH" in message and "READMISSION_DATA" in message
    assert "never fall back to synthetic" in message


def test_download_disabled_and_no_synthetic_is_unavailable() -> None:
    with pytest.raises(DataUnavailableError, match="downloading is disabled"):
        load_encounters(DataSettings(download=False))


# --- the real development file -------------------------------------------------------------


def test_real_development_file(real_data: Path) -> None:
    frame, provenance = load_encounters(DataSettings(path=str(real_data), download=False))
    assert frame.shape == (REAL_DEV_ROWS, len(uci.COLUMNS))
    assert provenance.rows == REAL_DEV_ROWS
    assert provenance.patients == REAL_DEV_PATIENTS
    assert provenance.source == "file"
    assert list(frame.columns) == list(uci.COLUMNS)
    assert (frame["max_glu_serum"] == "None").sum() > REAL_DEV_ROWS / 2
    assert (frame["A1Cresult"] == "None").any()
    assert not frame.isna().any().any()
    assert frame[list(uci.INTEGER_COLUMNS)].dtypes.eq("int64").all()

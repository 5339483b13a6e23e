"""What the CLI refuses up front about a store file, and what it leaves to SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlops_platform.infra.store_health import sqlite_file_problem


def _database(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    connection.close()
    return path


def test_an_overwritten_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"GARBAGE" * 1000)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert "not a SQLite database" in (sqlite_file_problem(garbage) or "")
    assert "directory" in (sqlite_file_problem(folder) or "")


def test_a_file_sqlite_may_still_make_whole_is_not_refused(tmp_path: Path) -> None:
    """A review's false positives: a checkpoint writes page 1 (with the new page count) before
    the pages it counts, so a crash or a concurrent reader sees a file shorter than its header
    says, which SQLite repairs from its write-ahead log. Only SQLite judges that."""
    healthy = _database(tmp_path / "healthy.db")
    assert sqlite_file_problem(healthy) is None
    raw = bytearray(healthy.read_bytes())
    raw[28:32] = (int.from_bytes(raw[28:32], "big") + 40).to_bytes(4, "big")
    mid_checkpoint = tmp_path / "mid.db"
    mid_checkpoint.write_bytes(bytes(raw))
    assert sqlite_file_problem(mid_checkpoint) is None
    assert sqlite_file_problem(tmp_path / "missing.db") is None
    (tmp_path / "empty.db").write_bytes(b"")
    assert sqlite_file_problem(tmp_path / "empty.db") is None  # SQLite makes a new database
    (tmp_path / "short.db").write_bytes(b"SQLite for")
    assert sqlite_file_problem(tmp_path / "short.db") is None  # too short to judge

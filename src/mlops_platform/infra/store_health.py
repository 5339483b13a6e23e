"""The health of this state's local SQLite stores (the audit trails, ZenML's, MLflow's): which
files they are, what the CLI refuses up front about one, and what SQLite itself says of it."""

from __future__ import annotations

import os
from pathlib import Path

from mlops_platform.workspace import client_config_dir, mlflow_tracking_uri, sqlite_path, state_dir


def _zenml_store_url() -> str | None:
    """The store URL this process's ZenML client uses: ``ZENML_STORE_URL``, else the one its
    config file (``$ZENML_CONFIG_PATH/config.yaml``) names, else the config folder's default."""
    if os.environ.get("ZENML_STORE_URL"):
        return os.environ["ZENML_STORE_URL"]
    folder = Path(os.environ.get("ZENML_CONFIG_PATH") or client_config_dir(state_dir(), os.environ))
    try:
        import yaml

        configured = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
        url = (configured.get("store") or {}).get("url")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        url = None
    return url or f"sqlite:///{folder / 'local_stores' / 'default_zen_store' / 'zenml.db'}"


def audit_trail_files() -> set[Path]:
    """This state's local audit trail file and the one ``MLOPS_AUDIT_DB_URL`` names, if SQLite."""
    found = {(state_dir() / "audit.db").resolve()}
    named = sqlite_path(os.environ.get("MLOPS_AUDIT_DB_URL") or "")
    return found | ({named} if named else set())


def store_files() -> set[Path]:
    """The SQLite files of this state's stores: the audit trails (`audit_trail_files`), this
    process's ZenML store and the project's MLflow store, resolved."""
    found = {sqlite_path(mlflow_tracking_uri()), sqlite_path(_zenml_store_url() or "")}
    return {path for path in found if path is not None} | audit_trail_files()


_SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the SQLite database it should be, judged without opening it: a
    directory in its place, or a file whose first bytes are not SQLite's (overwritten). None
    when it may be one: missing or empty (SQLite makes a new database), or too short to judge.

    Nothing subtler is judged here: a file shorter than its header's page count is what a
    checkpoint or a commit that grows the file leaves for a moment, and after a crash SQLite
    repairs it from its journal or write-ahead log when it next opens it. SQLite's own errors
    on a damaged file are reported where a command meets them (`mlops_cli.errors`)."""
    if path.is_dir():
        return "a directory is where the database file should be"
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    if len(header) < len(_SQLITE_MAGIC) or header == _SQLITE_MAGIC:
        return None
    return "it is not a SQLite database (its first bytes are not SQLite's)"


def damaged_local_stores() -> dict[Path, str]:
    """Each of this state's SQLite stores (the audit trails, ZenML's, MLflow's) that
    `sqlite_file_problem` refuses, with why: checked before a command opens them, so that an
    overwritten file stops it at once with its name (MLflow otherwise retries for minutes)."""
    found = {path: sqlite_file_problem(path) for path in sorted(store_files())}
    return {path: problem for path, problem in found.items() if problem is not None}


def stores_sqlite_refuses() -> dict[Path, str]:
    """Each of this state's SQLite stores that SQLite itself finds damaged (a read-only
    ``PRAGMA quick_check``), with its answer: for naming the file after a command met SQLite's
    error on it, never to refuse a command up front (a file can look short between writes)."""
    import sqlite3

    found = {}
    for path in sorted(store_files()):
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
            try:
                answer = str(connection.execute("PRAGMA quick_check(1)").fetchone()[0])
            finally:
                connection.close()
        except sqlite3.Error as error:
            answer = str(error)
        if answer != "ok":
            found[path] = f"SQLite: {answer}"
    return found

"""The health of this state's local SQLite stores (the audit trails, ZenML's, MLflow's): which
files they are, what the CLI refuses up front about one, and what SQLite itself says of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _own_zenml_config() -> Path | None:
    """This state's own ZenML config folder, when this process uses it (no ``ZENML_STORE_URL``
    and ``ZENML_CONFIG_PATH``, if set, inside the state directory); None otherwise: a server's
    or the user's own configuration is not this state's to judge."""
    if os.environ.get("ZENML_STORE_URL"):
        return None
    folder = Path(os.environ.get("ZENML_CONFIG_PATH") or client_config_dir(state_dir(), os.environ))
    return folder if _inside(folder, state_dir()) else None


def _read_only(path: Path) -> Any:
    import sqlite3

    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)


def _active_stack_paths(zenml_db: Path, config: dict[str, Any]) -> dict[str, str]:
    """The local paths the active stack of ``zenml_db`` names, read without ZenML: its local
    artifact store's ``path`` (when one is set) and its MLflow ``tracking_uri``, plus where its
    newest artifact was stored. Empty when the database cannot be read."""
    import base64
    import json
    import sqlite3

    stack_id = str(config.get("active_stack_id") or "").replace("-", "")
    found: dict[str, str] = {}
    try:
        connection = _read_only(zenml_db)
        try:
            rows = connection.execute(
                "SELECT c.type, c.flavor, c.configuration FROM stack_component c "
                "JOIN stack_composition s ON s.component_id = c.id WHERE s.stack_id = ?",
                (stack_id,),
            ).fetchall()
            newest = connection.execute(
                "SELECT uri FROM artifact_version ORDER BY created DESC LIMIT 1"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return found
    for kind, flavor, raw in rows:
        try:
            settings = json.loads(base64.b64decode(raw or b"e30=")) or {}
        except (ValueError, TypeError):
            continue
        if kind == "artifact_store" and flavor == "local" and settings.get("path"):
            found["the local artifact store"] = str(settings["path"])
        if kind == "experiment_tracker" and flavor == "mlflow" and settings.get("tracking_uri"):
            found["the MLflow tracking store"] = str(settings["tracking_uri"])
    if newest and str(newest[0]).startswith("/"):
        found["the stored artifacts"] = str(newest[0])
    return found


def _local_path(uri: str) -> Path | None:
    """The file or folder a local SQLite URL, ``file:`` URI or plain path names; None for any
    other store (a server, a bucket)."""
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//")).resolve()
    if uri.startswith("/"):
        return Path(uri).resolve()
    return sqlite_path(uri)


def _own_zenml_store() -> tuple[Path, dict[str, Any]] | None:
    """This state's own ZenML SQLite database and client config (`_own_zenml_config`), read
    without ZenML; None when this process uses another store or the config is not there."""
    folder = _own_zenml_config()
    if folder is None:
        return None
    try:
        import yaml

        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
        url = str((config.get("store") or {}).get("url") or "")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    database = sqlite_path(url) if url else None
    return None if database is None else (database, config)


def stores_outside_state() -> dict[str, Path]:
    """Each store this state's own ZenML configuration names outside the state directory (its
    ZenML database, the active stack's local artifact store, stored artifacts and MLflow
    store), by what it is: what a state directory moved (``mv``) or copied (``cp -a``) keeps,
    because ZenML records absolute paths. Read without ZenML, before it creates anything."""
    own = _own_zenml_store()
    if own is None:
        return {}
    database, config = own
    root = state_dir()
    found = {} if _inside(database, root) else {"the ZenML store": database}
    if not found and database.is_file():
        for what, uri in _active_stack_paths(database, config).items():
            path = _local_path(uri)
            if path is not None and not _inside(path, root):
                found[what] = path
    return found


def _trail_holds_records() -> bool:
    """Whether a local audit trail file of this state (`audit_trail_files`) holds a record
    about a model version."""
    import sqlite3

    for path in sorted(audit_trail_files()):
        if not path.is_file() or not _inside(path, state_dir()):
            continue
        try:
            connection = _read_only(path)
            try:
                if connection.execute(
                    "SELECT 1 FROM audit_events WHERE model_version IS NOT NULL LIMIT 1"
                ).fetchone():
                    return True
            finally:
                connection.close()
        except sqlite3.Error:
            continue
    return False


def missing_mlflow_store() -> Path | None:
    """The local MLflow store of this state's active stack (its tracker's ``tracking_uri``, a
    SQLite file or folder under the state directory), when it is missing although the state's
    audit trail holds records about a model version: each moved an anchor in that store
    (`trust.events.anchor_after_event`, which creates it), so it existed, and MLflow would
    silently create an empty one in its place. None when it is there, never was, or this
    process uses another ZenML store or a stack without a local MLflow store."""
    own = _own_zenml_store()
    if own is None or not own[0].is_file():
        return None
    uri = _active_stack_paths(*own).get("the MLflow tracking store")
    store = _local_path(uri) if uri else None
    if store is None or not _inside(store, state_dir()) or store.exists():
        return None
    return store if _trail_holds_records() else None


def unreachable_zenml_server() -> str | None:
    """Why the ZenML server ``ZENML_STORE_URL`` names cannot be reached, judged in seconds
    before ZenML tries (it retries for about half a minute, then fails with a traceback): its
    host does not resolve, or nothing accepts a connection at its port. None when it answers,
    the URL is not an HTTP(S) server's, or a proxy carries the request (not judged here)."""
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    url = (os.environ.get("ZENML_STORE_URL") or "").strip()
    try:
        parsed = urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError as error:
        return f"it is not a valid URL ({error})"
    if parsed.scheme not in ("http", "https") or not host:
        return None
    if urllib.request.getproxies().get(parsed.scheme) and not urllib.request.proxy_bypass(host):
        return None
    port = port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        return f"its host {host} does not resolve ({getattr(error, 'strerror', None) or error})"
    last: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        try:
            with socket.socket(family, kind, protocol) as probe:
                probe.settimeout(5)
                probe.connect(address)
            return None
        except OSError as error:
            last = error
    reason = (last.strerror or type(last).__name__) if last is not None else "no address"
    return f"nothing accepts a connection at {host}:{port} ({reason})"

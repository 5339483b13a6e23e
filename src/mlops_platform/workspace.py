"""Where the project keeps its local state, so a demo never touches the user's global ZenML setup.

By default ZenML's config and SQLite store, the MLflow tracking store, downloaded data and results live
under `<checkout>/.mlops/` (git-ignored). Set `MLOPS_STATE_DIR` to move them, or `ZENML_CONFIG_PATH` /
`ZENML_STORE_URL` to use your own ZenML client config or server instead (see docs/PLATFORM_GUIDE.md).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOT = PROJECT_ROOT / "src"


def state_dir() -> Path:
    """Directory holding all local, git-ignored project state."""
    return Path(os.environ.get("MLOPS_STATE_DIR") or PROJECT_ROOT / ".mlops").resolve()


def mlflow_tracking_uri() -> str:
    """The local MLflow tracking store (a SQLite file under the state directory)."""
    return f"sqlite:///{state_dir() / 'mlflow' / 'mlflow.db'}"


def client_config_dir(root: Path, environ: Mapping[str, str]) -> Path:
    """The ZenML client config folder: the project's own (`<state>/zenml`, which holds the local
    store and stack), or, while ``ZENML_STORE_URL`` names any other store (a server, another
    database), one folder per store.

    ZenML writes the store it connects to into its config file: a command run once with another
    store's URL would otherwise replace the project's local store there, and every later command
    without the variable would go to that store.
    """
    url = (environ.get("ZENML_STORE_URL") or "").strip()
    own = root / "zenml"
    if not url or url == f"sqlite:///{own / 'local_stores' / 'default_zen_store' / 'zenml.db'}":
        return own
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return root / "zenml-stores" / digest


def activate() -> None:
    """Point ZenML at the project's own state unless the user chose another config or server.

    Must run before `zenml` is imported, because ZenML reads these variables once.
    """
    root = state_dir()
    os.environ.setdefault("ZENML_CONFIG_PATH", str(client_config_dir(root, os.environ)))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("ZENML_CUSTOM_SOURCE_ROOT", str(SOURCE_ROOT))
    if not sys.stdout.isatty():  # a pipe, a file, CI: plain log lines, no ANSI colour codes
        os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")
    relax_local_store_syncs()


_relaxed: list[bool] = []


def local_store_files() -> set[Path]:
    """The SQLite files of this process's local ZenML store (the one ``ZENML_STORE_URL`` names,
    else the client config's own) and of the project's MLflow store, resolved; never the audit
    trail's, even if its URL names one of them."""
    found = {
        Path(mlflow_tracking_uri().removeprefix("sqlite:///")),
        Path(os.environ.get("ZENML_CONFIG_PATH") or client_config_dir(state_dir(), os.environ))
        / "local_stores"
        / "default_zen_store"
        / "zenml.db",
    }
    store_url = os.environ.get("ZENML_STORE_URL") or ""
    if store_url.startswith("sqlite:///"):
        found.add(Path(store_url.removeprefix("sqlite:///")))
    audit_url = os.environ.get("MLOPS_AUDIT_DB_URL") or f"sqlite:///{state_dir() / 'audit.db'}"
    audit = Path(audit_url.removeprefix("sqlite:///")).resolve()
    return {path.resolve() for path in found} - {audit}


_SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the SQLite database it should be (None: it can, or it does not
    exist yet, or it is empty, which SQLite makes into a new database): a directory in its place,
    another file format, or a file shorter than the page count its header states (truncated)."""
    if path.is_dir():
        return "a directory is where the database file should be"
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    if not header:
        return None
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        return "it is not a SQLite database (its first bytes are not SQLite's)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count holds while its "version valid for" equals the change counter.
    counted = header[24:28] == header[92:96]
    if page_size < 512 or size % page_size or (counted and size < pages * page_size):
        # A writer in another process may be between extending the file and its header: SQLite
        # itself, under its locks, has the last word on whether the file is whole.
        if _sqlite_says_whole(path):
            return None
        return (
            f"it is truncated ({size:,} bytes; its header states {pages:,} pages of {page_size:,})"
        )
    return None


def _sqlite_says_whole(path: Path) -> bool:
    import sqlite3

    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
        finally:
            connection.close()
    except sqlite3.Error:
        return False


def damaged_local_stores() -> dict[Path, str]:
    """Each of this state's SQLite stores (the audit trail's local file, ZenML's, MLflow's) that
    `sqlite_file_problem` refuses, with why: checked before a command opens them, so that a
    damaged file stops it at once with its name (MLflow otherwise retries for minutes)."""
    audit_url = os.environ.get("MLOPS_AUDIT_DB_URL") or f"sqlite:///{state_dir() / 'audit.db'}"
    paths = set(local_store_files())
    if audit_url.startswith("sqlite:///"):
        paths.add(Path(audit_url.removeprefix("sqlite:///")).resolve())
    found = {path: sqlite_file_problem(path) for path in sorted(paths)}
    return {path: problem for path, problem in found.items() if problem is not None}


def relax_local_store_syncs() -> None:
    """Let commits to the local SQLite stores of ZenML and MLflow return before the disk has them,
    in this process: a write-ahead log and `synchronous=NORMAL` on each new connection.

    SQLite's default waits for the disk on every commit: about 1 ms on a quiet machine here and
    4-6 ms on a busy one, and a demo makes some 2,200 commits to ZenML's store (13.8 s spent in
    them under load, 0.35 s with this). With a write-ahead log and NORMAL a commit survives this
    process crashing; a power cut can lose the last commits but never corrupts the file. Only
    the files `local_store_files` names change, compared by path when each connection opens:
    the audit trail and any other database keep SQLite's full sync, so a recorded governance
    event is on disk before the command goes on, and a store whose last stage move a power cut
    lost disagrees with the trail, which `mlops check` names and `mlops audit reconcile`
    repairs. Stores on a database server are untouched. A file another process holds in another
    journal mode keeps it (nothing fails).
    """
    if _relaxed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _relax_sqlite)
    _relaxed.append(True)


def _relax_sqlite(connection: object, _record: object) -> None:
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return
    main = next(
        (row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"), ""
    )
    if not main or Path(main).resolve() not in local_store_files():
        return
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError:  # busy or read-only: the file keeps its own settings
        return


def use_project_source_root() -> None:
    """Resolve step and flavor sources against `src/`, whatever the main module is.

    ZenML otherwise derives the source root from `__main__`, which notebooks and pytest-xdist
    workers do not have as a file. `activate()` sets the same through the environment for code
    that imports ZenML afterwards.
    """
    from zenml.utils import source_utils

    source_utils.set_custom_source_root(str(SOURCE_ROOT))


def reset_zenml_clients() -> None:
    """Forget ZenML's cached config and client, so a changed ZENML_CONFIG_PATH takes effect in-process."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration

    GlobalConfiguration._reset_instance()
    Client._reset_instance()

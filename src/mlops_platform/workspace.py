"""Where the project keeps its local state, so a demo never touches the user's global ZenML setup.

By default ZenML's config and SQLite store, the MLflow tracking store, downloaded data and results live
under `<checkout>/.mlops/` (git-ignored). Set `MLOPS_STATE_DIR` to keep them elsewhere (before
`mlops setup`: ZenML records absolute paths, so a state directory cannot be moved afterwards), or
`ZENML_CONFIG_PATH` / `ZENML_STORE_URL` to use your own ZenML client config or server instead (see
docs/PLATFORM_GUIDE.md).
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


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names, however it is spelled (``sqlite:///``,
    ``sqlite+pysqlite:///``, with query options), resolved; None for any other database, an
    in-memory one or a ``file:`` URI."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database).resolve()


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

"""The project's own ZenML server on loopback, with one account per demo role.

`mlops server start` runs an OSS ZenML server as a local daemon (its database and config under
`<state>/server/`), on a free loopback port, and creates one service account per role with its own
API key, stored under `<state>/server/accounts/` (mode 0600). `mlops --as ROLE ...` then points the
ZenML client at the server with that role's key: holding the key is the authentication, and the
identity the platform records is the account the server says the key belongs to.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlops_platform.workspace import state_dir

SERVER_DIR = "server"
RECORD = "server.json"


def server_dir() -> Path:
    return state_dir() / SERVER_DIR


def project_server_url() -> str | None:
    """The URL of the project's loopback server if `mlops server start` recorded one."""
    path = server_dir() / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    url = record.get("url") if isinstance(record, dict) else None
    return str(url) if url else None

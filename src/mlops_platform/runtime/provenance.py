"""Which code produced a run: git commit, dirty flag and branch, recorded on every run and model."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_platform.workspace import PROJECT_ROOT

UNKNOWN = "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version(root: Path = PROJECT_ROOT) -> dict[str, str | bool]:
    """Git commit of the checkout; CI may pin it with GITHUB_SHA when the checkout is shallow."""
    sha = _git(["rev-parse", "HEAD"], root) or os.environ.get("GITHUB_SHA") or UNKNOWN
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], root) or UNKNOWN
    return {"git_sha": sha, "git_dirty": bool(status), "git_branch": branch}


def source_tree_clean(root: Path = PROJECT_ROOT) -> bool:
    """True when git knows the checkout's code and configuration exactly: no change to a tracked
    file and no untracked file under src/ or configs/ (one could be imported or read)."""
    status = _git(["status", "--porcelain", "--untracked-files=all", "--", "src", "configs"], root)
    tracked = _git(["status", "--porcelain", "--untracked-files=no"], root)
    head = _git(["rev-parse", "HEAD"], root)
    return bool(head) and status == "" and tracked == ""


def data_file_sha256(parameters: Mapping[str, Any]) -> str:
    """SHA-256 of the bytes of the data file a run is given (its ``data.path``), or "".

    Computed by the platform before the run starts, so that pinning a version's evaluation data
    does not rest on the hash the data-science loader reports. "" when the run reads no local
    file (a download, synthetic data, or a path that is not a file: the loader then fails).
    """
    data = parameters.get("data")
    path = data.get("path") if isinstance(data, Mapping) else getattr(data, "path", None)
    if not path or not Path(path).is_file():
        return ""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Which code produced a run: git commit, dirty flag and branch, recorded on every run and model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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

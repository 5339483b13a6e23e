"""Who is acting, and how much we know about it.

Locally an actor is only asserted (`--actor`, else the OS user). In GitHub Actions the actor comes from
`GITHUB_ACTOR` with a link to the workflow run, which GitHub itself authenticated.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Actor:
    name: str
    source: str  # "asserted" (local flag or OS user) or "github-actions"
    run_url: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def github_run_url() -> str | None:
    server, repo, run = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def current_actor(explicit: str | None = None) -> Actor:
    """`--actor` wins; otherwise GitHub's authenticated actor; otherwise the OS user."""
    if explicit:
        return Actor(explicit.strip(), "asserted", github_run_url())
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_ACTOR"):
        return Actor(os.environ["GITHUB_ACTOR"], "github-actions", github_run_url())
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user, "asserted")

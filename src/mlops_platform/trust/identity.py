"""Who is acting, and how much we know about it.

Locally an actor is only asserted (`--actor`, else the OS user). In GitHub Actions the actor comes from
`GITHUB_ACTOR` with a link to the workflow run, which GitHub itself authenticated.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Controls, invisible formatting, separators, surrogates, private-use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class IdentityError(ValueError):
    """A name given for the acting person cannot stand for anyone (blank, invisible characters)."""


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


def check_name(name: str, what: str = "--actor") -> str:
    """``name`` trimmed; a blank name or one with control or invisible characters is refused."""
    if not name.strip():
        raise IdentityError(
            f"{what} is blank; name the person responsible (their login). A blank name is "
            "never replaced by the OS user."
        )
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES}
    )
    if hidden:
        raise IdentityError(
            f"{what} {name!r} contains control or invisible characters ({', '.join(hidden)}); "
            "type the name in plain letters"
        )
    return name.strip()


def current_actor(explicit: str | None = None) -> Actor:
    """`--actor` wins (even blank, which is refused); else GitHub's actor; else the OS user."""
    if explicit is not None:
        return Actor(check_name(explicit), "asserted", github_run_url())
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_ACTOR"):
        return Actor(os.environ["GITHUB_ACTOR"], "github-actions", github_run_url())
    return Actor(os_user(), "asserted")


def os_user() -> str:
    """The operating-system account running this process (recorded, never trusted)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def identity_details(
    name: str, source: str, evidence: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Who acted, as audit records store it: the name, its source, the OS user beside it, and
    the evidence the source rests on."""
    return {"name": name, "source": source, "os_user": os_user(), "evidence": dict(evidence or {})}

"""What must hold before a governed run starts in staging or production (pure decisions).

- `MLOPS_CONFIG_DIR` (another configs folder) is refused: it would replace every policy;
- the stack registered for the environment (`configs/stacks/<env>.yaml`) must be the active one,
  and exactly what its file describes (`infra.stacks.registered_stack_differences`);
- the stack must have the MLflow experiment tracker;
- the git tree must be clean, so the recorded commit is the code that ran.

The local trust rule of `mlops_platform.trust.keys` applies: where the environment's audit trail
is a SQLite file in the local state directory (judged from the repository's own configs, never
from an override folder), one person owns every store and key anyway, and only the local rules
apply. A real staging or production (trail elsewhere) gets every rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_platform.config import ConfigError, load_layered

GOVERNED_ENVIRONMENTS: tuple[str, ...] = ("staging", "production")
# Configuration files whose merged content is fingerprinted in every run.
FINGERPRINTED_CONFIGS: tuple[str, ...] = (
    "policy",
    "platform",
    "approvals",
    "monitoring",
    "training",
)


class PreconditionFailed(ConfigError):
    """A staging or production run was refused before anything ran."""


@dataclass(frozen=True)
class RunSetting:
    """What the runner observed about the launch, for `precondition_problems`."""

    env: str
    local_trust: bool
    config_override: str | None
    active_stack: str
    expected_stack: str
    has_tracker: bool
    git_dirty: bool
    # How the registered stack differs from its file, one line each (compared only when the
    # active stack is the expected one).
    stack_differences: tuple[str, ...] = ()


def precondition_problems(setting: RunSetting) -> list[str]:
    """Every rule the launch breaks (empty: it may start)."""
    if setting.env not in GOVERNED_ENVIRONMENTS or setting.local_trust:
        return []
    problems = []
    if setting.config_override:
        problems.append(
            f"MLOPS_CONFIG_DIR={setting.config_override} would replace the committed policies; "
            f"{setting.env} runs only with the repository's configs/ (unset the variable)"
        )
    if setting.active_stack != setting.expected_stack:
        problems.append(
            f"the active stack is {setting.active_stack!r}, but {setting.env} runs only on its "
            f"registered stack {setting.expected_stack!r} (run `mlops stack setup --env "
            f"{setting.env}` and activate it)"
        )
    elif setting.stack_differences:
        problems.append(
            f"the registered stack {setting.expected_stack!r} is not the one "
            f"configs/stacks/{setting.env}.yaml describes: "
            + "; ".join(setting.stack_differences)
            + f" (an account that may write puts the file's back with `mlops stack setup --env "
            f"{setting.env}`, after finding out who changed it)"
        )
    if not setting.has_tracker:
        problems.append(
            f"the active stack has no MLflow experiment tracker; {setting.env} runs must be tracked"
        )
    if setting.git_dirty:
        problems.append(
            "the git tree has uncommitted changes, so the recorded commit is not the code that "
            "would run; commit or stash them"
        )
    return problems


def config_fingerprint(
    env: str, directory: Path | None = None, names: Iterable[str] = FINGERPRINTED_CONFIGS
) -> str:
    """SHA-256 of the merged configuration `env` runs with (every name that exists)."""
    merged: dict[str, Any] = {}
    for name in names:
        try:
            merged[name] = load_layered(name, env, directory)
        except ValueError:
            merged[name] = None
    text = json.dumps(merged, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

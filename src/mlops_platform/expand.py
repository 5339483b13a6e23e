"""Expand `${VAR}` in configuration values; an unset variable is an error, never an empty string."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnsetVariableError(ValueError):
    """A configuration value refers to an environment variable that is not set."""


def expand_env(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Recursively replace `${VAR}` in strings of `value` with values from `environ`."""
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise UnsetVariableError(
                f"{where} needs the environment variable {name}, which is not set. "
                f"Export {name} (see docs/PLATFORM_GUIDE.md) and run the command again."
            )
        return environ[name]

    return _VAR.sub(substitute, value)


def unset_variables(value: Any, environ: Mapping[str, str]) -> list[str]:
    """Every `${VAR}` in `value` (at any depth) that `environ` does not set, once each, in order."""
    if isinstance(value, dict):
        found = [name for v in value.values() for name in unset_variables(v, environ)]
    elif isinstance(value, list):
        found = [name for v in value for name in unset_variables(v, environ)]
    elif isinstance(value, str):
        found = [name for name in _VAR.findall(value) if not environ.get(name)]
    else:
        found = []
    return list(dict.fromkeys(found))

"""Layered YAML configuration: ``configs/base/<name>.yaml`` plus ``configs/<env>/<name>.yaml``.

The base file holds every key with its default; an environment file holds only what differs.
Mappings merge key by key at every depth, while lists and scalars in the override replace the
base value, so an override can never leave a half-merged list behind.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ENVIRONMENTS: tuple[str, ...] = ("local", "staging", "production")
CONFIG_DIR_VARIABLE = "MLOPS_CONFIG_DIR"
BASE_LAYER = "base"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable, or names an unknown environment."""


def repository_config_dir() -> Path:
    """The repository's own ``configs/`` folder (what staging and production run with)."""
    return Path(__file__).resolve().parents[2] / "configs"


def config_dir() -> Path:
    """``$MLOPS_CONFIG_DIR`` when set, else the repository's ``configs/`` folder.

    Staging and production runs refuse the override (`mlops_platform.runtime.preconditions`).
    """
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    if override:
        return Path(override)
    return repository_config_dir()


def load_layered(name: str, env: str, directory: Path | None = None) -> dict[str, Any]:
    """Return ``base/<name>.yaml`` deep-merged with ``<env>/<name>.yaml`` (which may be absent)."""
    if env not in ENVIRONMENTS:
        raise ConfigError(
            f"Unknown environment {env!r}; valid environments are {', '.join(ENVIRONMENTS)}."
        )
    root = directory if directory is not None else config_dir()
    base_path = root / BASE_LAYER / f"{name}.yaml"
    if not base_path.is_file():
        raise ConfigError(
            f"Base configuration {base_path} does not exist; every configuration needs a base "
            f"file holding all its keys (set {CONFIG_DIR_VARIABLE} to use another folder)."
        )
    base = _read_mapping(base_path, allow_empty=False)
    override_path = root / env / f"{name}.yaml"
    if not override_path.is_file():
        return base
    return deep_merge(base, _read_mapping(override_path, allow_empty=True))


def layer_files(name: str, env: str, directory: Path | None = None) -> list[Path]:
    """The files `load_layered` reads for ``name`` in ``env``, base first (existing ones only)."""
    root = directory if directory is not None else config_dir()
    paths = (root / BASE_LAYER / f"{name}.yaml", root / env / f"{name}.yaml")
    return [path for path in paths if path.is_file()]


def read_mapping(path: Path) -> dict[str, Any]:
    """One configuration file as a mapping (an empty file is an empty mapping)."""
    return _read_mapping(path, allow_empty=True)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: nested mappings merge, anything else replaces."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _read_mapping(path: Path, *, allow_empty: bool) -> dict[str, Any]:
    """Parse one YAML file that must hold a mapping; an empty override file means no overrides."""
    try:
        content = copy.deepcopy(_parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"Cannot read configuration {path}: {error}") from error
    if content is None and allow_empty:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"Configuration {path} must hold a mapping of keys to values at its top level; "
            f"found {type(content).__name__}."
        )
    return content


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (C or pure Python) that refuses a key given twice in one mapping.

    PyYAML keeps the last of two equal keys silently, so a second ``min_roc_auc:`` further down
    a policy file changes the rule while review reads the first. Keys a merge (``<<``) brings in
    may still be overridden, as YAML means them to be."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        self._refuse_repeated_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_repeated_keys(self, node: yaml.Node) -> None:
        """A key twice in ``node``, two merge keys, or a key twice inside what a merge brings in
        (PyYAML flattens merged mappings without constructing them as mappings)."""
        if not isinstance(node, yaml.MappingNode):
            if isinstance(node, yaml.SequenceNode):  # `<<: [*a, *b]`
                for item in node.value:
                    self._refuse_repeated_keys(item)
            return
        seen: dict[Any, yaml.Node] = {}
        merges = [key for key, _ in node.value if key.tag == "tag:yaml.org,2002:merge"]
        if len(merges) > 1:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found {len(merges)} merge keys (<<); give one, with a list of mappings",
                merges[1].start_mark,
            )
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._refuse_repeated_keys(value_node)
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: the base constructor refuses it in its own words
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} a second time (first at line "
                    f"{seen[key].start_mark.line + 1}); each key may appear once",
                    key_node.start_mark,
                )
            seen[key] = key_node


# The file is read every time (so an edit is seen at once); only parsing the same text is reused.


def parse_yaml(text: str) -> Any:
    """YAML text as data, read strictly: safe types only, and no key given twice in a mapping
    (`_Loader`). Every configuration, stack and deployment file is read with it."""
    return copy.deepcopy(_parse_yaml(text))


@functools.lru_cache(maxsize=256)
def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a safe loader (above)


def validation_issues(error: Any, root: str = "") -> list[str]:
    """Each problem of a pydantic ``ValidationError`` as one line, ``where: why (got value)``:
    the setting's dotted path (``root`` when the whole object is at fault), pydantic's message
    without its ``Value error,`` prefix, and the value given when it is one setting (never a
    whole section, which would print the merged file)."""
    lines = []
    for issue in error.errors():
        where = ".".join(str(part) for part in issue["loc"]) or root
        why = str(issue["msg"]).removeprefix("Value error, ")
        given = issue.get("input", ...)
        got = "" if given is ... or isinstance(given, Mapping | list) else f" (got {given!r})"
        lines.append(f"{where}: {why}{got}" if where else f"{why}{got}")
    return lines

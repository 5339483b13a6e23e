"""Environment stacks from files, one level above `stacks`: the server a stack must live on, the
ZenML integrations its flavors need, and the documented variables and secrets it reads.

A stack file may say `server: {required: true}` (staging, production): such a stack is registered
only on a ZenML server, never in a local SQLite store, so a half-configured shell cannot create a
"production" stack on someone's laptop. `configs/stacks/variables.yaml` documents, with an example
value, every `${VAR}` and every `{{secret.key}}` the stack files use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_platform.config import config_dir
from mlops_platform.expand import expand_env
from mlops_platform.infra.code_repository import (
    TOKEN_VARIABLE,
    github_repository_from_env,
    register_github_repository,
)
from mlops_platform.infra.stacks import (
    StackFileError,
    StackSpec,
    parse_stack_file,
    read_stack_yaml,
    register_stack,
    stack_file,
)

VARIABLES_FILE = "variables.yaml"
REST_STORE = "rest"
# The code repository integration every remote stack uses (see mlops_platform.infra.code_repository).
CODE_REPOSITORY_INTEGRATION = "github"
BUILT_IN = "built-in"
_SECRET_REFERENCE = re.compile(r"^\{\{\s*([^.\s]+)\.(\S+?)\s*\}\}$")


class StackServerError(StackFileError):
    """A stack that must live on a ZenML server was about to be registered in a local store."""


@dataclass(frozen=True)
class StackVariable:
    name: str
    description: str
    example: str


@dataclass(frozen=True)
class StackSetup:
    """What `mlops stack setup` did: the active stack, its components, the code repository."""

    env: str
    stack: str
    components: dict[str, str] = field(default_factory=dict)
    code_repository: str = "skipped"

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "stack": self.stack,
            "components": self.components,
            "code_repository": self.code_repository,
        }


class _RecordingEnviron(dict[str, str]):
    """Answers every lookup with a placeholder and remembers the names asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        self.names.add(key)
        return "placeholder"

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        return "placeholder"


def requires_server(path: Path) -> bool:
    """Whether the stack file says it must be registered on a ZenML server."""
    raw = read_stack_yaml(path) or {}
    server = raw.get("server") or {}
    if not isinstance(server, dict) or not isinstance(server.get("required", False), bool):
        raise StackFileError(f"{path}: 'server' must be a mapping like {{required: true}}.")
    return bool(server.get("required", False))


def check_server(stack: str, store_type: str, store_url: str) -> None:
    """Fail unless the ZenML client talks to a server (a REST store)."""
    if store_type != REST_STORE:
        raise StackServerError(
            f"Stack {stack} must be registered on a ZenML server, but this client uses a local "
            f"{store_type} store ({store_url}). Set ZENML_STORE_URL and ZENML_STORE_API_KEY "
            "(CI, a service account) or run `zenml login <server-url>`, then run the command again."
        )


def check_connected_to_server(stack: str) -> None:
    from zenml.config.global_config import GlobalConfiguration

    store = GlobalConfiguration().store_configuration
    check_server(stack, str(store.type.value), store.url)


def referenced_variables(path: Path) -> set[str]:
    """Names of the environment variables the stack file's configuration values read."""
    raw = read_stack_yaml(path) or {}
    recorder = _RecordingEnviron()
    for component_type, spec in (raw.get("components") or {}).items():
        configuration = (spec or {}).get("configuration") or {}
        expand_env(configuration, recorder, f"{path.name}:{component_type}")
    return recorder.names


def referenced_secrets(spec: StackSpec) -> dict[str, set[str]]:
    """ZenML secrets (name -> keys) referenced as `{{name.key}}` in the component configurations."""
    found: dict[str, set[str]] = {}
    for component in spec.components:
        for value in component.configuration.values():
            match = _SECRET_REFERENCE.match(value) if isinstance(value, str) else None
            if match:
                found.setdefault(match.group(1), set()).add(match.group(2))
    return found


def load_variables(directory: Path | None = None) -> dict[str, StackVariable]:
    """The documented stack variables of `configs/stacks/variables.yaml`."""
    path = (directory or config_dir()) / "stacks" / VARIABLES_FILE
    raw = read_stack_yaml(path) or {}
    variables = raw.get("variables") or {}
    try:
        return {
            name: StackVariable(name, str(entry["description"]), str(entry["example"]))
            for name, entry in variables.items()
        }
    except (KeyError, TypeError) as error:
        raise StackFileError(
            f"{path}: every variable needs a 'description' and an 'example' ({error})."
        ) from error


def load_documented_secrets(directory: Path | None = None) -> dict[str, set[str]]:
    """The documented ZenML secrets (name -> keys) of `configs/stacks/variables.yaml`."""
    path = (directory or config_dir()) / "stacks" / VARIABLES_FILE
    raw = read_stack_yaml(path) or {}
    return {
        name: set(entry.get("keys") or ()) for name, entry in (raw.get("secrets") or {}).items()
    }


def example_environment(directory: Path | None = None) -> dict[str, str]:
    """Every documented variable set to its example value (for validation and docs)."""
    return {name: v.example for name, v in load_variables(directory).items()}


def required_integrations(spec: StackSpec) -> list[str]:
    """ZenML integrations providing the stack's flavors, as the ZenML store knows them."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    names = set()
    for component in spec.components:
        try:
            flavor = client.get_flavor_by_name_and_type(
                name=component.flavor,
                component_type=StackComponentType(component.component_type),
            )
        except KeyError as error:
            raise StackFileError(
                f"Stack {spec.name}: ZenML knows no {component.component_type} flavor "
                f"'{component.flavor}'. Run `zenml stack-component flavor list` to see the flavors."
            ) from error
        if flavor.integration and flavor.integration != BUILT_IN:
            names.add(flavor.integration)
    return sorted(names)


def integration_requirements(integrations: Iterable[str]) -> list[str]:
    """pip requirement specifiers of the given ZenML integrations, deduplicated, in order."""
    from zenml.integrations.registry import integration_registry

    seen: dict[str, None] = {}
    for name in integrations:
        for requirement in integration_registry.select_integration_requirements(name):
            seen.setdefault(requirement, None)
    return list(seen)


def stack_requirements(specs: Iterable[StackSpec]) -> list[str]:
    """What a client needs, beyond the locked dependencies, to register and run these stacks."""
    names: set[str] = {CODE_REPOSITORY_INTEGRATION}
    for spec in specs:
        names.update(required_integrations(spec))
    return integration_requirements(sorted(names))


def setup_stack(env: str, environ: Mapping[str, str]) -> StackSetup:
    """Register (idempotently) and activate ENV's stack, then the GitHub code repository if set.

    ZenML validates every component against its flavor; a rejected configuration is reported
    with the stack file's path.
    """
    path = stack_file(env)
    spec = parse_stack_file(path, dict(environ))
    if requires_server(path):
        check_connected_to_server(spec.name)
    try:
        name = register_stack(spec)
    except StackFileError:
        raise
    except ValueError as error:
        raise StackFileError(f"ZenML rejected a component of {path}: {error}") from error
    found = github_repository_from_env(environ)
    if found is None:
        repository = f"skipped: GITHUB_REPOSITORY or {TOKEN_VARIABLE} is not set"
    else:
        repository = register_github_repository(*found)
    components = {c.component_type: c.name for c in spec.components}
    return StackSetup(env, name, components, repository)


def use_stack(env: str, environ: Mapping[str, str]) -> str:
    """Activate ENV's registered stack if it is what its file describes; writes nothing to the
    store (for jobs whose account may only read, such as the daily governance audit)."""
    from mlops_platform.infra.stacks import use_registered_stack

    path = stack_file(env)
    spec = parse_stack_file(path, dict(environ))
    if requires_server(path):
        check_connected_to_server(spec.name)
    return use_registered_stack(spec, path)

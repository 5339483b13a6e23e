"""Register ZenML stacks from the declarative files in `configs/stacks/`.

A stack file names a stack and, per component type, the component's name, flavor and configuration.
`${VAR}` in configuration values is expanded from the environment; an unset variable is an error, so a
half-configured remote stack is never registered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops_platform.config import config_dir, parse_yaml
from mlops_platform.expand import UnsetVariableError, expand_env, unset_variables
from mlops_platform.workspace import use_project_source_root


class StackFileError(ValueError):
    """A stack file is missing, malformed, or refers to an unset environment variable."""


@dataclass(frozen=True)
class ComponentSpec:
    component_type: str
    name: str
    flavor: str
    configuration: dict[str, Any]


@dataclass(frozen=True)
class StackSpec:
    name: str
    components: tuple[ComponentSpec, ...]


def stack_file(env: str, directory: Path | None = None) -> Path:
    return (directory or config_dir()) / "stacks" / f"{env}.yaml"


def read_stack_yaml(path: Path) -> Any:
    """One stack file's YAML, read strictly (`config.parse_yaml`: no key twice); StackFileError
    (exit 7) when it is not readable YAML."""
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise StackFileError(f"Cannot read stack file {path}: {error}") from error


def parse_stack_file(path: Path, environ: dict[str, str] | None = None) -> StackSpec:
    """Read and expand one stack file into a spec."""
    if not path.is_file():
        raise StackFileError(f"Stack file {path} does not exist.")
    raw = read_stack_yaml(path)
    if not isinstance(raw, dict) or "name" not in raw or "components" not in raw:
        raise StackFileError(f"{path} must be a mapping with the keys 'name' and 'components'.")
    env = dict(os.environ if environ is None else environ)
    missing = unset_variables(
        [(spec or {}).get("configuration") or {} for spec in raw["components"].values()], env
    )
    if missing:
        raise StackFileError(
            f"{path} needs {len(missing)} environment variable(s) that are not set: "
            f"{', '.join(missing)}. Export them all (configs/stacks/variables.yaml documents "
            "each) and run the command again."
        )
    components = []
    for component_type, spec in raw["components"].items():
        if not isinstance(spec, dict) or not {"name", "flavor"} <= spec.keys():
            raise StackFileError(f"{path}: component '{component_type}' needs 'name' and 'flavor'.")
        try:
            configuration = expand_env(
                spec.get("configuration") or {}, env, f"{path.name}:{component_type}"
            )
        except UnsetVariableError as error:
            raise StackFileError(str(error)) from error
        components.append(
            ComponentSpec(component_type, spec["name"], spec["flavor"], configuration)
        )
    return StackSpec(name=raw["name"], components=tuple(components))


def register_stack(spec: StackSpec, activate: bool = True) -> str:
    """Create or update every component and the stack; idempotent. Returns the stack name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    use_project_source_root()
    client = Client()
    component_ids: dict[StackComponentType, Any] = {}
    for component in spec.components:
        kind = StackComponentType(component.component_type)
        try:
            existing = client.get_stack_component(
                kind, component.name, allow_name_prefix_match=False
            )
        except KeyError:
            existing = None
        if existing is None:
            created = client.create_stack_component(
                name=component.name,
                flavor=component.flavor,
                component_type=kind,
                configuration=component.configuration,
            )
            component_ids[kind] = created.id
        else:
            if existing.flavor_name != component.flavor:
                raise StackFileError(
                    f"Component '{component.name}' ({kind.value}) exists with flavor "
                    f"'{existing.flavor_name}', but the stack file asks for '{component.flavor}'. "
                    "Rename it in the stack file or delete the old component."
                )
            if component.configuration and any(
                existing.configuration.get(k) != v for k, v in component.configuration.items()
            ):
                client.update_stack_component(
                    existing.id, kind, configuration=component.configuration
                )
            component_ids[kind] = existing.id
    try:
        stack = client.get_stack(spec.name, allow_name_prefix_match=False)
    except KeyError:
        stack = None
    if stack is None:
        client.create_stack(name=spec.name, components=component_ids)
    else:
        current = {k: [c.id for c in v] for k, v in stack.components.items()}
        wanted = {k: [v] for k, v in component_ids.items()}
        if current != wanted:
            client.update_stack(spec.name, component_updates=component_ids)
    if activate:
        client.activate_stack(spec.name)
    return spec.name


def registered_stack_differences(spec: StackSpec) -> list[str]:
    """How the stack registered under ``spec.name`` differs from its file (empty: it is the
    file's); reads only. Raises `StackFileError` when no such stack is registered."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    try:
        stack = Client().get_stack(spec.name, allow_name_prefix_match=False)
    except KeyError as error:
        raise StackFileError(
            f"Stack {spec.name!r} is not registered on this ZenML store: an account that may "
            "write registers it with `mlops stack setup` (this command only reads)."
        ) from error
    differences = []
    for component in spec.components:
        kind = StackComponentType(component.component_type)
        found = stack.components.get(kind) or []
        if not found:
            differences.append(f"it has no {kind.value}; the file names {component.name!r}")
            continue
        registered = found[0]
        if (registered.name, registered.flavor_name) != (component.name, component.flavor):
            differences.append(
                f"its {kind.value} is {registered.name!r} ({registered.flavor_name}); the file "
                f"names {component.name!r} ({component.flavor})"
            )
        elif any(registered.configuration.get(k) != v for k, v in component.configuration.items()):
            differences.append(
                f"its {kind.value} {registered.name!r} is configured otherwise than the file says"
            )
    return differences


def use_registered_stack(spec: StackSpec, path: Path) -> str:
    """Activate the registered stack of ``spec`` for this client, only if it is the file's;
    nothing on the store is written (the client's own config holds the active stack)."""
    from zenml.client import Client

    differences = registered_stack_differences(spec)
    if differences:
        raise StackFileError(
            f"The registered stack {spec.name!r} is not the one {path} describes: "
            + "; ".join(differences)
            + ". Nothing was changed; an account that may write brings it back with "
            "`mlops stack setup`, after finding out who changed it."
        )
    Client().activate_stack(spec.name)
    return spec.name

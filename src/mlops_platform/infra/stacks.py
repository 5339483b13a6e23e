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


# Shown instead of a value ZenML marks as sensitive (and that is not a `{{secret.key}}` reference).
HIDDEN = "(a hidden value)"
_ABSENT = object()


def _config_class(flavor: str, kind: Any) -> Any:
    """The pydantic configuration class of `flavor` (None when its integration is not installed
    here: the comparison then falls back to the stored keys, which is stricter)."""
    from zenml.client import Client
    from zenml.stack.flavor import Flavor

    try:
        model = Client().get_flavor_by_name_and_type(name=flavor, component_type=kind)
        return Flavor.from_model(model).config_class
    except (KeyError, ImportError, ModuleNotFoundError):
        return None


def _effective_settings(
    registered: dict[str, Any], wanted: dict[str, Any], config_class: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both configurations as every setting's value: the ones stored or named, and, when the
    flavor's class is loadable, each other setting at its default (so a key set explicitly to its
    default is no difference). Keys that are not settings of the flavor are kept as they are."""
    if config_class is None:
        return dict(registered), dict(wanted)
    try:
        full = [
            {
                **config_class(**configuration).model_dump(mode="json"),
                **{k: v for k, v in configuration.items() if k not in config_class.model_fields},
            }
            for configuration in (registered, wanted)
        ]
    except ValueError:  # pydantic's ValidationError: compare what is stored instead
        return dict(registered), dict(wanted)
    return full[0], full[1]


def _shown(value: Any, key: str, config_class: Any) -> str:
    from zenml.utils import secret_utils

    field = (getattr(config_class, "model_fields", None) or {}).get(key)
    if (
        value is not None
        and field is not None
        and secret_utils.is_secret_field(field)
        and not secret_utils.is_secret_reference(value)
    ):
        return HIDDEN
    text = repr(_without_empty(value))
    return text if len(text) <= 200 else text[:197] + "..."


def _without_empty(value: Any) -> Any:
    """`value` without its empty entries (None, {}, []), so a nested setting shows what is set."""
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def _configuration_differences(
    label: str, registered: dict[str, Any], wanted: dict[str, Any], config_class: Any
) -> list[str]:
    """One line per setting whose registered value is not the file's (or, for a setting the
    file does not name, not the flavor's default)."""
    mine, theirs = _effective_settings(registered, wanted, config_class)
    lines = []
    for key in sorted(set(mine) | set(theirs)):
        have, want = mine.get(key, _ABSENT), theirs.get(key, _ABSENT)
        if have == want:
            continue
        stored = "is not set" if have is _ABSENT else f"is {_shown(have, key, config_class)}"
        if key in wanted:
            says = f"the file says {_shown(want, key, config_class)}"
        elif want is _ABSENT:
            says = "the file does not name it"
        else:
            says = f"the file does not name it (the flavor's default: {_shown(want, key, config_class)})"
        lines.append(f"{label}: {key} {stored} in the registered stack; {says}")
    return lines


def _attachment_differences(label: str, registered: Any) -> list[str]:
    """What a stack file never sets, on a component or the stack: environment variables,
    ZenML secrets (both reach every step's environment) and a service connector."""
    lines = []
    environment = registered.environment or {}
    if environment:
        lines.append(
            f"{label}: sets the environment variable(s) {', '.join(sorted(environment))} in the "
            "registered stack; the file sets none"
        )
    if registered.secrets:
        lines.append(
            f"{label}: has {len(registered.secrets)} ZenML secret(s) attached "
            f"({', '.join(str(s) for s in registered.secrets)}) in the registered stack; the file "
            "attaches none"
        )
    connector = getattr(registered, "connector", None)
    if connector is not None:
        lines.append(
            f"{label}: is connected to the service connector {connector.name!r} in the "
            "registered stack; the file names none"
        )
    return lines


def component_differences(registered: Any, component: ComponentSpec) -> list[str]:
    """How one registered component differs from its file entry: flavor, every stored setting
    against the file's (unnamed settings must be absent or at the flavor's default), and the
    environment, secrets and service connector the file never sets."""
    label = f"{component.component_type} {component.name!r}"
    if registered.flavor_name != component.flavor:
        return [
            f"{label}: its flavor is {registered.flavor_name!r} in the registered stack; the "
            f"file says {component.flavor!r}"
        ]
    config_class = _config_class(component.flavor, registered.type)
    return _configuration_differences(
        label, dict(registered.configuration), component.configuration, config_class
    ) + _attachment_differences(label, registered)


def register_stack(spec: StackSpec, activate: bool = True) -> str:
    """Create or update every component and the stack, so the registered stack is exactly the
    file's (what `registered_stack_differences` compares); idempotent. An existing component's
    configuration is replaced by the file's, not merged (settings the file does not name are
    removed, so they fall back to the flavor's defaults), and its environment variables, secrets
    and service connector are removed; components of types the file does not list are taken out
    of the stack (not deleted), as are the stack's own environment variables and secrets.
    Returns the stack name."""
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
            continue
        if existing.flavor_name != component.flavor:
            raise StackFileError(
                f"Component '{component.name}' ({kind.value}) exists with flavor "
                f"'{existing.flavor_name}', but the stack file asks for '{component.flavor}'. "
                "Rename it in the stack file or delete the old component."
            )
        if component_differences(existing, component):
            client.update_stack_component(
                existing.id,
                kind,
                # ZenML merges an update into the stored configuration and drops None values:
                # None for every stored key the file does not name makes it a replacement.
                configuration={
                    **{key: None for key in existing.configuration},
                    **component.configuration,
                },
                environment={key: None for key in existing.environment} or None,
                remove_secrets=list(existing.secrets) or None,
                disconnect=existing.connector is not None,
            )
        component_ids[kind] = existing.id
    try:
        stack = client.get_stack(spec.name, allow_name_prefix_match=False)
    except KeyError:
        stack = None
    if stack is None:
        client.create_stack(name=spec.name, components=component_ids)
    else:
        current = {k: [c.id for c in v] for k, v in stack.components.items() if v}
        wanted = {k: [v] for k, v in component_ids.items()}
        if current != wanted or stack.environment or stack.secrets:
            client.update_stack(
                spec.name,
                component_updates={
                    **{kind: [] for kind in current if kind not in wanted},
                    **component_ids,
                },
                environment={key: None for key in stack.environment} or None,
                remove_secrets=list(stack.secrets) or None,
            )
    if activate:
        client.activate_stack(spec.name)
    return spec.name


def registered_stack_differences(spec: StackSpec) -> list[str]:
    """How the stack registered under ``spec.name`` differs from its file, one human line each
    (empty: it is the file's); reads only. Compared: the set of component types (no extra and
    no missing component), each component's name and flavor, every setting ZenML stores for it
    against the file's (a setting the file does not name must be absent or at the flavor's
    default), and the environment variables, secrets and service connectors of the components
    and the stack (the files set none). Raises `StackFileError` when no such stack is
    registered."""
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
    listed = {StackComponentType(c.component_type) for c in spec.components}
    for kind, found in sorted(stack.components.items(), key=lambda item: item[0].value):
        if found and kind not in listed:
            names = ", ".join(f"{c.name!r} ({c.flavor_name})" for c in found)
            differences.append(f"it has the {kind.value} {names}; the file lists no {kind.value}")
    for component in spec.components:
        kind = StackComponentType(component.component_type)
        found = stack.components.get(kind) or []
        if not found:
            differences.append(f"it has no {kind.value}; the file names {component.name!r}")
            continue
        registered = found[0]
        if len(found) > 1 or registered.name != component.name:
            names = ", ".join(f"{c.name!r} ({c.flavor_name})" for c in found)
            differences.append(
                f"its {kind.value} is {names}; the file names {component.name!r} "
                f"({component.flavor})"
            )
            continue
        differences.extend(component_differences(registered, component))
    differences.extend(_attachment_differences(f"the stack {spec.name!r}", stack))
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
            "`mlops stack setup` (it replaces each component's settings with the file's and "
            "takes out of the stack what the file does not list), after finding out who "
            "changed it."
        )
    Client().activate_stack(spec.name)
    return spec.name

"""Environment stacks as files: their shape, `mlops stack setup`, and ZenML's own validation.

The slow test runs scripts/validate_stacks.sh: in a separate virtual environment that holds the
ZenML integrations the staging and production stacks need, it registers both stacks against a
throwaway local ZenML store, reads every component back, and checks that ZenML refuses a
configuration with an unknown key (so each flavor really validated its configuration). It also
registers the GitHub code repository. The venv is cached under .cache/stack-validation/.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.errors import ExitCode
from mlops_platform.infra.code_repository import GITHUB_SOURCE, TOKEN_SECRET
from mlops_platform.infra.stack_setup import (
    check_server,
    load_documented_secrets,
    load_variables,
    referenced_secrets,
    referenced_variables,
    requires_server,
)
from mlops_platform.infra.stacks import (
    StackFileError,
    StackSpec,
    parse_stack_file,
    registered_stack_differences,
    stack_file,
)
from tests.integration.helpers import invoke, invoke_json

ROOT = Path(__file__).resolve().parents[2]
REMOTE = ("staging", "production")
# What the issue asks of a remote stack: component type -> accepted flavors.
REQUIRED_FLAVORS = {
    "orchestrator": {"kubernetes"},
    "artifact_store": {"s3", "gcp"},
    "experiment_tracker": {"mlflow"},
    "container_registry": {"default", "aws", "gcp", "azure"},
    "image_builder": {"kaniko", "aws", "gcp"},
    "alerter": {"slack"},
    "deployer": {"kubernetes"},  # `mlops serve start` (readmission_realtime)
}
PLACEHOLDER = r"^(\$\{[A-Z][A-Z0-9_]*\}|\{\{[a-z0-9-]+\.[a-z0-9_]+\}\})$"
# Settings the platform pins on purpose (no URL, no secret): the only literals a stack file holds.
PINNED_LITERALS = {("deployer", "service_type"): "ClusterIP"}


def raw_stack(env: str) -> dict[str, Any]:
    return yaml.safe_load(stack_file(env).read_text(encoding="utf-8"))


@pytest.mark.parametrize("env", REMOTE)
def test_remote_stacks_have_every_component_the_platform_needs(env: str) -> None:
    components = raw_stack(env)["components"]
    assert set(components) == set(REQUIRED_FLAVORS)
    for kind, flavors in REQUIRED_FLAVORS.items():
        assert components[kind]["flavor"] in flavors, kind


@pytest.mark.parametrize("env", REMOTE)
def test_remote_stacks_hold_no_url_or_secret_only_variables_and_secret_references(
    env: str,
) -> None:
    for kind, component in raw_stack(env)["components"].items():
        for key, value in (component.get("configuration") or {}).items():
            assert isinstance(value, str), f"{env}:{kind}.{key}"
            if (kind, key) in PINNED_LITERALS:
                assert value == PINNED_LITERALS[kind, key], f"{env}:{kind}.{key}={value!r}"
                continue
            assert re.match(PLACEHOLDER, value), f"{env}:{kind}.{key}={value!r}"


def test_only_remote_stacks_require_a_server() -> None:
    assert not requires_server(stack_file("local"))
    assert all(requires_server(stack_file(env)) for env in REMOTE)


def test_every_variable_and_secret_is_documented_and_every_documented_one_used() -> None:
    documented = load_variables()
    used = set().union(*(referenced_variables(stack_file(env)) for env in REMOTE))
    assert used == set(documented), "configs/stacks/variables.yaml is out of date"
    examples = {name: v.example for name, v in documented.items()}
    secrets: dict[str, set[str]] = {}
    for env in REMOTE:
        for name, keys in referenced_secrets(parse_stack_file(stack_file(env), examples)).items():
            secrets.setdefault(name, set()).update(keys)
    assert secrets == load_documented_secrets()


def test_a_remote_stack_is_never_registered_in_a_local_store() -> None:
    with pytest.raises(StackFileError, match="ZENML_STORE_URL"):
        check_server("readmission-production", "sql", "sqlite:////tmp/zenml.db")
    check_server("readmission-production", "rest", "https://zenml.example.org")


@pytest.mark.usefixtures("isolated_state")
def test_stack_setup_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_REPOSITORY", "MLOPS_GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    summary = invoke_json("stack", "setup", "--env", "local")
    assert summary["stack"] == raw_stack("local")["name"]
    assert summary["components"]["experiment_tracker"] == "mlflow-local"
    assert summary["code_repository"].startswith("skipped")
    assert invoke_json("stack", "setup", "--env", "local") == summary, "setup is idempotent"

    for name in load_variables():
        monkeypatch.delenv(name, raising=False)
    unset = invoke("stack", "setup", "--env", "staging")
    assert unset.exit_code == ExitCode.CONFIG
    assert "MLOPS_STAGING_K8S_CONTEXT" in unset.stderr

    for name, variable in load_variables().items():
        monkeypatch.setenv(name, variable.example)
    local_store = invoke("stack", "setup", "--env", "production")
    assert local_store.exit_code == ExitCode.CONFIG
    assert "must be registered on a ZenML server" in local_store.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("stack-validation")
def test_zenml_validates_and_reads_back_the_staging_and_production_stacks() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "validate_stacks.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["zenml_version"] == "0.98.0"
    for env in REMOTE:
        stack = report["stacks"][env]
        assert stack["registered"], stack.get("error")
        assert stack["integrations"] and all(stack["integrations"].values()), stack
        assert set(stack["components"]) == set(REQUIRED_FLAVORS)
        for kind, component in stack["components"].items():
            assert component["read_back"], f"{env}:{kind} did not read back as written"
            assert "Invalid configuration keys" in str(component["rejects_unknown_key"]), (
                f"{env}:{kind}: ZenML accepted an unknown key, so the flavor was not validated"
            )
    repository = report["code_repository"]
    assert repository["outcomes"] == ["created", "unchanged"], repository
    assert repository["source"] == GITHUB_SOURCE
    assert repository["config"]["token"] == f"{{{{{TOKEN_SECRET}.token}}}}"
    # The Slack alerter checked its token and the code repository logged in: both secrets
    # references were resolved and reached the (local stand-ins for the) real APIs.
    assert {"/slack/api/auth.test", "/github/user"} <= set(report["api_calls"])
    assert not [call for call in report["api_calls"] if "refused" in call]
    assert report["passed"] is True
    assert done.returncode == 0


@pytest.mark.usefixtures("isolated_state")
def test_stack_use_activates_only_the_registered_file_stack_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops stack use` (the daily governance audit's read-only set-up): refused when the stack
    is not registered or differs from its file, and it changes nothing in the store."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    from tests.integration.helpers import copy_configs

    name = raw_stack("local")["name"]
    missing = invoke("stack", "use", "--env", "local")
    assert missing.exit_code == ExitCode.CONFIG and "is not registered" in missing.stderr
    invoke_json("stack", "setup", "--env", "local")

    def components() -> set[tuple[str, str]]:
        return {(c.name, str(c.updated)) for c in depaginate(Client().list_stack_components)}

    before = components()
    assert invoke_json("stack", "use", "--env", "local") == {
        "environment": "local", "stack": name, "active": True,
    }  # fmt: skip
    # The file now says another MLflow store: `use` refuses, and registers nothing either way.
    changed = raw_stack("local")
    tracker = changed["components"]["experiment_tracker"]
    tracker["configuration"] = {
        **tracker.get("configuration", {}),
        "tracking_uri": "file:/elsewhere",
    }
    configs = copy_configs(tmp_path / "configs", {"stacks/local.yaml": changed})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    differs = invoke("stack", "use", "--env", "local")
    assert differs.exit_code == ExitCode.CONFIG, differs.output
    assert "tracking_uri is" in differs.stderr and "the file says 'file:/elsewhere'" in " ".join(
        differs.stderr.split()
    )
    assert components() == before


def _local_spec() -> StackSpec:
    from mlops_cli.commands import _environ

    return parse_stack_file(stack_file("local"), _environ())


def _refused_and_put_back(named: list[str]) -> None:
    """What every insider change below must meet: the comparison names each change, `mlops stack
    use` refuses (exit 7) naming them, `mlops stack setup` puts the file's stack back, and then
    the comparison is clean and `use` accepts."""
    differences = registered_stack_differences(_local_spec())
    for words in named:
        assert any(words in line for line in differences), (words, differences)
    refused = invoke("stack", "use", "--env", "local")
    assert refused.exit_code == ExitCode.CONFIG, refused.output
    message = " ".join(refused.stderr.split())
    assert all(words in message for words in named), message
    assert "takes out of the stack what the file does not list" in message
    invoke_json("stack", "setup", "--env", "local")
    assert registered_stack_differences(_local_spec()) == []
    assert invoke_json("stack", "use", "--env", "local")["active"] is True


@pytest.mark.usefixtures("isolated_state")
def test_a_setting_the_file_does_not_name_is_found_refused_and_reset() -> None:
    """An insider turns off TLS checks on the registered MLflow tracker (a setting the file does
    not name; its tracking URI, which the file names, is untouched) with ZenML's own client."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    invoke_json("stack", "setup", "--env", "local")
    tracker = raw_stack("local")["components"]["experiment_tracker"]
    Client().update_stack_component(
        tracker["name"],
        StackComponentType.EXPERIMENT_TRACKER,
        configuration={"tracking_insecure_tls": True},
    )
    _refused_and_put_back(
        [f"experiment_tracker {tracker['name']!r}: tracking_insecure_tls is True", "default: False"]
    )
    restored = Client().get_stack_component(
        StackComponentType.EXPERIMENT_TRACKER, tracker["name"], allow_name_prefix_match=False
    )
    assert set(restored.configuration) == set(tracker["configuration"]), "replaced, not merged"


@pytest.mark.usefixtures("isolated_state")
def test_a_component_the_file_does_not_list_is_found_refused_and_taken_out() -> None:
    """An insider adds a model registry (an MLflow one, the flavor installed here) to the stack."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    invoke_json("stack", "setup", "--env", "local")
    name = raw_stack("local")["name"]
    client = Client()
    extra = client.create_stack_component(
        name="insider-registry",
        flavor="mlflow",
        component_type=StackComponentType.MODEL_REGISTRY,
        configuration={},
    )
    client.update_stack(name, component_updates={StackComponentType.MODEL_REGISTRY: extra.id})
    _refused_and_put_back(["model_registry 'insider-registry' (mlflow); the file lists no"])
    stack = client.get_stack(name, allow_name_prefix_match=False)
    assert not stack.components.get(StackComponentType.MODEL_REGISTRY)
    assert {kind.value for kind, found in stack.components.items() if found} == set(
        raw_stack("local")["components"]
    )


@pytest.mark.usefixtures("isolated_state")
def test_environment_and_secrets_attached_to_a_component_or_the_stack_are_found_and_removed() -> (
    None
):
    """Environment variables and ZenML secrets reach every step's environment; the files set
    none, so any on a component or on the stack is a difference that setup removes."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    invoke_json("stack", "setup", "--env", "local")
    name = raw_stack("local")["name"]
    client = Client()
    secret = client.create_secret("insider-credentials", values={"token": "x"})
    tracker = raw_stack("local")["components"]["experiment_tracker"]["name"]
    kind = StackComponentType.EXPERIMENT_TRACKER
    client.update_stack_component(
        tracker, kind, environment={"PYTHONPATH": "/mnt/insider"}, add_secrets=[secret.id]
    )
    client.update_stack(name, environment={"AWS_ENDPOINT_URL": "http://insider.example:9000"})
    _refused_and_put_back(
        [
            f"experiment_tracker {tracker!r}: sets the environment variable(s) PYTHONPATH",
            f"experiment_tracker {tracker!r}: has 1 ZenML secret(s) attached",
            f"the stack {name!r}: sets the environment variable(s) AWS_ENDPOINT_URL",
        ]
    )
    restored = client.get_stack_component(kind, tracker, allow_name_prefix_match=False)
    assert restored.environment == {} and restored.secrets == []
    assert client.get_stack(name, allow_name_prefix_match=False).environment == {}


@pytest.mark.usefixtures("isolated_state")
def test_a_governed_launch_refuses_its_stack_changed_where_the_file_does_not_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The launcher's precondition for a real staging run (a shared trail, here by patching the
    local-trust test), on a stack of the right name whose tracker an insider changed in a setting
    the file does not name. The local stack file stands in for staging's (its flavors are the
    ones installed here)."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from mlops_platform.runtime import runner
    from mlops_platform.runtime.preconditions import PreconditionFailed

    monkeypatch.setattr(runner, "uses_local_stores", lambda settings: False)
    monkeypatch.setattr(runner, "stack_file", lambda env, directory=None: stack_file("local"))
    invoke_json("stack", "setup", "--env", "local")
    runner.refuse_unsafe_launch("staging", "sqlite:///mlflow.db", git_dirty=False)

    tracker = raw_stack("local")["components"]["experiment_tracker"]["name"]
    Client().update_stack_component(
        tracker, StackComponentType.EXPERIMENT_TRACKER, configuration={"nested": True}
    )
    with pytest.raises(PreconditionFailed, match=f"{tracker}': nested is True"):
        runner.refuse_unsafe_launch("staging", "sqlite:///mlflow.db", git_dirty=False)

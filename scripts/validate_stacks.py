"""Validate stack files with ZenML's real flavors against a throwaway local ZenML store.

Run by scripts/validate_stacks.sh inside a separate virtual environment that holds zenml and the
integrations the stacks need (so ZenML checks every configuration with the flavor's own class).
For each environment it registers the stack with the example values of configs/stacks/variables.yaml,
reads every component back, and checks that a configuration with an unknown key is refused, which
shows that ZenML really validated the flavor. It also registers the GitHub code repository.

Registration calls two web APIs: the Slack alerter checks its token (auth.test) and the GitHub code
repository logs in (GET /user). This machine, like CI, must not depend on them, so both clients are
pointed at a local double that accepts the example token; ZenML's own code still makes the calls.
Prints one JSON report; exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

UNKNOWN_KEY = "key_that_no_flavor_defines"
_ANSWERS: dict[str, dict[str, Any]] = {
    "/github/user": {"login": "example-bot", "id": 1},
    "/github/repos/example-org/readmission-mlops": {
        "id": 1,
        "name": "readmission-mlops",
        "full_name": "example-org/readmission-mlops",
        "private": True,
        "owner": {"login": "example-org"},
    },
    "/slack/api/auth.test": {"ok": True, "user_id": "U0EXAMPLE", "team_id": "T0EXAMPLE"},
    "/slack/api/conversations.info": {"ok": True, "channel": {"id": "C0123456789"}},
}


# The example credentials: the code repository token and the Slack secret created below.
GITHUB_TOKEN = "example-read-only-token"
SECRET_VALUE = "example-{key}"
_EXPECTED_TOKENS = {"/github/": GITHUB_TOKEN, "/slack/": SECRET_VALUE.format(key="token")}


class _ApiDouble(BaseHTTPRequestHandler):
    """Answers the few GitHub and Slack calls that registration makes; records each path.

    A call without the example token is refused, as the real APIs would: this shows that the
    `{{secret.key}}` references were resolved from the ZenML secrets.
    """

    calls: ClassVar[list[str]] = []

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        token = next((t for prefix, t in _EXPECTED_TOKENS.items() if path.startswith(prefix)), "")
        authorized = bool(token) and token in (self.headers.get("Authorization") or "")
        self.calls.append(path if authorized else f"{path} (refused: no valid token)")
        status = 200 if authorized and path in _ANSWERS else 401 if not authorized else 404
        answer = _ANSWERS.get(path) if status == 200 else {"ok": False, "message": "refused"}
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def api_double() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _point_slack_at(base_url: str) -> None:
    """ZenML imports `slack_sdk.WebClient` when it validates the alerter; give it this base URL."""
    import slack_sdk

    slack_sdk.WebClient = functools.partial(slack_sdk.WebClient, base_url=base_url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", required=True, help="Stack to validate.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stack-validation-") as scratch, api_double() as url:
        os.environ.update(
            {
                "ZENML_CONFIG_PATH": str(Path(scratch) / "zenml"),
                "ZENML_ANALYTICS_OPT_IN": "false",
                "ZENML_LOGGING_VERBOSITY": "ERROR",
                "ZENML_ENABLE_RICH_TRACEBACK": "false",
                "MLOPS_STATE_DIR": str(Path(scratch) / "state"),
            }
        )
        for name in ("ZENML_STORE_URL", "ZENML_STORE_API_KEY"):
            os.environ.pop(name, None)
        _point_slack_at(f"{url}/slack/api/")
        report = validate(args.env, f"{url}/github")
        report["api_calls"] = sorted(set(_ApiDouble.calls))
    sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    sys.stderr.write(summary_line(report) + "\n")  # stdout stays one JSON document
    return 0 if report["passed"] else 1


def summary_line(report: dict[str, Any]) -> str:
    """One line for a human at the end of the run: what was validated and the verdict."""
    parts = []
    for env, stack in report["stacks"].items():
        components = stack.get("components", {})
        checked = sum(1 for c in components.values() if c["read_back"] and c["rejects_unknown_key"])
        parts.append(f"{env} {checked}/{len(components)} components")
    verdict = "PASSED" if report["passed"] else "FAILED (see the JSON report above)"
    repository = (
        "code repository ok"
        if "error" not in report["code_repository"]
        else ("code repository FAILED")
    )
    return f"validate-stacks: {verdict}: {'; '.join(parts)}; {repository}."


def validate(envs: list[str], github_api_url: str) -> dict[str, Any]:
    import zenml
    from zenml.client import Client

    from mlops_platform.infra.stack_setup import (
        load_documented_secrets,
        load_variables,
        required_integrations,
    )
    from mlops_platform.infra.stacks import parse_stack_file, stack_file

    documented = load_variables()
    environ = {name: variable.example for name, variable in documented.items()}
    documented_secrets = load_documented_secrets()
    client = Client()
    for secret, keys in documented_secrets.items():
        client.create_secret(secret, values={key: SECRET_VALUE.format(key=key) for key in keys})
    stacks = {}
    for env in envs:
        spec = parse_stack_file(stack_file(env), environ)
        stacks[env] = _validate_stack(client, env, spec, documented, documented_secrets)
        stacks[env]["integrations"] = _integrations(required_integrations(spec))
    report: dict[str, Any] = {"zenml_version": zenml.__version__, "stacks": stacks}
    report["code_repository"] = _validate_code_repository(client, github_api_url)
    report["passed"] = _passed(report)
    return report


def _validate_stack(
    client: Any,
    env: str,
    spec: Any,
    documented: dict[str, Any],
    documented_secrets: dict[str, set[str]],
) -> dict[str, Any]:
    from zenml.enums import StackComponentType

    from mlops_platform.infra.stack_setup import referenced_secrets, referenced_variables
    from mlops_platform.infra.stacks import register_stack, stack_file

    used = referenced_variables(stack_file(env))
    secrets = referenced_secrets(spec)
    result: dict[str, Any] = {
        "stack": spec.name,
        "undocumented_variables": sorted(used - documented.keys()),
        "undocumented_secrets": sorted(
            f"{name}.{key}"
            for name, keys in secrets.items()
            for key in keys - documented_secrets.get(name, set())
        ),
    }
    try:
        register_stack(spec, activate=False)
    except Exception as error:
        result["registered"] = False
        result["error"] = f"{type(error).__name__}: {error}"
        return result
    result["registered"] = True
    stack = client.get_stack(spec.name, allow_name_prefix_match=False)
    components = {}
    for component in spec.components:
        kind = StackComponentType(component.component_type)
        stored = stack.components[kind][0]
        components[component.component_type] = {
            "name": stored.name,
            "flavor": stored.flavor_name,
            "read_back": stored.name == component.name
            and stored.flavor_name == component.flavor
            and all(stored.configuration.get(k) == v for k, v in component.configuration.items()),
            "rejects_unknown_key": _rejects_unknown_key(client, kind, component),
        }
    result["components"] = components
    return result


def _rejects_unknown_key(client: Any, kind: Any, component: Any) -> str | None:
    """ZenML's error for a configuration with an unknown key, or None if it was accepted."""
    try:
        client.create_stack_component(
            name=f"{component.name}-unknown-key",
            flavor=component.flavor,
            component_type=kind,
            configuration={**component.configuration, UNKNOWN_KEY: "x"},
        )
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _integrations(names: list[str]) -> dict[str, bool]:
    from zenml.integrations.registry import integration_registry

    return {name: integration_registry.integrations[name].check_installation() for name in names}


def _validate_code_repository(client: Any, api_url: str) -> dict[str, Any]:
    from mlops_platform.infra.code_repository import (
        CODE_REPOSITORY_NAME,
        TOKEN_VARIABLE,
        github_repository_from_env,
        register_github_repository,
    )

    environ = {
        "GITHUB_REPOSITORY": "example-org/readmission-mlops",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": api_url,
        TOKEN_VARIABLE: GITHUB_TOKEN,
    }
    found = github_repository_from_env(environ)
    if found is None:
        return {"error": "github_repository_from_env found no repository"}
    outcomes = []
    try:
        outcomes = [register_github_repository(*found) for _ in range(2)]
    except Exception as error:
        return {"outcomes": outcomes, "error": f"{type(error).__name__}: {error}"}
    stored = client.get_code_repository(CODE_REPOSITORY_NAME, allow_name_prefix_match=False)
    return {
        "outcomes": outcomes,
        "source": stored.source.import_path,
        "config": stored.config,
    }


def _passed(report: dict[str, Any]) -> bool:
    for stack in report["stacks"].values():
        if not stack.get("registered") or stack["undocumented_variables"]:
            return False
        if stack["undocumented_secrets"] or not all(stack["integrations"].values()):
            return False
        for component in stack["components"].values():
            if not component["read_back"] or component["rejects_unknown_key"] is None:
                return False
    return "error" not in report["code_repository"]


if __name__ == "__main__":
    sys.exit(main())

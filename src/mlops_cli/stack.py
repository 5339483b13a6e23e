"""`mlops stack`: the environment stacks of `configs/stacks/ENV.yaml`, registered from the files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_cli.common import (
    Env,
    EnvOption,
    JsonOption,
    console_logs_on_stderr,
    emit,
    out,
    reports_errors,
)

stack_app = typer.Typer(
    name="stack",
    help="ZenML stacks as files: configs/stacks/ENV.yaml (local, staging, production).",
    no_args_is_help=True,
)


@stack_app.command("setup")
@reports_errors
def setup(env: EnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Register (or update) and activate ENV's stack from its file; idempotent.

    Staging and production are registered only on a ZenML server (ZENML_STORE_URL +
    ZENML_STORE_API_KEY, or `zenml login`). With GITHUB_REPOSITORY and MLOPS_GITHUB_TOKEN set, the
    repository is also registered as a ZenML GitHub code repository.

    Example: mlops stack setup --env staging
    """
    from mlops_cli.commands import _environ
    from mlops_platform.infra.stack_setup import setup_stack

    with console_logs_on_stderr(as_json):
        result = setup_stack(env.value, _environ())
    emit(result.as_dict(), as_json, lambda: _print_setup(result.as_dict()))


@stack_app.command("use")
@reports_errors
def use(env: EnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Activate ENV's registered stack, only if it is what its file describes; writes nothing
    to the ZenML store (exit 7 if the stack is missing or differs from the file).

    Example: mlops stack use --env production
    """
    from mlops_cli.commands import _environ
    from mlops_platform.infra.stack_setup import use_stack

    with console_logs_on_stderr(as_json):
        name = use_stack(env.value, _environ())
    result = {"environment": env.value, "stack": name, "active": True}
    emit(result, as_json, lambda: out.print(f"Stack [bold]{name}[/] is active (read only)."))


@stack_app.command("requirements")
@reports_errors
def requirements(
    env: Annotated[
        list[Env], typer.Option("--env", help="Environment(s) whose stack files to read.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(help="Write the requirements to this file (ZenML may log on stdout)."),
    ] = None,
) -> None:
    """The pip requirements of the ZenML integrations ENV's stack needs, one per line.

    Example: mlops stack requirements --env staging --output stack-requirements.txt
    """
    from mlops_cli.commands import _environ
    from mlops_platform.infra.stack_setup import example_environment, stack_requirements
    from mlops_platform.infra.stacks import parse_stack_file, stack_file

    environ = {**example_environment(), **_environ()}
    specs = [parse_stack_file(stack_file(e.value), environ) for e in env]
    text = "".join(f"{line}\n" for line in stack_requirements(specs))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")


def _print_setup(summary: dict[str, object]) -> None:
    out.print(f"Stack [bold]{summary['stack']}[/] ({summary['env']}) is registered and active.")
    components = summary["components"]
    if isinstance(components, dict):
        for kind, name in components.items():
            out.print(f"  {kind}: {name}")
    out.print(f"GitHub code repository: {summary['code_repository']}")

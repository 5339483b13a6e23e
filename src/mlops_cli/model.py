"""`mlops model types`: review the classes and functions a trained model's file holds.

A stored model may contain only the exact names on `serialization.allowed_types` (platform.yaml).
This command reads a version's stored `model.skops` without building anything from it (a
registered version's signed file, checked against its pin; never ZenML's newest link), lists
every name in it and the difference from the allow-list, so a platform engineer can review a new
type before adding it on purpose.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from mlops_cli.common import Env, EnvOption, JsonOption, emit, out, reports_errors

app = typer.Typer(
    name="model",
    help="Inspect trained model versions (their stored files and types).",
    no_args_is_help=True,
)


@app.command("types")
@reports_errors
def types(
    version: Annotated[
        str, typer.Option("--version", help="Model version number, or 'latest' (newest validated).")
    ],
    env: EnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """List the types in VERSION's stored model and the difference from ENV's allow-list.

    Example: mlops model types --version 3
    """
    payload = model_type_review(version, env.value)
    emit(payload, as_json, lambda: _print_review(payload))


def model_type_review(requested: str, env: str) -> dict[str, Any]:
    from mlops_cli.commands import ensure_stack
    from mlops_platform.governance.model_stages import find_version
    from mlops_platform.infra.settings import allowed_model_types
    from mlops_platform.trust.artifacts import file_digest, review_types, reviewed_model_file
    from readmission.names import MODEL_NAME, Artifact

    ensure_stack()
    version = find_version(MODEL_NAME, requested)
    artifact, data, signed = reviewed_model_file(version, Artifact.MODEL, env)
    review = review_types(data, allowed_model_types(env))
    return {
        "model_name": MODEL_NAME,
        "model_version": version.name,
        "environment": env,
        "artifact_id": str(artifact.id),
        "sha256": file_digest(data),
        "signed_file": signed,
        **review.as_dict(),
    }


def _print_review(payload: dict[str, Any]) -> None:
    out.print(
        f"Model {payload['model_name']} version [bold]{payload['model_version']}[/]: "
        f"{len(payload['types'])} types (allow-list of {payload['environment']}: "
        f"{payload['allow_list_length']} names).",
        highlight=False,
    )
    out.print(
        f"  file sha256 {payload['sha256'][:16]}…, artifact {payload['artifact_id']}: "
        + (
            "the signed file of the registration, checked against its pin"
            if payload["signed_file"]
            else "never registered (no signed pin), ZenML's newest link"
        ),
        highlight=False,
    )
    for name in payload["types"]:
        mark = "[red]✗ not allowed[/]" if name in payload["not_allowed"] else "[green]✓[/]"
        out.print(f"  {mark} {escape(name)}", highlight=False)
    if payload["not_allowed"]:
        out.print(
            f"[bold red]{len(payload['not_allowed'])} type(s) would be refused.[/] Add a type to "
            "serialization.allowed_types in configs/base/platform.yaml only after reviewing "
            "that it cannot run code (docs/PLATFORM_GUIDE.md).",
            highlight=False,
        )
    else:
        out.print("Every type is on the allow-list.")

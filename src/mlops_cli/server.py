"""`mlops server start|stop|status`: the project's own ZenML server with one account per person.

`mlops --as NAME <command>` then runs the command authenticated as NAME (with NAME's API key from
`<state>/server/accounts/`), so staging and production record NAME with source `zenml-server`.
"""

from __future__ import annotations

from typing import Any

import typer

from mlops_cli.common import JsonOption, emit, out, reports_errors

app = typer.Typer(
    name="server",
    help="The project's ZenML server on 127.0.0.1, with one authenticated account per person.",
    no_args_is_help=True,
)


def people() -> list[str]:
    """Everyone named in the approval policy's roles (each gets an account)."""
    from mlops_platform.config import ENVIRONMENTS
    from mlops_platform.governance.approvals.policy import load_approval_policy

    names: set[str] = set()
    for env in ENVIRONMENTS:
        names |= load_approval_policy(env).people_in(load_approval_policy(env).roles)
    return sorted(names)


@app.command("start")
@reports_errors
def start(as_json: JsonOption = False) -> None:
    """Start the server (or reuse the running one) and create the missing accounts.

    Example: mlops server start
    """
    from mlops_platform.infra import server
    from mlops_platform.trust.identity import bind_project_accounts

    record, created = server.start_with_accounts(people(), store_url=server.local_store_url)
    bind_project_accounts()  # each name held by the account made for it, from now on
    payload: dict[str, Any] = {**server.status(), "created": sorted(created)}
    emit(payload, as_json, lambda: _print(payload, record.url))


@app.command("stop")
@reports_errors
def stop() -> None:
    """Stop the server started by `mlops server start` (its database and accounts are kept)."""
    from mlops_platform.infra import server

    stopped = server.stop()
    out.print(f"ZenML server at {stopped.url} stopped." if stopped else "No server was running.")


@app.command("status")
@reports_errors
def status(as_json: JsonOption = False) -> None:
    """Whether the server runs, where, and which accounts have credentials here; exits 6 (not
    found) when no server runs, so a script can test it.

    Example: mlops server status || mlops server start
    """
    from mlops_cli.errors import ExitCode
    from mlops_platform.infra import server

    payload = server.status()
    emit(payload, as_json, lambda: _print(payload, payload["url"]))
    if not payload["running"]:
        raise typer.Exit(int(ExitCode.NOT_FOUND))


def _print(payload: dict[str, Any], url: str | None) -> None:
    state = "running" if payload["running"] else "not running"
    out.print(f"ZenML server {state}" + (f" at {url}" if url else "") + ".")
    if payload["accounts"]:
        out.print(
            f"Accounts: {', '.join(payload['accounts'])}. Act as one with "
            "`mlops --as NAME <command>`."
        )

"""Pieces every command module shares: consoles, common options, JSON output, error reporting."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlops_cli.errors import CliError

# In a pipe or a file, rich would cut tables at 80 columns; there they keep their natural width.
PIPE_WIDTH = 400
out = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class Env(StrEnum):
    LOCAL = "local"
    STAGING = "staging"
    PRODUCTION = "production"


EnvOption = Annotated[
    Env, typer.Option("--env", help="Environment whose configs and policy apply.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def reports_errors(command: F) -> F:
    """Known failures become one line on stderr and a distinct exit code; no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlops_cli.failures import as_cli_error

        try:
            return command(*args, **kwargs)
        except CliError as error:
            failure = error
        except Exception as error:
            failure = as_cli_error(error)
            if failure is None:
                raise
        err.print(f"[bold red]error:[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
        raise typer.Exit(int(failure.code))

    return wrapper  # type: ignore[return-value]


def emit(payload: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        human()


@contextmanager
def console_logs_on_stderr(as_json: bool) -> Iterator[None]:
    """With `--json`, stdout must hold the JSON object only, but ZenML's console handler writes
    every log record of a run (a drift alert included) to stdout: point it at stderr meanwhile."""
    if not as_json:
        yield
        return
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)

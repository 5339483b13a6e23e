"""Pieces every command module shares: consoles, common options, JSON output, error reporting."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlops_cli.errors import CliError, ExitCode
from mlops_platform.runtime.console import debug_enabled

# Width of tables and narration when the stream is not a terminal (a pipe, a file, CI logs):
# wide and fixed, so that a line is never folded at 80 columns; no colour.
PIPE_WIDTH = 200


class SafeConsole(Console):
    """A console that shows control and invisible characters of the text it prints escaped
    (`printable`; newline and tab kept for our own layout): recorded text (a reason in an old
    record, another writer's) cannot send escape sequences to the reader's terminal. Every
    string printed, table cells included, passes through `render_str`."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        from mlops_platform.text import printable

        return super().render_str(printable(text, keep="\n\t"), **kwargs)


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return SafeConsole(stderr=stderr)
    return SafeConsole(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True, no_color=True)


out = make_console()
err = make_console(stderr=True)


F = TypeVar("F", bound=Callable[..., Any])


class Env(StrEnum):
    LOCAL = "local"
    STAGING = "staging"
    PRODUCTION = "production"


EnvOption = Annotated[
    Env, typer.Option("--env", help="Environment whose configs and policy apply.")
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object on stdout; when the command fails, an object with its "
        "error message and exit code.",
    ),
]
# Whether this command printed its JSON object already (`emit`): a failure after it adds none.
_emitted = False


def reports_errors(command: F) -> F:
    """Known failures become one message on stderr and their exit code; no traceback (unless
    --verbose). An unexpected error says it is a bug, then shows its traceback (exit 1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _emitted
        from mlops_cli.errors import as_cli_error

        _emitted = False
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise  # an exit code the command chose, its message already printed
        except CliError as error:
            failure, original = error, error.__cause__ or error
        except Exception as error:
            failure, original = as_cli_error(error), error
            if failure is None:
                err.print(
                    f"[bold red]error:[/] unexpected {escape(type(error).__name__)}: "
                    f"{escape(str(error))}\nThis is a bug in mlops or its infrastructure, not in "
                    "your input: please report it with the command you ran and the traceback "
                    "below.",
                    highlight=False,
                    soft_wrap=True,
                )
                raise
        if debug_enabled():
            sys.stderr.write("".join(traceback.format_exception(original)))
        report_failure(str(failure), failure.code)
        if kwargs.get("as_json") and not _emitted:
            emit({"error": str(failure), "exit_code": int(failure.code)}, True, lambda: None)
        raise typer.Exit(int(failure.code))

    return wrapper  # type: ignore[return-value]


def report_failure(message: str, code: ExitCode) -> None:
    """The one message of a failed command, on stderr."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def emit(payload: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    global _emitted
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        _emitted = True
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

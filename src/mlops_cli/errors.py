"""Exit codes and the one place that turns known errors into a single human line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected failure: a bug or an infrastructure problem
    USAGE = 2  # bad command-line usage (typer's own code)
    BAD_INPUT = 3  # data missing, unreadable or against the schema
    GATE_FAILED = 4  # a model gate blocked the model
    DENIED = 5  # a promotion or approval denied by policy
    NOT_FOUND = 6  # no such model version, or nothing holds the stage
    CONFIG = 7  # a configuration or stack file is invalid
    AUDIT_BROKEN = 8  # the audit trail does not verify
    CHECK_FAILED = 9  # `mlops check` found a governance rule broken


class CliError(Exception):
    """An error the CLI reports as one line with a distinct exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code

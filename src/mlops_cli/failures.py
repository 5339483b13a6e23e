"""Turn the project's known exceptions (raised directly or inside a pipeline step) into one
CLI message and the exit code of `mlops_cli.errors.ERROR_EXIT_CODES`."""

from __future__ import annotations

from mlops_cli.errors import CliError, ExitCode, exit_code_for


def as_cli_error(error: Exception) -> CliError | None:
    """A CliError for a known failure, or None to let an unexpected error surface."""
    if type(error).__name__ == "GovernedRunFailed":
        from mlops_platform.runtime.runner import GovernedRunFailed

        if isinstance(error, GovernedRunFailed):
            code = exit_code_for(error.error_class()) or ExitCode.ERROR
            message = f"run {error.run_name} stopped in step '{error.step}':\n{error.error_message}"
            if code is ExitCode.ERROR:
                message += (
                    "\nThis is unexpected (a bug or an infrastructure problem): the step's "
                    "traceback is in its ZenML logs, and on the console with --verbose."
                )
            return CliError(message, code)
    code = exit_code_for(type(error))
    return CliError(str(error), code) if code is not None else None

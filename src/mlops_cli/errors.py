"""Exit codes, and the one table that says which known error gets which code.

`ERROR_EXIT_CODES` maps an exception class, named by its import path, to an exit code. A class
and all its subclasses get that code; when several listed classes are in an error's class
hierarchy, the most specific wins. To map a new error, add one line to the table (the unit test
`tests/unit/test_cli_errors.py` imports every class named here, so a typo or a moved class fails
the suite). Classes are named, not imported, so that the CLI starts and reports a bad input
before ZenML or pandas is imported.

Anything not in the table is unexpected: the CLI prints its traceback with a line saying it is a
bug, and exits 1. One raised in the project's data-science code (`runtime.code_errors`: the
innermost project frame of its traceback is in src/readmission/) is also exit 1, but one message
naming the exception and its file and line, and no traceback (unless --verbose).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


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


# What each code means, as README.md and `mlops --help` print it (a test compares them).
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "unexpected error, shown with its traceback (a bug), an error raised in the "
    "project's data-science code (src/readmission/, named by file and line), or an external "
    "service failing (GitHub API)",
    ExitCode.USAGE: "bad command-line usage (unknown option, missing value)",
    ExitCode.BAD_INPUT: "bad input: a data file or argument missing, unreadable, over a limit "
    "or against the schema",
    ExitCode.GATE_FAILED: "a model gate failed (in training or in a promotion)",
    ExitCode.DENIED: "denied by policy (approvals, separation of duties, stage rules), or "
    "another promotion of the model holds its lock (try again)",
    ExitCode.NOT_FOUND: "not found: no such model version, result or stage holder, or no "
    "running server (`mlops server status`)",
    ExitCode.CONFIG: "configuration or stack file invalid, a ZenML server (ZENML_STORE_URL) that "
    "cannot be reached, a state directory moved, copied or not there (MLOPS_STATE_DIR), or a "
    "pipeline that does not compose (a miswired step input, or `after=` naming a step it lacks)",
    ExitCode.AUDIT_BROKEN: "audit trail or model integrity broken (does not verify), a store "
    "unusable (an audit database that cannot be opened, a damaged store file, a missing MLflow "
    "store), or a stored model whose predictions this code changes (golden sample)",
    ExitCode.CHECK_FAILED: "`mlops check` found a governance rule broken",
}

# Exception class (import path of the class where it is defined) -> exit code.
# One line per class; subclasses inherit the code. Keep sorted by exit code.
ERROR_EXIT_CODES: dict[str, ExitCode] = {
    "mlops_platform.batch.contract.BatchContractError": ExitCode.CONFIG,
    "mlops_platform.batch.preflight.InputLimitError": ExitCode.BAD_INPUT,
    "mlops_platform.batch.reader.BatchInputError": ExitCode.BAD_INPUT,
    "mlops_platform.steps.validate_data.DataValidationError": ExitCode.BAD_INPUT,
    "readmission.core.data.DataError": ExitCode.BAD_INPUT,
    "readmission.core.schema.SchemaViolationError": ExitCode.BAD_INPUT,
    # A blank or hidden-character name is bad input; an identity the environment does not
    # accept (asserted where a verified one is required, a refused token) is denied.
    "mlops_platform.trust.identity.InvalidNameError": ExitCode.BAD_INPUT,
    # A typed reason, ticket or comment over the length limit or with hidden characters.
    "mlops_platform.text.InvalidTextError": ExitCode.BAD_INPUT,
    "mlops_platform.governance.model_stages.VersionNumberError": ExitCode.BAD_INPUT,
    "mlops_platform.governance.policy.evaluate.GateFailedError": ExitCode.GATE_FAILED,
    "mlops_platform.governance.promotion.PromotionDenied": ExitCode.DENIED,
    "mlops_platform.governance.promotion.OperatingThresholdError": ExitCode.DENIED,
    "mlops_platform.trust.identity.IdentityError": ExitCode.DENIED,
    "mlops_platform.trust.oidc.OidcError": ExitCode.DENIED,
    # A ZenML server refusing the client's credentials (its message gets a hint, ERROR_HINTS).
    "zenml.exceptions.AuthorizationException": ExitCode.DENIED,
    "mlops_platform.governance.approvals.github.EnvironmentNotProven": ExitCode.DENIED,
    # The gate's inputs are refused: a rule of the platform, named in the message.
    "mlops_platform.evaluation.holdout.HoldoutError": ExitCode.DENIED,
    "mlops_platform.governance.gate_origin.GateOriginError": ExitCode.DENIED,
    "mlops_platform.runtime.run_context.ExistingVersionRefused": ExitCode.DENIED,
    "mlops_platform.steps.validate_model.DataSourceRefused": ExitCode.DENIED,
    "mlops_platform.runtime.run_context.UngovernedRunError": ExitCode.DENIED,
    # Another promotion of the model in the environment holds its lock: try again (not exit 8).
    "mlops_platform.trust.audit.store.LockBusy": ExitCode.DENIED,
    # This clock reads before the trail's newest record: set it right and try again.
    "mlops_platform.trust.audit.store.ClockBehindTrail": ExitCode.DENIED,
    "mlops_platform.steps.validate_data.SchemaRefused": ExitCode.CONFIG,
    "mlops_platform.governance.promotion.PromotionTargetNotFound": ExitCode.NOT_FOUND,
    "mlops_platform.governance.promotion.NothingToWithdraw": ExitCode.NOT_FOUND,
    "mlops_platform.steps.score_batch.ModelNotInStageError": ExitCode.NOT_FOUND,
    "mlops_platform.steps.score_batch.StageMovedError": ExitCode.NOT_FOUND,
    "mlops_platform.reporting.lineage.LineageNotFoundError": ExitCode.NOT_FOUND,
    "mlops_platform.serving.models.NoStageHolderError": ExitCode.NOT_FOUND,
    "mlops_platform.serving.deploy.ServiceNotFoundError": ExitCode.NOT_FOUND,
    "mlops_platform.reporting.governance_report.RecordedLogNotFoundError": ExitCode.NOT_FOUND,
    "mlops_platform.serving.deploy.ServingSetupError": ExitCode.CONFIG,
    "mlops_platform.serving.deploy.ServingStartError": ExitCode.CONFIG,
    "mlops_platform.serving.log.PredictionLogError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.batch.results.ResultNotFoundError": ExitCode.NOT_FOUND,
    "mlops_platform.batch.results.ResultLocationError": ExitCode.BAD_INPUT,
    # A folder among results whose manifest.json is unreadable or no result's: one message
    # naming it (a manifest that reads but disagrees with its run's record is exit 8).
    "mlops_platform.batch.results.ResultManifestError": ExitCode.BAD_INPUT,
    "mlops_platform.config.ConfigError": ExitCode.CONFIG,
    # A pipeline whose step graph does not compose or names a step it lacks (`after=`).
    "mlops_platform.runtime.composition.PipelineCompositionError": ExitCode.CONFIG,
    "mlops_platform.expand.UnsetVariableError": ExitCode.CONFIG,
    "mlops_platform.infra.stacks.StackFileError": ExitCode.CONFIG,
    "mlops_platform.infra.code_repository.CodeRepositoryError": ExitCode.CONFIG,
    "mlops_platform.infra.server.ServerError": ExitCode.CONFIG,
    "pydantic_core._pydantic_core.ValidationError": ExitCode.CONFIG,
    "mlops_platform.trust.audit.chain.AuditError": ExitCode.AUDIT_BROKEN,
    # Also a missing or untrusted key: a signature that does not verify must never look milder.
    "mlops_platform.trust.signing.SigningError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.trust.artifacts.ModelFileIntegrityError": ExitCode.AUDIT_BROKEN,
    # A stored model this code can no longer build (a module it names moved): like the golden
    # sample's refusal, the model and the code disagree.
    "mlops_platform.trust.artifacts.ModelCodeMissing": ExitCode.AUDIT_BROKEN,
    "mlops_platform.trust.outputs.OutputIntegrityError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.trust.stored.StoredFilesError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.steps.validate_model.GateRecordMismatch": ExitCode.AUDIT_BROKEN,
    "mlops_platform.governance.transaction.RejudgedGateFailed": ExitCode.GATE_FAILED,
    "mlops_platform.governance.model_stages.StageChangedOutsideError": ExitCode.CHECK_FAILED,
    "mlops_platform.trust.artifacts.UntrustedModelError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.trust.golden.GoldenSampleMismatch": ExitCode.AUDIT_BROKEN,
    "mlops_platform.runtime.provenance.SnapshotError": ExitCode.AUDIT_BROKEN,
    "mlops_platform.monitoring.labels.LabelsFileError": ExitCode.BAD_INPUT,
    "mlops_platform.monitoring.predictions.PredictionsIntegrityError": ExitCode.AUDIT_BROKEN,
    "readmission.config.TrainingConfigError": ExitCode.CONFIG,
    "mlops_platform.governance.approvals.github.GitHubApiError": ExitCode.ERROR,
}


def class_path(error_class: type[BaseException]) -> str:
    return f"{error_class.__module__}.{error_class.__qualname__}"


def exit_code_for(error_class: type[BaseException] | None) -> ExitCode | None:
    """The code of the most specific listed class in `error_class`'s hierarchy, else None."""
    if error_class is None:
        return None
    for klass in error_class.__mro__:
        code = ERROR_EXIT_CODES.get(class_path(klass))
        if code is not None:
            return code
    return None


def exit_code_table() -> str:
    """The exit-code table as plain text, for `mlops --help` (the README holds the same)."""
    return "\n".join(f"{int(code)}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items())


class CliError(Exception):
    """An error the CLI reports as one message with a distinct exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def as_cli_error(error: Exception) -> CliError | None:
    """A CliError for a known failure, or None to let an unexpected error surface."""
    if type(error).__name__ == "GovernedRunFailed":
        from mlops_platform.runtime.runner import GovernedRunFailed

        if isinstance(error, GovernedRunFailed):
            code = exit_code_for(error.error_class()) or ExitCode.ERROR
            message = f"run {error.run_name} stopped in step '{error.step}':\n{error.error_message}"
            theirs = None
            if code is ExitCode.ERROR:
                from mlops_platform.runtime.code_errors import step_data_science_error

                kind = (error.error_source or "").rpartition(".")[2] or "error"
                theirs = step_data_science_error(
                    error.__cause__, error.error_traceback, f"{kind}: {error.error_message}"
                )
            if theirs is not None:
                message = f"run {error.run_name} stopped in step '{error.step}': {theirs.message()}"
            elif code is ExitCode.ERROR:
                message += (
                    "\nThis is unexpected (a bug or an infrastructure problem): the step's "
                    "traceback is in its ZenML logs, and on the console with --verbose."
                )
            return CliError(message, code)
    url = _unreachable_server_url(error)
    if url is not None:
        first_line = str(error).strip().splitlines()[0]
        return CliError(unreachable_server_message(url, first_line), ExitCode.CONFIG)
    if _unreadable_database(error):
        return CliError(unreadable_database_message(error), ExitCode.AUDIT_BROKEN)
    code = exit_code_for(type(error))
    if code is None:
        from mlops_platform.runtime.code_errors import data_science_error

        theirs = data_science_error(error)
        return CliError(theirs.message(), ExitCode.ERROR) if theirs is not None else None
    hint = _hint_for(type(error))
    return CliError(hint.format(error=str(error).rstrip(".")) if hint else str(error), code)


def _hint_for(error_class: type[BaseException]) -> str | None:
    for klass in error_class.__mro__:
        hint = ERROR_HINTS.get(class_path(klass))
        if hint is not None:
            return hint
    return None


# Errors raised by libraries in their own words, with what to do next added ("{error}" is the
# library's message). Each class here also has a line in ERROR_EXIT_CODES.
ERROR_HINTS: dict[str, str] = {
    # ZenML's refusal of a client's credentials (a server URL without a key, an expired token).
    "zenml.exceptions.AuthorizationException": (
        "the ZenML server refused this client: {error}. With ZENML_STORE_URL set, also set "
        "ZENML_STORE_API_KEY (a service account's key) for that server; on the project's own "
        "server act as a person with `mlops --as NAME` (`mlops server status` lists the "
        "accounts), or unset ZENML_STORE_URL to use the local store."
    ),
}


# SQLite's words for a file that is not (or no longer) a database: overwritten, truncated, corrupt.
_NOT_A_DATABASE = (
    "file is not a database",
    "database disk image is malformed",
    "unable to open database file",
)


def _unreachable_server_url(error: BaseException) -> str | None:
    """The URL of the ZenML server ``error`` says could not be reached (ZenML's words, after
    its retries: a server that stopped answering once the CLI's first check had passed)."""
    import re

    found = re.match(r"Error connecting to URL '([^']+)'", str(error))
    return found.group(1) if isinstance(error, RuntimeError) and found else None


def _unreadable_database(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is SQLite refusing a damaged file; other
    database errors (a lock, a missing table) keep their own handling."""
    seen: BaseException | None = error
    while seen is not None:
        if any(k.__name__ == "DatabaseError" for k in type(seen).__mro__) and any(
            words in str(seen) for words in _NOT_A_DATABASE
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreadable_database_message(error: BaseException) -> str:
    from mlops_platform.infra.store_health import damaged_local_stores, stores_sqlite_refuses
    from mlops_platform.workspace import state_dir

    files = damaged_local_stores() or stores_sqlite_refuses()
    where = (
        "; ".join(f"{path} ({problem})" for path, problem in files.items())
        if files
        else f"a database this command reads (the state's own stores under {state_dir()} look "
        "whole: look at MLOPS_AUDIT_DB_URL and ZENML_STORE_URL)"
    )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"a store this command reads is not a readable SQLite database ({first_line}): {where}. "
        "Decisions read the audit trail, ZenML's store and MLflow's, so the command stopped. "
        "Restore the file from a backup, then run `mlops audit verify` and `mlops check`; a "
        "promotion that stopped half-way is finished or undone by `mlops audit reconcile`."
    )


def damaged_stores_message(damaged: dict[Any, str]) -> str:
    """The one message for store files found damaged before a command opened them."""
    listed = "; ".join(f"{path}: {problem}" for path, problem in damaged.items())
    return (
        f"a store of this checkout is damaged, so nothing was read or changed: {listed}. "
        "Decisions read the audit trail, ZenML's store and MLflow's. Restore the file (with its "
        "-wal file, if any) from a backup, then run `mlops audit verify` and `mlops check`."
    )


def missing_state_dir_message(path: Any) -> str:
    """The one message for an ``MLOPS_STATE_DIR`` that names no directory."""
    return (
        f"MLOPS_STATE_DIR={path} names no directory, so nothing was read or created. Every "
        "command other than `mlops setup` (and `mlops stack`, `mlops demo`) works on an existing "
        "state directory: correct the variable (a typo?), or run `mlops setup` to create a new "
        "state there."
    )


def stores_outside_state_message(state: Any, found: dict[str, Any]) -> str:
    """The one message for stores this state's ZenML configuration names outside it."""
    listed = "; ".join(f"{what}: {path}" for what, path in found.items())
    return (
        f"this state directory ({state}) names stores outside it, so nothing was read or "
        f"changed: {listed}. ZenML records absolute paths, so a state directory that was moved "
        "or copied still uses (or recreates) the original's stores. Move the directory back "
        "(or set MLOPS_STATE_DIR to the original); for a new state elsewhere, run `mlops setup` "
        "with MLOPS_STATE_DIR naming a new directory (docs/PLATFORM_GUIDE.md, Moving, backing "
        "up and restoring the state directory)."
    )


def missing_mlflow_message(path: Any) -> str:
    """The one message for the local MLflow store missing from a state whose trail has records."""
    return (
        f"the MLflow store {path} is missing, but this state's audit trail holds records about "
        "a model version, so it existed; nothing was read or changed (MLflow would create an empty one "
        "in its place). Restore it from a backup (with the rest of the state directory), then "
        "run `mlops audit verify` and `mlops check`."
    )


def unreachable_server_message(url: str, why: str) -> str:
    """The one message for a ZenML server URL that cannot be reached (exit 7)."""
    return (
        f"the ZenML server ZENML_STORE_URL={url} cannot be reached: {why}; nothing was read or "
        "changed. Correct the URL (a typo?), check the network, VPN or proxy settings or the "
        "server, or unset ZENML_STORE_URL to use this checkout's local store."
    )

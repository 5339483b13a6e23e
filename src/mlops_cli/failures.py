"""Map the project's known exceptions (raised directly or inside a pipeline step) to exit codes."""

from __future__ import annotations

from mlops_cli.errors import CliError, ExitCode


def _classify(error_class: type[BaseException] | None) -> ExitCode | None:
    from pydantic import ValidationError

    from mlops_platform.batch.reader import BatchInputError
    from mlops_platform.batch.results import ResultLocationError, ResultNotFoundError
    from mlops_platform.config import ConfigError
    from mlops_platform.expand import UnsetVariableError
    from mlops_platform.governance.approvals.github import EnvironmentNotProven, GitHubApiError
    from mlops_platform.governance.policy.evaluate import GateFailedError
    from mlops_platform.governance.promotion import PromotionDenied, PromotionTargetNotFound
    from mlops_platform.infra.code_repository import CodeRepositoryError
    from mlops_platform.infra.server import ServerError
    from mlops_platform.infra.stacks import StackFileError
    from mlops_platform.lineage import LineageNotFoundError
    from mlops_platform.steps.score_batch import ModelNotInStageError
    from mlops_platform.steps.validate_data import DataValidationError
    from mlops_platform.trust.artifacts import ModelFileIntegrityError, UntrustedModelError
    from mlops_platform.trust.audit import AuditError
    from mlops_platform.trust.identity import IdentityError, InvalidNameError
    from mlops_platform.trust.oidc import OidcError
    from readmission.core.data import DataError
    from readmission.core.schema import SchemaViolationError

    if error_class is None:
        return None
    table: tuple[tuple[tuple[type[BaseException], ...], ExitCode], ...] = (
        ((DataError, SchemaViolationError, DataValidationError), ExitCode.BAD_INPUT),
        ((GateFailedError,), ExitCode.GATE_FAILED),
        ((ConfigError, UnsetVariableError, StackFileError, ValidationError), ExitCode.CONFIG),
        ((CodeRepositoryError, ServerError), ExitCode.CONFIG),
        ((InvalidNameError,), ExitCode.BAD_INPUT),
        ((PromotionDenied, IdentityError, OidcError, EnvironmentNotProven), ExitCode.DENIED),
        ((PromotionTargetNotFound,), ExitCode.NOT_FOUND),
        ((GitHubApiError,), ExitCode.ERROR),
        ((AuditError,), ExitCode.AUDIT_BROKEN),
        ((ModelFileIntegrityError, UntrustedModelError), ExitCode.AUDIT_BROKEN),
        ((BatchInputError,), ExitCode.BAD_INPUT),
        ((ModelNotInStageError, LineageNotFoundError, ResultNotFoundError), ExitCode.NOT_FOUND),
        ((ResultLocationError,), ExitCode.USAGE),
    )
    for classes, code in table:
        if issubclass(error_class, classes):
            return code
    return None


def as_cli_error(error: Exception) -> CliError | None:
    """A CliError for a known failure, or None to let an unexpected error surface."""
    from mlops_platform.runtime.runner import GovernedRunFailed

    if isinstance(error, GovernedRunFailed):
        code = _classify(error.error_class()) or ExitCode.ERROR
        return CliError(
            f"run {error.run_name} stopped in step '{error.step}':\n{error.error_message}", code
        )
    code = _classify(type(error))
    return CliError(str(error), code) if code is not None else None

"""Shared data gate: every pipeline validates its input against a declared schema before using it."""

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.utils import source_utils

from mlops_platform.names import PlatformArtifact
from mlops_platform.runtime.run_context import GovernedContext


class DataValidationError(ValueError):
    """The input broke the schema; the message lists each failed rule with rows and values."""


@step
def validate_data(
    data: pd.DataFrame, validator: str
) -> Annotated[pd.DataFrame, PlatformArtifact.VALIDATED_DATA]:
    """`validator` is the import path of a callable that returns the frame or raises ValueError."""
    GovernedContext.from_environment()
    check = source_utils.load(validator)
    try:
        validated = check(data)
    except ValueError as error:
        failures = getattr(error, "failures", [])
        log_metadata(
            metadata={
                "data_validation": {
                    "passed": False,
                    "validator": validator,
                    "rows": len(data),
                    "failures": failures[:50],
                }
            }
        )
        raise DataValidationError(str(error)) from error
    log_metadata(
        metadata={"data_validation": {"passed": True, "validator": validator, "rows": len(data)}}
    )
    return validated

"""What a governed run prints on the console: its logs, without ZenML's step-failure report.

When a step fails, ZenML 0.98 logs it on the console three times: "Failed to run step" from the
step launcher, then "Step X failed." with the full traceback (`logger.exception` in the local
orchestrator), in ANSI colours on stdout. The run's caller gets the exception and reports it once
(the CLI: one message on stderr), so during a governed run the console handlers
(`ZenMLConsoleHandler`, and only those) drop ZenML's orchestration errors and print no traceback
of any record. The step's own logs (ZenML's log store, fed by a separate handler) keep everything,
traceback included. With MLOPS_DEBUG=1 (`mlops --verbose`) the console shows it all as ZenML does.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

DEBUG_ENV: Final = "MLOPS_DEBUG"
_ORCHESTRATION_LOGGERS: Final = ("zenml.orchestrators", "zenml.execution")


def debug_enabled() -> bool:
    """MLOPS_DEBUG=1 (set by `mlops --verbose`): tracebacks and ZenML's failure logs shown."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _DropStepFailureReports(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno >= logging.ERROR and record.name.startswith(_ORCHESTRATION_LOGGERS)
        )


class _WithoutTraceback(logging.Formatter):
    """Formats a record as `inner` does, minus its traceback (the record itself is unchanged)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            record = copy.copy(record)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return self._inner.format(record)


@contextmanager
def quiet_step_failures() -> Iterator[None]:
    """While a governed run executes: ZenML's console output without failure reports."""
    if debug_enabled():
        yield
        return
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    saved = [h.formatter for h in handlers]
    dropping = _DropStepFailureReports()
    for handler in handlers:
        handler.addFilter(dropping)
        handler.setFormatter(_WithoutTraceback(handler.formatter))
    try:
        yield
    finally:
        for handler, formatter in zip(handlers, saved, strict=True):
            handler.removeFilter(dropping)
            handler.setFormatter(formatter)  # type: ignore[arg-type]

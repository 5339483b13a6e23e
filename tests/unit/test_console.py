"""During a governed run the console drops ZenML's step-failure report; other handlers keep it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from zenml.logger import ZenMLConsoleHandler

from mlops_platform.runtime.console import DEBUG_ENV, quiet_step_failures


def _fail() -> None:
    raise ValueError("bad row 7")


def _log_a_step_failure() -> None:
    try:
        _fail()
    except ValueError:
        logging.getLogger("zenml.orchestrators.local.local_orchestrator").exception(
            "Step s failed."
        )
        logging.getLogger("mlops_platform.alerting").exception("ALERT: run r failed")


@pytest.fixture
def handlers() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    console_stream, store_stream = io.StringIO(), io.StringIO()
    console, store = ZenMLConsoleHandler(console_stream), logging.StreamHandler(store_stream)
    root = logging.getLogger()
    root.addHandler(console)
    root.addHandler(store)
    yield console_stream, store_stream
    root.removeHandler(console)
    root.removeHandler(store)


def test_the_console_shows_no_traceback_and_no_zenml_failure_report(
    handlers: tuple[io.StringIO, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    console, store = handlers
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with quiet_step_failures():
        _log_a_step_failure()
    assert "Step s failed." not in console.getvalue()
    assert "ALERT: run r failed" in console.getvalue()
    assert "Traceback" not in console.getvalue()
    # the other handler (ZenML's step logs are one) gets the records as logged
    assert store.getvalue().count("Traceback") == 2
    assert "Step s failed." in store.getvalue()

    _log_a_step_failure()  # after the run, the console is as ZenML set it up
    assert "Step s failed." in console.getvalue()


def test_debug_shows_everything(
    handlers: tuple[io.StringIO, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    console, _ = handlers
    monkeypatch.setenv(DEBUG_ENV, "1")
    with quiet_step_failures():
        _log_a_step_failure()
    assert "Step s failed." in console.getvalue()
    assert "Traceback" in console.getvalue()

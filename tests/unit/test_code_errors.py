"""An unexpected exception raised in the project's data-science code (src/readmission/) is one
message naming the exception and its file and line (exit 1, no traceback); one raised in the
platform's code stays a bug with its traceback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_cli.app import app
from mlops_cli.errors import ExitCode, as_cli_error
from mlops_platform.governance.check import _ancestors
from mlops_platform.runtime.runner import GovernedRunFailed
from readmission.core.history import HISTORY_COLUMNS, history_table


def _history_of_text() -> None:
    """Real data-science code failing inside pandas (int() of a text column)."""
    history_table(pd.DataFrame({column: ["not a number"] for column in HISTORY_COLUMNS}))


def _raised(call: object) -> Exception:
    with pytest.raises(Exception) as raised:
        call()  # type: ignore[operator]
    return raised.value


def test_an_error_in_data_science_code_names_its_file_and_line() -> None:
    error = _raised(_history_of_text)
    failure = as_cli_error(error)
    assert failure is not None and failure.code is ExitCode.ERROR
    message = str(failure)
    assert "data-science code" in message and "not in mlops" in message
    assert f"ValueError: {str(error).splitlines()[0]}" in message
    assert "src/readmission/core/history.py:" in message and "in history_table" in message
    assert "site-packages" not in message  # pandas' own frames are not named


def test_an_error_in_platform_code_stays_a_bug() -> None:
    assert as_cli_error(_raised(lambda: _ancestors({}, "missing"))) is None


def test_an_error_raised_in_the_test_itself_stays_a_bug() -> None:
    assert as_cli_error(_raised(lambda: {}["missing"])) is None


def test_a_step_error_recorded_by_zenml_names_the_data_science_line() -> None:
    recorded = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.11/site-packages/zenml/steps/base_step.py", line 757, in call\n'
        '  File "/app/src/readmission/steps/train_model.py", line 30, in train_baseline\n'
        '  File "/app/src/readmission/core/features.py", line 225, in _history\n'
        '  File "/usr/lib/python3.11/site-packages/pandas/core/frame.py", line 4330, in get\n'
        "KeyError: 'time_in_hospitl'\n"
    )
    failed = GovernedRunFailed(
        "run-1", "train_baseline", "builtins.KeyError", "'time_in_hospitl'", recorded
    )
    failure = as_cli_error(failed)
    assert failure is not None and failure.code is ExitCode.ERROR
    assert "run run-1 stopped in step 'train_baseline'" in str(failure)
    assert "KeyError: 'time_in_hospitl' at /app/src/readmission/core/features.py:225" in str(
        failure
    )
    assert "This is unexpected" not in str(failure)


def test_a_step_error_in_platform_code_stays_unexpected() -> None:
    recorded = (
        "Traceback (most recent call last):\n"
        '  File "/app/src/readmission/steps/train_model.py", line 30, in train_baseline\n'
        '  File "/app/src/mlops_platform/steps/register_model.py", line 99, in register\n'
        "KeyError: 'x'\n"
    )
    failed = GovernedRunFailed("run-1", "register_model", "builtins.KeyError", "'x'", recorded)
    failure = as_cli_error(failed)
    assert failure is not None and failure.code is ExitCode.ERROR
    assert "This is unexpected" in str(failure) and "data-science" not in str(failure)


@pytest.mark.parametrize("as_json", [False, True])
def test_the_cli_prints_one_message_without_traceback(
    monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    from mlops_cli import commands

    def findings_from_broken_feature_code() -> list[object]:
        _history_of_text()
        return []

    monkeypatch.setattr(commands, "governance_findings", findings_from_broken_feature_code)
    result = CliRunner().invoke(app, ["check", *(["--json"] if as_json else [])])
    assert result.exit_code == ExitCode.ERROR
    assert isinstance(result.exception, SystemExit)  # no exception escaped reports_errors
    assert "Traceback" not in result.stderr and "This is a bug" not in result.stderr
    assert "src/readmission/core/history.py:" in result.stderr
    if as_json:
        payload = json.loads(result.stdout)
        assert payload["exit_code"] == 1 and "history.py:" in payload["error"]


def test_a_step_error_re_raised_in_this_process_is_judged_by_its_traceback() -> None:
    cause = _raised(_history_of_text)
    failed = GovernedRunFailed("run-1", "collect", "builtins.ValueError", str(cause))
    failed.__cause__ = cause  # as run_governed raises it: `raise failure from error`
    failure = as_cli_error(failed)
    assert failure is not None and failure.code is ExitCode.ERROR
    assert "src/readmission/core/history.py:" in str(failure)

"""The exit-code table: every mapped class exists, subclasses inherit, docs and --help agree."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_cli.app import app
from mlops_cli.errors import (
    ERROR_EXIT_CODES,
    ERROR_HINTS,
    EXIT_CODE_MEANINGS,
    ExitCode,
    as_cli_error,
    class_path,
    exit_code_for,
)
from mlops_platform.batch.preflight import InputLimitError
from mlops_platform.batch.reader import BatchInputError
from mlops_platform.governance.policy.evaluate import GateFailedError
from mlops_platform.trust.audit.chain import AuditError

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("path", sorted(ERROR_EXIT_CODES))
def test_every_mapped_class_is_an_exception_defined_at_that_path(path: str) -> None:
    module, _, name = path.rpartition(".")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type) and issubclass(found, BaseException)
    assert class_path(found) == path  # named where it is defined, as the MRO lookup needs


def test_a_subclass_gets_the_code_of_its_nearest_mapped_ancestor() -> None:
    class ChainBroken(AuditError):
        pass

    assert exit_code_for(ChainBroken) is ExitCode.AUDIT_BROKEN
    assert exit_code_for(InputLimitError) is ExitCode.BAD_INPUT
    assert exit_code_for(GateFailedError) is ExitCode.GATE_FAILED
    assert exit_code_for(KeyError) is None
    assert exit_code_for(None) is None


def test_an_audit_error_is_reported_with_exit_8() -> None:
    failure = as_cli_error(AuditError("record 7 does not verify"))
    assert failure is not None and failure.code is ExitCode.AUDIT_BROKEN
    assert as_cli_error(RuntimeError("boom")) is None


def test_a_library_error_with_a_hint_keeps_its_own_words_and_says_what_to_do() -> None:
    from zenml.exceptions import AuthorizationException

    class ExpiredToken(AuthorizationException):
        pass

    failure = as_cli_error(ExpiredToken("Authentication error: token expired."))
    assert failure is not None and failure.code is ExitCode.DENIED
    assert "token expired" in str(failure) and "ZENML_STORE_API_KEY" in str(failure)
    assert not str(failure).count("..")
    # a hint only ever decorates a mapped class: it never turns an unmapped error into a known one
    assert set(ERROR_HINTS) <= set(ERROR_EXIT_CODES)


def test_every_exit_code_has_a_meaning_and_the_readme_table_matches() -> None:
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == {
        int(code): meaning for code, meaning in EXIT_CODE_MEANINGS.items()
    }


def test_help_prints_the_exit_code_table() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"{int(code)}  {meaning}" in result.stdout


def test_an_unexpected_error_says_it_is_a_bug_and_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_cli import commands

    def broken() -> list[object]:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(commands, "governance_findings", broken)
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)
    assert "This is a bug" in result.stderr


def test_a_known_error_is_one_message_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_cli import commands

    def bad_input() -> list[object]:
        raise BatchInputError("Input x.csv is empty (0 bytes).")

    monkeypatch.setattr(commands, "governance_findings", bad_input)
    # setenv, not delenv: `--verbose` below sets MLOPS_DEBUG in os.environ, and only a variable
    # monkeypatch recorded is removed again after the test (else later tests print tracebacks).
    monkeypatch.setenv("MLOPS_DEBUG", "0")
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == "error: Input x.csv is empty (0 bytes)."
    assert "Traceback" not in result.output

    verbose = CliRunner().invoke(app, ["--verbose", "check"])
    assert verbose.exit_code == ExitCode.BAD_INPUT
    assert "Traceback" in verbose.stderr


def test_output_to_a_pipe_keeps_long_lines_whole_and_plain(capsys: pytest.CaptureFixture) -> None:
    from rich.table import Table

    from mlops_cli.common import PIPE_WIDTH, make_console

    console = make_console()  # pytest's stdout is not a terminal
    assert console.width == PIPE_WIDTH
    sentence = "Scored 1,000 of 1,000 rows " + "with a long explanation " * 5
    console.print(f"[bold]{sentence}[/]")
    table = Table("metric", "model")
    table.add_row("a_rather_long_metric_name_" * 3, "0.1234")
    console.print(table)
    printed = capsys.readouterr().out
    assert sentence.strip() in printed  # not folded at 80 columns
    assert "a_rather_long_metric_name_" * 3 in printed
    assert "\x1b[" not in printed


def test_report_out_naming_a_file_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    """`mlops report --out x.html` made a directory called x.html (fresh-eyes review)."""
    target = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--out", str(target)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "names a file" in result.output and f"--out {tmp_path / 'report'}" in result.output
    assert not target.exists()

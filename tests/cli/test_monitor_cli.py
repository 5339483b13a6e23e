"""`mlops monitor outcomes` refuses bad input before any run starts: one line, exit code 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")


def test_a_missing_labels_file_is_bad_input(tmp_path: Path) -> None:
    result = invoke("monitor", "outcomes", "--labels", str(tmp_path / "none.csv"))
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "does not exist" in result.stderr and "Traceback" not in result.output


def test_an_unreadable_as_of_is_bad_input(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("encounter_id,readmitted\n1,NO\n", encoding="utf-8")
    result = invoke("monitor", "outcomes", "--labels", str(labels), "--as-of", "last month")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "--as-of 'last month' is not an ISO 8601" in result.stderr

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


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("", "empty"),
        ("encounter_id,readmitted\n", "no data rows"),
        ("encounter_id,outcome_value\n1,NO\n", "readmitted"),
        ("encounter_id,readmitted\n1,MAYBE\n", "MAYBE"),
    ],
    ids=["empty", "header-only", "no-outcome-column", "unknown-code"],
)
def test_a_bad_labels_file_is_refused_before_any_run(
    tmp_path: Path, content: str, named: str
) -> None:
    """Day-one review: an empty labels file was refused (exit 3) only after a pipeline started,
    an alert was raised and a `pipeline_failed` record written."""
    from zenml.client import Client

    labels = tmp_path / "labels.csv"
    labels.write_text(content, encoding="utf-8")
    result = invoke("monitor", "outcomes", "--labels", str(labels))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert named in result.stderr and "Traceback" not in result.output
    assert Client().list_pipeline_runs(size=1).total == 0  # no run started

"""A folder among batch results that is no result: `mlops lineage` and `mlops monitor outcomes`
name it in one message with exit 3, before any pipeline starts, and show no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.batch.results import ResultDirectory
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")

STRAY = "00000000-0000-0000-0000-000000000000"


def results_with_a_stray_folder(root: Path, manifest: str) -> Path:
    """A well-formed result and, beside it, a folder someone made by hand."""
    output = root / "results"
    ResultDirectory(output, "run-1").publish(
        {
            "inference_run_id": "run-1",
            "model": {"name": "m", "version": "1"},
            "contract": {"id_columns": ["encounter_id"], "score_column": "risk"},
            "timings": {"finished_at": "2030-01-01T00:00:00+00:00"},
        }
    )
    (output / STRAY).mkdir()
    (output / STRAY / "manifest.json").write_text(manifest, encoding="utf-8")
    (output / STRAY / "predictions.parquet").touch()
    return output


CASES = {"empty-object": ("{}\n", "no 'inference_run_id'"), "not-json": ("not json\n", "JSON")}


@pytest.mark.parametrize("case", list(CASES))
def test_lineage_names_a_folder_that_is_no_result(tmp_path: Path, case: str) -> None:
    """Insider review: KeyError 'timings' / JSONDecodeError traceback, exit 1."""
    manifest, named = CASES[case]
    output = results_with_a_stray_folder(tmp_path, manifest)
    result = invoke("lineage", "--predictions", str(output), "--encounter-id", "1")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "Traceback" not in result.output
    assert str(output / STRAY) in result.stderr.replace("\n", "")
    assert named in result.stderr
    as_json = invoke("lineage", "--predictions", str(output), "--encounter-id", "1", "--json")
    assert json.loads(as_json.stdout)["exit_code"] == ExitCode.BAD_INPUT


@pytest.mark.parametrize("case", list(CASES))
def test_outcome_monitoring_names_a_folder_that_is_no_result_before_any_run(
    tmp_path: Path, case: str
) -> None:
    from zenml.client import Client

    manifest, named = CASES[case]
    output = results_with_a_stray_folder(tmp_path, manifest)
    labels = tmp_path / "labels.csv"
    labels.write_text("encounter_id,readmitted\n1,NO\n", encoding="utf-8")
    result = invoke("monitor", "outcomes", "--labels", str(labels), "--predictions", str(output))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "Traceback" not in result.output
    assert str(output / STRAY) in result.stderr.replace("\n", "") and named in result.stderr
    assert Client().list_pipeline_runs(size=1).total == 0  # no run, alert or record

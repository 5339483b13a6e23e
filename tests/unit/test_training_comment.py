"""The staging PR comment shows the version, the metrics and every gate check, or the failure."""

from __future__ import annotations

import json
from pathlib import Path

from mlops_platform.reporting.training_comment import (
    MARKER,
    MAX_ERROR_LINES,
    METRICS,
    main,
    render,
)

SUMMARY = {
    "model_name": "patient_readmission_predictor",
    "model_version": "12",
    "run_name": "readmission_training-staging-abc",
    "environment": "staging",
    "data": {"source": "file", "location": "/data/x.csv", "rows": 100, "patients": 80},
    "metrics": {"split": "test", "roc_auc": 0.68123, "brier": 0.0951, "ece": 0.011},
    "baseline_metrics": {"roc_auc": 0.64},
    "gates": {
        "passed": False,
        "environment": "staging",
        "checks": [
            {
                "name": "min_roc_auc",
                "passed": True,
                "value": 0.68,
                "limit": 0.64,
                "comparison": ">=",
            },
            {"name": "max_ece", "passed": False, "value": 0.031, "limit": 0.02, "comparison": "<="},
        ],
    },
    "code": {"git_sha": "0123456789abcdef", "git_dirty": True},
}


def test_a_registered_run_shows_version_metrics_and_every_check() -> None:
    text = render(json.dumps(SUMMARY), [], "success", "https://github.com/o/r/actions/runs/1")
    assert text.startswith(MARKER)
    assert "version 12" in text
    assert "| roc_auc | 0.6812 | 0.6400 |" in text
    assert all(f"| {name} |" in text for name in METRICS)
    assert "| min_roc_auc | 0.6800 | >= 0.6400 | pass |" in text
    assert "| max_ece | 0.0310 | <= 0.0200 | **fail** |" in text
    assert "1 of 2 checks passed" in text
    assert "uncommitted changes" in text
    assert "actions/runs/1" in text


def test_a_failed_run_shows_the_last_error_lines() -> None:
    errors = [f"log line {i}" for i in range(100)] + ["error: Model gate failed (ece)"]
    text = render("", errors, "failure", None)
    assert "did not register a model" in text
    assert "error: Model gate failed (ece)" in text
    assert "log line 0\n" not in text
    assert text.count("log line") == MAX_ERROR_LINES - 1


def test_a_summary_from_a_failed_step_is_not_trusted() -> None:
    text = render(json.dumps(SUMMARY), ["boom"], "cancelled", None)
    assert "step outcome: cancelled" in text
    assert "version 12" not in text


def test_the_command_line_reads_missing_files_as_a_failure(tmp_path: Path, capsys: object) -> None:
    assert main(["--summary", str(tmp_path / "none.json"), "--outcome", "failure"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "(no error output)" in out

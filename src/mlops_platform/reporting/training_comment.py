"""The pull-request comment of a staging training run, rendered from `mlops train --json`.

The train-staging workflow writes the summary to a file and runs this module; a second job, the
only one allowed to write to the pull request, posts the result. Rendering is here, not in the
workflow, so that it is tested. A failed run has no summary: the comment then carries the CLI's
error lines (for a gate failure they name every failed check) and a link to the run.

    python -m mlops_platform.reporting.training_comment --summary training-summary.json \
        --errors training-errors.txt --outcome success --run-url URL > pr-comment.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MARKER = "<!-- readmission-mlops:training-summary -->"
METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision")
MAX_ERROR_LINES = 40


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _measured_on(summary: Mapping[str, Any]) -> str:
    evaluation = summary.get("evaluation") or {}
    if evaluation.get("sha256"):
        return (
            f"platform holdout, {evaluation.get('patients')} patients, sha256 "
            f"`{str(evaluation['sha256'])[:16]}`"
        )
    return f"{(summary.get('metrics') or {}).get('split', 'test')} split"


def render_summary(summary: Mapping[str, Any], run_url: str | None) -> str:
    """Markdown for a run that registered a model: version, data, metrics and every gate check."""
    gates = summary.get("gates") or {}
    passed = bool(gates.get("passed"))
    data = summary.get("data") or {}
    code = summary.get("code") or {}
    baseline = summary.get("baseline_metrics") or {}
    metrics = summary.get("metrics") or {}
    lines = [
        MARKER,
        f"### {'✅' if passed else '❌'} Staging training: {summary.get('model_name')} "
        f"version {summary.get('model_version')}",
        "",
        f"- Environment: `{summary.get('environment')}`, run `{summary.get('run_name')}`"
        + (f" ([workflow run]({run_url}))" if run_url else ""),
        f"- Data: {data.get('source')} `{data.get('location')}`, {data.get('rows')} rows, "
        f"{data.get('patients')} patients, sha256 `{str(data.get('sha256', ''))[:16]}`",
        f"- Code: `{str(code.get('git_sha', ''))[:12]}`"
        + (" (uncommitted changes)" if code.get("git_dirty") else ""),
        "",
        f"| metric ({_measured_on(summary)}) | model | baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {_number(metrics.get(k))} | {_number(baseline.get(k))} |" for k in METRICS]
    checks = gates.get("checks") or []
    lines += [
        "",
        f"**Gates ({gates.get('environment')}): {'passed' if passed else 'FAILED'}**, "
        f"{sum(1 for c in checks if c.get('passed'))} of {len(checks)} checks passed.",
        "",
        "| check | value | limit | result |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {c.get('name')} | {_number(c.get('value'))} | {c.get('comparison', '')} "
        f"{_number(c.get('limit'))} | {'pass' if c.get('passed') else '**fail**'} |"
        for c in checks
    ]
    return "\n".join(lines) + "\n"


def render_failure(outcome: str, errors: Sequence[str], run_url: str | None) -> str:
    """Markdown for a run that registered nothing (bad data, failed gate, error)."""
    shown = [line.rstrip() for line in errors if line.strip()][-MAX_ERROR_LINES:]
    lines = [
        MARKER,
        f"### ❌ Staging training did not register a model (step outcome: {outcome})",
        "",
        f"See the [workflow run]({run_url}) for the full log." if run_url else "",
        "",
        "```text",
        *(shown or ["(no error output)"]),
        "```",
    ]
    return "\n".join(lines) + "\n"


def render(summary_text: str, errors: Sequence[str], outcome: str, run_url: str | None) -> str:
    """The comment for the train step's outputs; a summary counts only if the step succeeded."""
    lines = [line for line in summary_text.splitlines() if line.strip()]
    if outcome == "success" and lines:
        return render_summary(json.loads(lines[-1]), run_url)
    return render_failure(outcome, errors, run_url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the staging training PR comment.")
    parser.add_argument("--summary", type=Path, required=True, help="`mlops train --json` output")
    parser.add_argument("--errors", type=Path, help="the train step's stderr")
    parser.add_argument("--outcome", required=True, help="the train step's outcome")
    parser.add_argument("--run-url", default=None, help="link to the workflow run")
    args = parser.parse_args(argv)
    summary = args.summary.read_text(encoding="utf-8") if args.summary.is_file() else ""
    errors = (
        args.errors.read_text(encoding="utf-8").splitlines()
        if args.errors and args.errors.is_file()
        else []
    )
    sys.stdout.write(render(summary, errors, args.outcome, args.run_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`mlops monitor outcomes`: join true outcomes to the served predictions and judge each version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mlops_cli.common import (
    Env,
    EnvOption,
    JsonOption,
    console_logs_on_stderr,
    emit,
    out,
    reports_errors,
)
from mlops_cli.errors import CliError, ExitCode
from mlops_platform.workspace import state_dir

DEFAULT_PREDICTIONS = "predictions"
REPORTS = "monitoring"

app = typer.Typer(help="Monitoring of the served model on true outcomes.", no_args_is_help=True)


@app.command("outcomes")
@reports_errors
def outcomes(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="CSV, CSV.gz or Parquet with encounter_id and readmitted (<30, >30, NO) or "
            "readmitted_30d (0/1); optional outcome_recorded_at, race, gender, age.",
        ),
    ],
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="The --output directory of `mlops infer` (or one result in it). "
            f"Default: $MLOPS_STATE_DIR/{DEFAULT_PREDICTIONS}.",
        ),
    ] = None,
    served_log: Annotated[
        list[Path] | None,
        typer.Option(
            "--served-log",
            help="Where real-time prediction-log parts are kept when they moved from where "
            "their service wrote them (repeat for several directories). Every part the audit "
            "trail records is judged, read from where it was written or from these; a recorded "
            "part found nowhere stops the check.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Judge as of this date or time (ISO 8601, UTC): later predictions and outcomes "
            "recorded later are left out. Default: now.",
        ),
    ] = None,
    env: EnvOption = Env.LOCAL,
    actor: Annotated[str | None, typer.Option(help="Who runs the check (default: you).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Realised performance per model version on true 30-day outcomes, with a verdict
    (ok, degraded or not assessed) that is audited, kept on the version and alerted when degraded.

    Exit code 0 whatever the verdict (read `verdict` in the JSON); 3 for a bad labels file.

    Example: mlops monitor outcomes --labels outcomes.csv --predictions results/ --json
    """
    if as_of is not None:
        _check_as_of(as_of)
    with console_logs_on_stderr(as_json):
        summary = run_outcome_check(env.value, labels, predictions, as_of, actor, served_log)
    emit(summary, as_json, lambda: print_outcomes(out, summary))


def _check_as_of(value: str) -> None:
    try:
        datetime.fromisoformat(value)
    except ValueError as error:
        raise CliError(
            f"--as-of {value!r} is not an ISO 8601 date or time; write e.g. 2026-03-01 or "
            "2026-03-01T12:00:00+00:00.",
            ExitCode.BAD_INPUT,
        ) from error


def run_outcome_check(
    env: str,
    labels: Path,
    predictions: Path | None,
    as_of: str | None,
    actor: str | None,
    served_log: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """Run the governed outcome-monitoring pipeline; write its report; return the summary."""
    from zenml.client import Client

    from mlops_cli.commands import ensure_stack
    from mlops_platform.batch.results import check_results
    from mlops_platform.monitoring.labels import LabelsFileError, preflight_labels
    from mlops_platform.runtime.runner import run_governed
    from mlops_platform.steps.check_outcomes import OutcomeArtifact, OutcomeRequest
    from mlops_platform.trust.identity import resolve_actor
    from readmission.pipelines.outcome_monitoring import (
        readmission_outcome_contract,
        readmission_outcome_monitoring,
    )

    if not labels.is_file():
        raise LabelsFileError(
            f"Labels file {labels} does not exist or is not a file; pass the CSV, CSV.gz or "
            "Parquet file of outcomes with --labels."
        )
    # A bad file is one message before any pipeline, alert or audit record (the run reads and
    # checks all of it again).
    preflight_labels(labels, readmission_outcome_contract())
    results = (predictions or state_dir() / DEFAULT_PREDICTIONS).expanduser().resolve()
    check_results(results)  # so is a folder among the results that is none (exit 3)
    request = OutcomeRequest(
        labels_path=str(labels.expanduser().resolve()),
        predictions_dir=str(results),
        served_log_dirs=tuple(
            str(d.expanduser().resolve())
            for d in (state_dir() / "prediction-log", *(served_log or ()))
        ),
        as_of=as_of,
    )
    who = resolve_actor(env, actor)
    ensure_stack()
    run = run_governed(readmission_outcome_monitoring, env, who, {"request": request})
    outputs = Client().get_pipeline_run(run.id).steps["check_outcomes"].outputs
    assessment = outputs[OutcomeArtifact.ASSESSMENT][0].load()
    report = state_dir() / REPORTS / f"{assessment['pipeline_run']}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(str(outputs[OutcomeArtifact.REPORT][0].load()), encoding="utf-8")
    return outcome_summary(assessment, report)


def outcome_summary(assessment: dict[str, Any], report: Path) -> dict[str, Any]:
    """The `--json` object: the verdict, per version the figures that decided it, the report."""
    from mlops_platform.steps.check_outcomes import version_summary

    return {
        "verdict": assessment["verdict"],
        "environment": assessment["environment"],
        "as_of": assessment["as_of"],
        "pipeline_run": assessment["pipeline_run"],
        "report": str(report),
        "labels": assessment["labels"],
        "predictions": {k: v for k, v in assessment["predictions"].items() if k != "batches"},
        "versions": [
            {
                **version_summary(v),
                "failed_checks": v["failed_checks"],
                "n_events": v["n_events"],
                "brier_ci": v["brier_ci"],
                "calibration_intercept": v["calibration_intercept"],
                "ece": v["ece"],
                "observed_rate": v["observed_rate"],
                "mean_predicted": v["mean_predicted"],
                "validation": v["validation"],
                "windows": [
                    {k: w[k] for k in ("window", "n_labelled", "roc_auc", "roc_auc_ci", "brier")}
                    for w in v["windows"]
                ],
                "subgroups": v["subgroups"],
                "notes": v["notes"],
                "recommendation": v["recommendation"],
            }
            for v in assessment["versions"]
        ],
        "thresholds_sha256": assessment["thresholds"]["sha256"],
    }


def print_outcomes(console: Console, summary: dict[str, Any]) -> None:
    labels = summary["labels"]
    console.print(
        f"Outcome check as of {summary['as_of']}: [bold]{summary['verdict']}[/]. "
        f"{labels['rows']:,} labels ({labels['n_unknown']:,} for encounters never served).",
        highlight=False,
    )
    for v in summary["versions"]:
        interval = v["roc_auc_ci"]
        auc = (
            f"ROC-AUC {v['roc_auc']:.3f}"
            + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
            if v["roc_auc"] is not None
            else "ROC-AUC n/a"
        )
        console.print(
            f"  version {v['model_version']}: {v['verdict']}; {v['n_labelled']:,} labelled, "
            f"{v['n_pending']:,} pending; {auc}",
            highlight=False,
        )
        for check in v["failed_checks"]:
            console.print(f"    [red]{check['name']}[/]: {check['detail']}", highlight=False)
        if v["recommendation"]:
            console.print(f"    [yellow]{v['recommendation']}[/]", highlight=False)
    console.print(f"Report: {summary['report']}", highlight=False)

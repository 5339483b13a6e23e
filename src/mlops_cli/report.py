"""`mlops report --out DIR`: the static governance report, archived as audit evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_cli.common import Env, EnvOption, JsonOption, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode
from mlops_platform.workspace import state_dir

REPORTS_FOLDER = "report"  # `mlops report --out .mlops/report`, as the README shows


@reports_errors
def report(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory that receives governance_report.html.")
    ],
    env: EnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Write one self-contained HTML governance report (versions, stages, gates, approvals,
    history, drift, realised performance on true outcomes, lineage of a sample prediction, audit
    verification), with the newest outcome report beside it.

    Example: mlops report --out .mlops/report --env local
    """
    from mlops_platform.batch.preflight import check_output_dir
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.reporting.governance_report import (
        OUTCOME_REPORT_FILE,
        gather_report,
        render_governance_report,
        write_report,
    )
    from readmission.names import MODEL_NAME

    if out_dir.suffix.lower() in {".html", ".htm"} and not out_dir.is_dir():
        raise CliError(
            f"--out {out_dir} names a file; --out is the directory that receives "
            f"governance_report.html. Pass --out {out_dir.parent / out_dir.stem}.",
            ExitCode.USAGE,
        )
    # Never among the platform's own files (keys, stores), except its reports folder.
    target = check_output_dir(
        out_dir,
        {"state directory": state_dir()},
        allowed=state_dir() / REPORTS_FOLDER,
        option="--out",
    )
    facts = gather_report(MODEL_NAME, env.value, load_platform_settings(env.value).audit.url)
    attachments = {OUTCOME_REPORT_FILE: facts.outcome_report} if facts.outcome_report else {}
    path = write_report(render_governance_report(facts), target, attachments)
    payload = {
        "report": str(path),
        "model_name": MODEL_NAME,
        "versions": len(facts.versions),
        "audit_records": facts.record_count,
        "audit_verified": facts.verification.ok,
        "outcome_report": str(path.parent / OUTCOME_REPORT_FILE) if attachments else None,
    }
    emit(payload, as_json, lambda: out.print(f"Governance report: {path}", highlight=False))

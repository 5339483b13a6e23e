"""What the CLI commands do, as plain functions (the notebook and tests may call them too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlops_platform.config import load_layered
from mlops_platform.expand import expand_env
from mlops_platform.infra.stacks import parse_stack_file, register_stack, stack_file
from mlops_platform.trust.identity import resolve_actor
from mlops_platform.workspace import state_dir

DATA_ENV = "READMISSION_DATA"


def _environ() -> dict[str, str]:
    return {"MLOPS_STATE_DIR": str(state_dir()), **os.environ}


def setup_stack(env: str) -> str:
    return register_stack(parse_stack_file(stack_file(env), _environ()))


def setup_local_keys() -> str:
    """Generate the local writer's signing key pair once; return its key id."""
    from mlops_platform.trust.signing import generate_local_keys

    return generate_local_keys(state_dir() / "keys")


def setup_local_trail() -> str:
    """Create the local audit trail once (`mlops audit init --env local`); return its location."""
    from mlops_platform.trust.events import init_trail

    trail = init_trail("local")
    trail.close()
    return trail.location


def ensure_stack() -> None:
    """A fresh checkout (only ZenML's default stack) gets the local stack; a chosen stack is kept."""
    from zenml.client import Client

    if Client().active_stack_model.name == "default":
        setup_stack("local")


def training_config(env: str, data: Path | None) -> Any:
    from readmission.config import TrainingConfig

    raw = expand_env(load_layered("training", env), _environ(), f"training.yaml[{env}]")
    config = TrainingConfig.model_validate(raw)
    chosen = data or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    if chosen is not None:
        data_settings = config.data.model_copy(update={"path": str(chosen.expanduser().resolve())})
        config = config.model_copy(update={"data": data_settings})
    return config


def train(env: str, data: Path | None, actor: str | None) -> dict[str, Any]:
    from mlops_platform.runtime.runner import run_governed
    from readmission.pipelines.training import readmission_training

    who = resolve_actor(env, actor)
    config = training_config(env, data)
    ensure_stack()
    run = run_governed(readmission_training, env, who, config.pipeline_parameters())
    return training_summary(run)


def training_summary(run: Any) -> dict[str, Any]:
    from zenml.client import Client

    version = Client().get_model_version(run.model_version.model.id, run.model_version.id)
    registration = version.run_metadata["registration"]
    return {
        "model_name": registration["model_name"],
        "model_version": registration["model_version"],
        "run_id": str(run.id),
        "run_name": run.name,
        "environment": registration["environment"],
        "data": registration["data"],
        "metrics": registration["metrics"],
        "baseline_metrics": version.run_metadata.get("baseline_metrics", {}),
        "gates": version.run_metadata.get("gate_decision", {}),
        "code": registration["code"],
        "mlflow": registration["mlflow"],
    }


def print_training_summary(console: Console, summary: dict[str, Any]) -> None:
    data = summary["data"]
    console.print(
        f"Model [bold]{summary['model_name']}[/] version [bold]{summary['model_version']}[/] "
        f"registered ({summary['environment']}), run {summary['run_name']}."
    )
    console.print(
        f"Data: {data['source']} {data['location']} — {data['rows']:,} rows, "
        f"{data['patients']:,} patients, sha256 {data['sha256'][:16]}…"
    )
    table = Table(
        title=f"Metrics on the patient-held-out {summary['metrics'].get('split', 'test')} split"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    for key in ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision"):
        base = summary["baseline_metrics"].get(key)
        table.add_row(
            key,
            f"{summary['metrics'][key]:.4f}",
            f"{base:.4f}" if isinstance(base, int | float) else "-",
        )
    console.print(table)


def governance_findings() -> list[Any]:
    from zenml.client import Client

    from mlops_platform.governance.check import (
        check_configs,
        check_pipeline,
        check_stage_mirror,
        discover_pipelines,
        trail_findings,
    )
    from mlops_platform.runtime import tracking
    from readmission.names import MODEL_NAME

    findings = check_configs()
    parameters = training_config("local", None).pipeline_parameters()
    packages = load_layered("platform", "local")["governance"]["pipeline_packages"]
    for pipeline in discover_pipelines(packages):
        findings.extend(check_pipeline(pipeline, parameters))
    # A fresh checkout has no model (and maybe no stack): nothing to compare, nothing to load.
    if Client().list_models(name=MODEL_NAME, size=1).total:
        uri = tracking.stack_tracking_uri()
        if uri:
            findings.extend(check_stage_mirror(MODEL_NAME, uri))
        out_of_band = trail_findings(MODEL_NAME)
        if out_of_band:
            alert_findings(out_of_band)
        findings.extend(out_of_band)
    return findings


def alert_findings(findings: list[Any]) -> None:
    """Out-of-band changes are a detective control: each one is alerted, not only printed."""
    from mlops_platform.alerting import send_alert
    from mlops_platform.infra.settings import load_platform_settings

    webhook = load_platform_settings("local").alerting.webhook_env
    for finding in findings:
        send_alert(f"mlops check: {finding}", webhook)


def print_findings(console: Console, findings: list[Any]) -> None:
    if not findings:
        console.print(
            "Governance check passed: every model pipeline is gated, every policy complete."
        )
    for finding in findings:
        console.print(f"[red]✗[/] {escape(str(finding))}", highlight=False)

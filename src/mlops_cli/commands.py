"""What the CLI commands do, as plain functions (the notebook and tests may call them too)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlops_platform.config import (
    deep_merge,
    layer_files,
    load_layered,
    read_mapping,
    validation_issues,
)
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
    from mlops_platform.trust.events import open_or_init_trail
    from mlops_platform.trust.identity import bind_project_accounts
    from readmission.names import MODEL_NAME

    # Never a new, empty trail where the model's records were written to another (exit 8).
    trail = open_or_init_trail("local", MODEL_NAME)
    trail.close()
    bind_project_accounts()  # accounts `mlops server start` made before the trail existed
    return trail.location


def ensure_stack() -> None:
    """A fresh checkout (only ZenML's default stack) gets the local stack; a chosen stack is kept."""
    from zenml.client import Client

    from mlops_platform.trust.stored import guard_artifact_loads

    guard_artifact_loads()  # ZenML loads no artifact with a materializer that runs code
    if Client().active_stack_model.name == "default":
        setup_stack("local")


def training_config(env: str, data: Path | None, overrides: Sequence[str] = ()) -> Any:
    """The environment's training settings, plus `--set SECTION.KEY=VALUE` overrides.

    Each file is checked on its own first, so an unknown key names the file it is in.
    """
    from pydantic import ValidationError

    from readmission.config import (
        TrainingConfig,
        TrainingConfigError,
        check_keys,
        parse_overrides,
    )

    for path in layer_files("training", env):
        check_keys(read_mapping(path), str(path))
    layered = deep_merge(load_layered("training", env), parse_overrides(overrides))
    raw = expand_env(layered, _environ(), f"training.yaml[{env}]")
    try:
        config = TrainingConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(validation_issues(error)).rstrip(".")
        raise TrainingConfigError(
            f"training settings for {env} are invalid: {problems}. Fix the value in "
            f"configs/*/training.yaml or in --set SECTION.KEY=VALUE (readmission/core/params.py "
            "types and bounds each setting)."
        ) from error
    chosen = data or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    if chosen is not None:
        # A given file is read as it is: no fallback to synthetic data applies, so that setting
        # (the only one environments set differently) is dropped. The data steps' parameters,
        # and so their cache key, are then the same in every environment: a promotion reuses
        # the data steps training ran on the same bytes.
        data_settings = config.data.model_copy(
            update={"path": str(chosen.expanduser().resolve()), "allow_synthetic": False}
        )
        config = config.model_copy(update={"data": data_settings})
    return config


def check_training_data(config: Any) -> None:
    """Refuse a bad training file in seconds, before a pipeline starts (a download or synthetic
    data is checked by the pipeline itself)."""
    from mlops_platform.batch.preflight import InputRules, check_input_once
    from readmission.input_rules import TRAINING_READER, TRAINING_VALIDATOR

    if config.data.path:
        check_input_once(
            Path(config.data.path), InputRules(TRAINING_READER, TRAINING_VALIDATOR), allow_zip=True
        )


def check_operating_threshold(env: str, config: Any) -> None:
    """Refuse, before anything is trained, an operating threshold the gate of ``env`` would
    refuse after training (the same rule: `policy.evaluate.evaluate_operating_threshold`)."""
    from mlops_platform.governance.policy.evaluate import evaluate_operating_threshold
    from mlops_platform.governance.policy.models import load_policy
    from readmission.config import TrainingConfigError

    threshold = config.evaluation.operating_threshold
    failed = [
        check
        for check in evaluate_operating_threshold(threshold, load_policy(env))
        if not check.passed
    ]
    if failed:
        raise TrainingConfigError(
            f"evaluation.operating_threshold = {threshold} is outside the {env} policy's "
            "operating_threshold range: "
            + "; ".join(f"it must be {c.comparison} {c.limit}" for c in failed)
            + ". The gate would refuse the model after training, so nothing was trained; set "
            "it inside the range (configs/*/training.yaml or --set), or change the range in "
            "configs/*/policy.yaml through the platform team."
        )


def check_approved_data(env: str, config: Any) -> None:
    """Refuse, before anything is trained, a data file the gate of ``env`` would refuse after
    training: with an approved list (`evaluation_data.approved_file_sha256`), the SHA-256 of the
    file's bytes, hashed as the run's copy is (`provenance.snapshot_data_file`), must be on it;
    a run without a file (a download, synthetic rows) has no hashed file (the same rule:
    `policy.evaluate.unapproved_data_problem`). The gate still checks the run's own copy."""
    import hashlib

    from mlops_platform.governance.policy.evaluate import unapproved_data_problem
    from mlops_platform.governance.policy.models import load_policy

    approved = load_policy(env).evaluation_data.approved_file_sha256
    if env == "local" or not approved:
        return
    path = Path(config.data.path) if config.data.path else None
    sha256 = None
    if path is not None and path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as reader:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
        sha256 = digest.hexdigest()
    problem = unapproved_data_problem(env, approved, {"this run's data file": sha256})
    if problem:
        from mlops_platform.steps.validate_model import DataSourceRefused  # imports ZenML

        raise DataSourceRefused(f"Refused before training: {problem}.")


def train(
    env: str, data: Path | None, actor: str | None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    config = training_config(env, data, overrides)
    check_operating_threshold(env, config)
    # A bad file is refused in seconds, before identity (which may ask a ZenML server) or ZenML.
    check_training_data(config)
    check_approved_data(env, config)
    who = resolve_actor(env, actor)

    from mlops_platform.runtime.runner import run_governed
    from readmission.pipelines.training import readmission_training

    ensure_stack()
    tags = {"overrides": "; ".join(overrides)} if overrides else None
    run = run_governed(readmission_training, env, who, config.pipeline_parameters(), tags)
    summary = training_summary(run)
    summary["overrides"] = list(overrides)
    return summary


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
        "data_origin": (run.config.extra or {}).get("data_origin"),
        "metrics": registration["metrics"],
        "baseline_metrics": registration.get("baseline_metrics") or {},
        "reported_metrics": registration.get("reported_metrics", {}),
        "evaluation": registration.get("evaluation"),
        "gates": version.run_metadata.get("gate_decision", {}),
        "champion": version.run_metadata.get("champion", {}),
        "code": registration["code"],
        "mlflow": registration["mlflow"],
    }


def print_training_summary(console: Console, summary: dict[str, Any]) -> None:
    data = summary["data"]
    console.print(
        f"Model [bold]{summary['model_name']}[/] version [bold]{summary['model_version']}[/] "
        f"registered ({summary['environment']}), run {summary['run_name']}."
    )
    given = summary.get("data_origin")
    read = (
        f"{given} (read from the platform's copy {data['location']})" if given else data["location"]
    )
    console.print(
        f"Data: {data['source']} {read} — {data['rows']:,} rows, "
        f"{data['patients']:,} patients, sha256 {data['sha256'][:16]}…"
    )
    evaluation = summary.get("evaluation") or {}
    table = Table(
        title=f"Gate metrics on the platform holdout ({evaluation.get('patients', 0):,} patients, "
        f"sha256 {str(evaluation.get('sha256', ''))[:16]}…)"
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
    print_gate_and_champion(console, summary)


def print_gate_and_champion(console: Console, summary: dict[str, Any]) -> None:
    """The gate's checks, and the comparison with the version that held the champion stage."""
    from mlops_cli.policy import print_checks

    gates = summary.get("gates") or {}
    if gates.get("checks"):
        verdict = "passed" if gates.get("passed") else "failed"
        console.print(f"Gate ({gates.get('environment', summary['environment'])}): {verdict}")
        print_checks(gates["checks"], console)
    champion = summary.get("champion") or {}
    holder = champion.get("model_version")
    if not holder or holder == "none":
        console.print(
            f"No version held {champion.get('stage', 'production')} to compare with: "
            "this version was judged on the absolute gates only."
        )
        return
    table = Table(title=f"Compared with version {holder} ({champion.get('stage')}), same patients")
    for column in ("metric", f"v{summary['model_version']}", f"v{holder}", "difference"):
        table.add_column(column, justify="right")
    for key in ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision"):
        mine, theirs = summary["metrics"].get(key), champion.get(key)
        if isinstance(mine, int | float) and isinstance(theirs, int | float):
            table.add_row(key, f"{mine:.4f}", f"{theirs:.4f}", f"{mine - theirs:+.4f}")
    console.print(table)


def governance_findings() -> list[Any]:
    from zenml.client import Client

    from mlops_platform.governance.check import (
        check_composition,
        check_configs,
        check_data_schemas,
        check_gates_upstream,
        check_pipeline,
        check_stage_mirror,
        discover_pipelines,
        missing_model_finding,
        reusable_step_findings,
        trail_findings,
    )
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.runtime import tracking
    from readmission.names import MODEL_NAME

    findings = check_configs()
    parameters = training_config("local", None).pipeline_parameters()
    packages = load_layered("platform", "local")["governance"]["pipeline_packages"]
    steps: set[str] = set()
    all_composed = True
    for pipeline in discover_pipelines(packages):
        composition = check_composition(pipeline, parameters)
        findings.extend(composition)
        if any(f.rule == "pipeline-composition" for f in composition):
            all_composed = False  # no graph to check: the finding says what to fix first
            continue
        findings.extend(check_pipeline(pipeline, parameters))
        steps |= set(pipeline.invocations)
        findings.extend(check_gates_upstream(pipeline, parameters))
        findings.extend(check_data_schemas(pipeline, parameters))
    if all_composed:  # else the steps of a pipeline are unknown: no reusable name is judged
        reusable = load_platform_settings("local").caching.reusable_steps
        findings.extend(reusable_step_findings(reusable, steps))
    # The verified trail decides which models must exist: one it records that ZenML lacks (renamed
    # or deleted by any ZenML user) is a finding, not a fresh checkout with nothing to compare.
    missing = missing_model_finding(MODEL_NAME)
    if missing is not None:
        alert_findings([missing])
        findings.append(missing)
    # A fresh checkout has no model (and maybe no stack): nothing to compare, nothing to load.
    elif Client().list_models(name=MODEL_NAME, size=1).total:
        uri = tracking.stack_tracking_uri()
        out_of_band = trail_findings(MODEL_NAME)
        if uri:
            findings.extend(after_reconcile(check_stage_mirror(MODEL_NAME, uri), out_of_band))
        if out_of_band:
            alert_findings(out_of_band)
        findings.extend(out_of_band)
    return findings


def after_reconcile(mirror: list[Any], out_of_band: list[Any]) -> list[Any]:
    """MLflow's aliases follow ZenML's holders; while a ZenML holder disagrees with the trail
    (`stage-vs-trail`), the alias may be the side that is right: say to reconcile first rather
    than to move the alias to ZenML's holder."""
    from dataclasses import replace

    if not any(f.rule == "stage-vs-trail" for f in out_of_band):
        return mirror
    return [
        replace(
            finding,
            message="ZenML's holder disagrees with the audit trail (see stage-vs-trail): run "
            "`mlops audit reconcile` first; it restores ZenML's holder and the alias with it. "
            f"Then: {finding.message}",
        )
        for finding in mirror
    ]


def alert_findings(findings: list[Any]) -> None:
    """Out-of-band changes are a detective control: each one is alerted, not only printed."""
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.runtime.alerting import send_alert

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

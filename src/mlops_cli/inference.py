"""`mlops infer` and `mlops lineage`: score a file with the model of a stage, and trace a prediction."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from mlops_cli.common import (
    Env,
    EnvOption,
    JsonOption,
    console_logs_on_stderr,
    emit,
    out,
    reports_errors,
)
from mlops_platform.workspace import state_dir

DEFAULT_OUTPUT = "predictions"


class Stage(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


@reports_errors
def infer(
    input_path: Annotated[
        Path, typer.Option("--input", help="CSV, CSV.gz or Parquet file of encounters to score.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Directory of results; each run adds <output>/<run id>/. "
            f"Default: $MLOPS_STATE_DIR/{DEFAULT_OUTPUT}.",
        ),
    ] = None,
    stage: Annotated[
        Stage, typer.Option(help="Stage whose model version scores the batch.")
    ] = Stage.PRODUCTION,
    chunk_rows: Annotated[
        int, typer.Option(min=100, max=1_000_000, help="Rows read, validated and scored at once.")
    ] = 50_000,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Score only shard i of n (rows whose encounter_id hashes to i), e.g. 0/4."
        ),
    ] = None,
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Set rows that break a row rule aside in quarantine.parquet and score the rest.",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=8, help="Chunks scored at once (threads).")
    ] = 2,
    env: EnvOption = Env.LOCAL,
    actor: Annotated[str | None, typer.Option(help="Who starts the run (default: you).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score encounters with the model version that holds STAGE, with drift monitoring.

    Results go to a new directory <output>/<run id>/ (predictions.parquet, manifest.json,
    drift_report.html, and quarantine.parquet with --quarantine), published only when complete.
    Bad input stops the run with the column, rule and rows, and writes nothing. A drifted batch
    is still scored; drift is reported, audited and alerted.

    A patient's history features (prior encounters and visits) come from that patient's earlier
    encounters known at training time (the version's patient_history) and earlier ones in the
    same chunk; encounters that arrived after training are not seen.

    Example: mlops infer --input new_encounters.csv.gz --output results/ --json
    """
    with console_logs_on_stderr(as_json):
        summary = run_batch_inference(
            env.value,
            input_path,
            output,
            stage.value,
            chunk_rows,
            shard,
            quarantine,
            workers,
            actor,
        )
    emit(summary, as_json, lambda: print_inference_summary(out, summary))


@reports_errors
def lineage(
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="A result directory (<output>/<run id>) or the --output of mlops infer; with "
            "--request-id, the prediction log (default: $MLOPS_STATE_DIR/prediction-log)."
        ),
    ] = None,
    encounter_id: Annotated[
        str | None, typer.Option(help="encounter_id of the batch prediction to trace.")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="request_id of a real-time answer (mlops serve).")
    ] = None,
    env: Annotated[
        Env,
        typer.Option(
            "--env",
            help="With --request-id: the environment whose audit trail recorded the service's "
            "log parts when it stopped (the --env of `mlops serve start`).",
        ),
    ] = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Trace one prediction: inference run, model version and stage, training run and data, code,
    and the approvals and promotions of that version.

    Example: mlops lineage --predictions results/ --encounter-id 2278392

    Example: mlops lineage --request-id 6f0c2a9e-5b1d-4c1e-9a43-2f7d8e0b1c55
    """
    from mlops_cli.errors import CliError, ExitCode

    if (encounter_id is None) == (request_id is None):
        raise CliError(
            "Give either --encounter-id (with --predictions, a batch result) or --request-id "
            "(a real-time answer), not both or neither.",
            ExitCode.BAD_INPUT,
        )
    if request_id is not None:
        from mlops_cli.serve import DEFAULT_LOG
        from mlops_platform.reporting.lineage import trace_request

        traced = trace_request(predictions or state_dir() / DEFAULT_LOG, request_id, env.value)
        emit(traced, as_json, lambda: print_request_lineage(traced))
        return
    if predictions is None:
        raise CliError(
            "--encounter-id needs --predictions (the --output of mlops infer).", ExitCode.BAD_INPUT
        )
    from mlops_platform.reporting.lineage import trace_prediction

    chain = trace_prediction(predictions, encounter_id).as_dict()
    emit(chain, as_json, lambda: print_lineage(out, chain))


def print_request_lineage(traced: dict[str, Any]) -> None:
    version = traced["model_version"]
    out.print(
        f"[bold]Request {traced['request_id']}[/bold]: {len(traced['predictions'])} prediction(s) "
        f"by {version['name']} version {version['version']} ({version['stage_at_scoring']}), "
        f"{len(traced['shadow_predictions'])} shadow score(s) logged"
    )
    for prediction in [*traced["predictions"], *traced["shadow_predictions"]]:
        score = next(
            (v for k, v in prediction.items() if k.endswith("_risk") and isinstance(v, float)),
            None,
        )
        role = "shadow" if prediction.get("shadow") else "served"
        out.print(
            f"  {role}: encounter {prediction.get('encounter_id')}, risk "
            f"{'?' if score is None else f'{score:.3f}'} ({prediction.get('risk_band')}) by "
            f"version {prediction.get('model_version')} ({prediction.get('model_stage')}), "
            f"scored {prediction.get('scored_at')}, log part {prediction.get('log_part')} "
            "(recorded in the audit trail when the service stopped)"
        )
    for event in traced["service"]:
        out.print(f"  service: {event['event_type']} by {event['actor']} at {event['recorded_at']}")
    code = traced.get("code") or {}
    data = traced.get("training_data") or {}
    out.print(
        f"  code: git {code.get('git_sha', '?')}"
        f"{' (uncommitted changes)' if code.get('git_dirty') else ''}; training data: "
        f"{data.get('rows', '?')} rows, content sha256 {str(data.get('sha256', '?'))[:16]}…"
    )
    for event in traced["governance"]:
        out.print(f"  {event['recorded_at']} {event['event_type']} by {event['actor']}")


def run_batch_inference(
    env: str,
    input_path: Path,
    output: Path | None,
    stage: str,
    chunk_rows: int,
    shard: str | None,
    quarantine: bool,
    workers: int,
    actor: str | None,
) -> dict[str, Any]:
    """Check the input and output, resolve the stage, run the governed batch-inference pipeline
    and summarise its manifest. Bad input is refused before ZenML is imported."""
    from mlops_platform.batch.contract import BatchRequest
    from mlops_platform.batch.preflight import check_input, check_output_dir, parse_shard

    parsed_shard = parse_shard(shard)
    default_output = state_dir() / DEFAULT_OUTPUT
    output_dir = check_output_dir(
        output or default_output, {"state directory": state_dir()}, allowed=default_output
    )
    check_input(input_path, scoring_rules(quarantine))

    from zenml import Model

    from mlops_cli.commands import ensure_stack, training_config
    from mlops_platform.batch.contract import BatchArtifact
    from mlops_platform.runtime.runner import run_governed
    from mlops_platform.trust.identity import resolve_actor
    from readmission.names import MODEL_NAME
    from readmission.pipelines.batch_inference import readmission_batch_inference

    who = resolve_actor(env, actor)
    request = BatchRequest(
        input_path=str(input_path.expanduser().resolve()),
        output_dir=str(output_dir),
        stage=stage,
        chunk_rows=chunk_rows,
        shard=parsed_shard,
        quarantine=quarantine,
        workers=workers,
    )
    evaluation = training_config(env, None).evaluation
    ensure_stack()
    check_output_dir(output_dir, artifact_store_places(), allowed=default_output)
    holder = stage_holder(MODEL_NAME, stage)
    pipeline = readmission_batch_inference.with_options(model=Model(name=MODEL_NAME, version=stage))
    run = run_governed(
        pipeline,
        env,
        who,
        {"scoring": request, "evaluation": evaluation},
        run_tags={"stage": stage, "model_version": holder},
    )
    return inference_summary(_output(run.id, BatchArtifact.MANIFEST))


def scoring_rules(quarantine: bool) -> Any:
    """Readmission's reader and validator (with --quarantine: only problems of the whole file)."""
    from mlops_platform.batch.preflight import InputRules
    from readmission.input_rules import SCORING_INVALID_ROWS, SCORING_READER, SCORING_VALIDATOR

    return InputRules(SCORING_READER, SCORING_INVALID_ROWS if quarantine else SCORING_VALIDATOR)


def artifact_store_places() -> dict[str, Path]:
    """The active stack's artifact store, when it is a local directory results must stay out of."""
    from zenml.client import Client

    store = Client().active_stack.artifact_store.path
    return {} if "://" in store else {"artifact store": Path(store)}


def stage_holder(model_name: str, stage: str) -> str:
    """Number of the version holding `stage`; a clear error telling how to promote one."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    from mlops_platform.governance.model_stages import require_recorded_stage
    from mlops_platform.steps.score_batch import HOW_TO_PROMOTE, ModelNotInStageError

    try:
        holder = Client().get_model_version(model_name, ModelStages(stage)).name
    except KeyError as error:
        # Emptied outside the platform (exit 9, with how to restore it), not "promote one".
        require_recorded_stage(model_name, stage)
        raise ModelNotInStageError(
            f"No version of model {model_name} holds the stage '{stage}', so there is nothing to "
            "score with. " + HOW_TO_PROMOTE.format(stage=stage, model=model_name)
        ) from error
    require_recorded_stage(model_name, stage)  # before any run starts (the step checks again)
    return holder


def _output(run_id: Any, name: str) -> Any:
    from zenml.client import Client

    run = Client().get_pipeline_run(run_id)
    return run.steps["score_batch"].outputs[name][0].load()


def inference_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The `--json` object: where the results are, what scored them and whether the batch drifted."""
    files = manifest["files"]
    return {
        "output_dir": manifest["output_dir"],
        "inference_run_id": manifest["inference_run_id"],
        "model_name": manifest["model"]["name"],
        "model_version": manifest["model"]["version"],
        "model_stage": manifest["model"]["stage"],
        "environment": manifest["environment"],
        "input_path": manifest["input"]["path"],
        "input_sha256": manifest["input"]["sha256"],
        "rows_read": manifest["rows"]["read"],
        "rows_scored": manifest["rows"]["scored"],
        "rows_rejected": manifest["rows"]["rejected"],
        "rows_high_risk": manifest["rows"]["high_risk"],
        "rejected_by_rule": manifest["rows"]["rejected_by_rule"],
        "shard": manifest["shard"],
        "quarantine_file": (
            str(Path(manifest["output_dir"]) / "quarantine.parquet")
            if "quarantine.parquet" in files
            else None
        ),
        "drift_detected": manifest["drift"]["detected"],
        "drift_assessed": not manifest["drift"].get("insufficient_data", False),
        "drift_reasons": manifest["drift"]["reasons"],
        "drift": manifest["drift"]["metrics"],
        "timings": manifest["timings"],
    }


def print_inference_summary(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"Scored [bold]{summary['rows_scored']:,}[/] of {summary['rows_read']:,} rows with "
        f"{summary['model_name']} version [bold]{summary['model_version']}[/] "
        f"({summary['model_stage']}); {summary['rows_high_risk']:,} high risk.",
        highlight=False,
    )
    console.print(f"Results: {summary['output_dir']}", highlight=False)
    if summary["rows_rejected"]:
        console.print(
            f"[yellow]{summary['rows_rejected']:,} rows set aside[/] in "
            f"{summary['quarantine_file']}: {summary['rejected_by_rule']}",
            highlight=False,
        )
    if summary["drift_detected"]:
        console.print("[bold red]Drift detected:[/] " + "; ".join(summary["drift_reasons"]))
    elif not summary["drift_assessed"]:
        # Not "no drift": too few rows to judge (a small batch, or one shard of a large one).
        console.print(
            "[yellow]Drift not assessed:[/] "
            + "; ".join(summary["drift_reasons"])
            + " Judge drift on the whole batch (without --shard, or with fewer shards).",
            highlight=False,
        )
    else:
        console.print("No drift detected.")


def print_lineage(console: Console, chain: dict[str, Any]) -> None:
    row, run, version = chain["prediction"], chain["inference_run"], chain["model_version"]
    tree = Tree(
        f"prediction {chain['key_column']} {row[chain['key_column']]}: "
        f"{chain['score_column']} {row[chain['score_column']]:.3f} ({row['risk_band']}), "
        f"scored {row['scored_at']} in {chain['result_dir']}"
    )
    node = tree.add(
        f"inference run {run.get('name', run['id'])} ({run['environment']}, by {run['actor']}); "
        f"input {run['input']['path']} sha256 {run['input']['sha256'][:16]}…"
    )
    scoring = run.get("scoring_code") or {}
    trained = chain.get("code") or {}
    if scoring.get("git_sha"):
        differs = trained.get("git_sha") and scoring["git_sha"] != trained.get("git_sha")
        node.add(
            f"scoring code: git {scoring['git_sha']}"
            f"{' (dirty)' if scoring.get('git_dirty') else ''}"
            + (" (not the training commit below: feature code may have changed)" if differs else "")
        )
    node = node.add(
        f"model {version['name']} version {version['version']}: stage '{version['stage_at_scoring']}'"
        f" when scored, '{version['stage_now']}' now; tags {', '.join(version['tags']) or '-'}"
    )
    model_file = version.get("model_file") or {}
    node.add(
        f"model file sha256 {(model_file.get('sha256') or 'unknown')[:16]}…, signed by key "
        f"{model_file.get('key_id') or 'none'}: {model_file.get('status', 'unknown')} in "
        f"{model_file.get('verified_in', '?')}"
        + (f" ({model_file['problem']})" if model_file.get("problem") else "")
    )
    context = version.get("context_artifact")
    if context:
        node.add(f"scored with {context['name']} version {context['version']} ({context['id']})")
    training, data, code = chain["training_run"], chain["training_data"], chain["code"]
    node = node.add(
        f"training run {training['name']} ({training['status']}, {training['created']})"
        if training
        else "training run: unknown"
    )
    if data:
        node.add(
            f"training data: {data['source']} {data['location']}, {data['rows']:,} rows, "
            f"sha256 {data['sha256'][:16]}…"
        )
    repository = code.get("code_repository")
    node.add(
        f"code: git {code.get('git_sha', 'unknown')}{' (dirty)' if code.get('git_dirty') else ''}"
        + (
            f", ZenML code repository {repository['name']} @ {repository['commit']}"
            if repository
            else ""
        )
    )
    events = node.add(f"governance events ({len(chain['governance'])})")
    for event in chain["governance"]:
        events.add(
            f"{event['recorded_at']} {event['event_type']} by {event['actor']}"
            + (f" (stage {event['stage']})" if event["stage"] else "")
        )
    console.print(tree, highlight=False)
    for note in chain["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)

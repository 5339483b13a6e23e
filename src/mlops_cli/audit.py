"""`mlops audit init`, `log` and `verify`: create, read and check the signed, hash-chained trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlops_cli.common import Env, JsonOption, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode

app = typer.Typer(
    name="audit",
    help="The governance audit trail: every training, gate, approval, promotion and rollback.",
    no_args_is_help=True,
)

AuditEnvOption = Annotated[
    Env,
    typer.Option("--env", help="Environment whose audit store is read (configs/*/platform.yaml)."),
]


def _store(env: str) -> tuple[Any, str]:
    """The environment's trail (with its trusted keys) and its URL without password."""
    from mlops_platform.trust.events import audit_trail

    trail = audit_trail(env, write=False)
    return trail, trail.location


@app.command("init")
@reports_errors
def init(env: AuditEnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Create ENV's audit trail (idempotent); the only way a trail starts.

    A write or read against a missing trail fails (exit 8) instead of starting a new, empty chain.
    `mlops setup` runs this for the local environment.

    Example: mlops audit init --env staging
    """
    from mlops_platform.trust.events import open_or_init_trail
    from readmission.names import MODEL_NAME

    # A trail other than the one the model's records were written to is not "ready" (exit 8).
    trail = open_or_init_trail(env.value, MODEL_NAME)
    try:
        payload = {"environment": env.value, "store": trail.location, "records": trail.count()}
    finally:
        trail.close()
    from mlops_platform.trust.identity import bind_project_accounts

    bind_project_accounts()  # accounts `mlops server start` made before this trail existed
    emit(
        payload,
        as_json,
        lambda: out.print(
            f"Audit trail of {env.value} ready ({payload['store']}, {payload['records']} records).",
            highlight=False,
        ),
    )


@app.command("log")
@reports_errors
def log(
    model: Annotated[str | None, typer.Option(help="Only events of this model.")] = None,
    env: AuditEnvOption = Env.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """List the recorded events, oldest first.

    Example: mlops audit log --model patient_readmission_predictor --json
    """
    trail, location = _store(env.value)
    try:
        records = trail.records(model_name=model)
    finally:
        trail.close()
    payload = {"environment": env.value, "store": location, "records": [asdict(r) for r in records]}
    emit(payload, as_json, lambda: _print_log(payload))


@app.command("verify")
@reports_errors
def verify(
    env: AuditEnvOption = Env.LOCAL,
    expected_head: Annotated[
        str | None,
        typer.Option(help="A record hash kept outside the store that must still be in the chain."),
    ] = None,
    all_signatures: Annotated[
        bool,
        typer.Option(
            help="Check every record's signature, not every 256th, each signing key's first "
            "record and the head (slower)."
        ),
    ] = False,
    anchors: Annotated[
        bool,
        typer.Option(help="Compare with the heads kept in ZenML metadata and MLflow tags."),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Recompute hashes, links and signatures and compare with the anchors outside the database;
    exit 8 naming the first record that was edited, forged, deleted or moved.

    Example: mlops audit verify --env production
    """
    from mlops_platform.trust.audit import AuditTrailMissing
    from mlops_platform.trust.events import all_trail_anchors

    found = []
    if anchors:
        from mlops_platform.infra.settings import load_platform_settings

        # Every model's anchors, without importing data-science code: a verification must not
        # run the code whose records it checks (it could change the verdict in this process).
        url = load_platform_settings(env.value).audit.url
        found = all_trail_anchors(env.value, url)
    try:
        trail, location = _store(env.value)
    except AuditTrailMissing as error:
        newest = max(found, key=lambda anchor: anchor.seq, default=None)
        seen = f" {newest.source} shows it held record {newest.seq}." if newest else ""
        raise CliError(f"{error}.{seen}", ExitCode.AUDIT_BROKEN) from error
    try:
        result = trail.verify(expected_head, anchors=found, all_signatures=all_signatures)
        head = trail.head() if result.ok else None
    finally:
        trail.close()
    payload = {
        "environment": env.value,
        "store": location,
        "ok": result.ok,
        "records_checked": result.records_checked,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
        "head_seq": head.seq if head else None,
        "head_hash": head.record_hash if head else None,
        "anchors_checked": len(found),
    }
    if result.ok:
        emit(payload, as_json, lambda: _print_verified(payload))
        return
    if as_json:
        emit(payload, True, lambda: None)
    raise CliError(
        f"the {env.value} audit trail ({location}) does not verify at record "
        f"{result.first_bad_seq}: {result.problem}. The records before it verify; restore the "
        "store from a backup and find out who changed it.",
        ExitCode.AUDIT_BROKEN,
    )


@app.command("reconcile")
@reports_errors
def reconcile(env: AuditEnvOption = Env.LOCAL, as_json: JsonOption = False) -> None:
    """Finish or undo promotions a crash left half done, and give stages moved outside the
    platform back to their recorded holders, so ZenML, MLflow and the trail agree.

    A `promotion_started` record without an end is rolled forward if ZenML's stage moved, else
    rolled back; the MLflow aliases follow ZenML and the stuck run is marked failed. Then a
    stage whose ZenML holder is not the one the trail records goes back to that holder (or is
    left empty when the recorded holder was deleted), recorded as `stage_restored`.

    Example: mlops audit reconcile --env production
    """
    from mlops_cli import commands
    from mlops_platform.governance.transaction import reconcile_locked
    from mlops_platform.runtime import tracking
    from readmission.names import MODEL_NAME

    commands.ensure_stack()
    from mlops_platform.trust.identity import resolve_actor

    # Who restores a stage is recorded, and must be a verified identity outside local; asked only
    # when a stage is to be given back.
    outcomes, restored = reconcile_locked(
        env.value, MODEL_NAME, tracking.stack_tracking_uri(), lambda: resolve_actor(env.value)
    )
    payload = {
        "environment": env.value,
        "model_name": MODEL_NAME,
        "reconciled": outcomes,
        "restored": restored,
    }
    emit(payload, as_json, lambda: _print_reconciled(payload))


def _print_reconciled(payload: dict[str, Any]) -> None:
    if not payload["reconciled"]:
        out.print(f"No unfinished promotion or rollback in {payload['environment']}.")
    for stage in payload["restored"]:
        given = f"version {stage['restored']}" if stage["restored"] else "no version"
        out.print(
            f"{stage['target_stage'].capitalize()}: ZenML had version {stage['found'] or 'none'}, "
            f"the trail records version {stage['recorded'] or 'none'}; given back to {given}. "
            + stage.get("outcome", ""),
            highlight=False,
        )
    for done in payload["reconciled"]:
        out.print(
            f"{done['kind'].capitalize()} of version {done['model_version']} to {done['stage']} (record "
            f"{done['started_seq']}): {done['outcome']}.",
            highlight=False,
        )


def _print_verified(payload: dict[str, Any]) -> None:
    if payload["head_seq"] is None:
        out.print(f"Audit trail of {payload['environment']} is empty ({payload['store']}).")
        return
    out.print(
        f"Audit trail of {payload['environment']} verified: {payload['records_checked']} "
        f"records, head {payload['head_seq']} {payload['head_hash']}.",
        highlight=False,
    )


SUMMARY_KEYS = ("action", "reason", "previous_holder", "replaced", "failed_checks", "source")


def _summary(details: dict[str, Any]) -> str:
    """The few details that say what happened; `--json` shows them all."""
    return ", ".join(f"{key}={str(details[key])[:60]}" for key in SUMMARY_KEYS if details.get(key))


def _print_log(payload: dict[str, Any]) -> None:
    from mlops_platform.text import printable

    table = Table(title=escape(f"Audit trail of {payload['environment']} ({payload['store']})"))
    for column in ("seq", "recorded at", "event", "actor", "model", "stage", "details"):
        table.add_column(column)
    for record in payload["records"]:
        model = record["model_name"] or ""
        if record["model_version"]:
            model = f"{model}:{record['model_version']}"
        table.add_row(
            *(
                escape(printable(value))  # a newline in a record would forge a row
                for value in (
                    str(record["seq"]),
                    record["recorded_at"][:19],
                    record["event_type"],
                    record["actor"],
                    model,
                    record["stage"] or "",
                    _summary(record["details"]),
                )
            )
        )
    out.print(table)

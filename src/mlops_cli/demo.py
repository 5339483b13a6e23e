"""`mlops demo`: the whole lifecycle on one machine, narrated, using the same commands a person runs.

Every step below is a real `mlops` command run in this process; the narration prints each command
line first, so the demo doubles as a walkthrough. People are taken from the approval policy
(`configs/*/approvals.yaml`), so separation of duties holds. Each person acts through their own
account on the project's ZenML server (`mlops server start`, `mlops --as NAME`), so staging and
production record verified identities (source `zenml-server`), never typed names.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from mlops_cli.common import out, reports_errors
from mlops_cli.errors import ExitCode
from mlops_platform.workspace import state_dir

SCORING_ROWS = 5_000
AUDIT_ENV = "MLOPS_AUDIT_DB_URL"
# What the next chapters import first, loaded while the ZenML server starts (the demo process
# is idle then: the server boots in its own process).
NEXT_CHAPTERS_MODULES = (
    "mlops_platform.runtime.runner",
    "readmission.pipelines.training",
    "readmission.pipelines.promotion",
    "mlops_platform.reporting.model_report",
    "matplotlib.backends.backend_agg",
    "mlflow.sklearn",
    "skops.io",
)
SERVER_START_MODULES = (
    "mlops_cli.server",
    "mlops_platform.infra.server",
    "mlops_platform.config",
    "mlops_platform.governance.approvals.policy",
    "zenml.client",
    "zenml.exceptions",
)

logger = logging.getLogger(__name__)


@dataclass
class Cast:
    """Who plays which part, from the production approval rules."""

    author: str
    requester: str
    approver: str


@dataclass
class Timeline:
    """Wall seconds of each stage, and the CPU seconds this process spent in it (the machine is
    shared, so wall time is noisy): from the end of the previous stage to the end of this one. The
    ZenML server's own CPU is not counted."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    # Each `mlops promote` command on its own (a production stage also holds the refused
    # attempt and the approvals): what issue 18's promotion target and the budget measure.
    promotions: list[dict[str, Any]] = field(default_factory=list)
    # Chapters timed on their own, outside the lifecycle's total (real-time scoring).
    chapters: list[dict[str, Any]] = field(default_factory=list)
    _cpu_mark: float = field(default_factory=time.process_time)

    def add(self, stage: str, outcome: str, started: float) -> None:
        self.rows.append((stage, outcome, time.perf_counter() - started))
        self.cpu.append(self._cpu_since_mark())

    def add_chapter(self, stage: str, outcome: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.chapters.append(
            {
                "stage": stage,
                "outcome": outcome,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(self._cpu_since_mark(), 2),
            }
        )

    def _cpu_since_mark(self) -> float:
        now = time.process_time()
        spent, self._cpu_mark = now - self._cpu_mark, now
        return spent

    def promotion(self, version: str, stage: str, exit_code: int, started: float) -> None:
        self.promotions.append(
            {
                "version": version,
                "to": stage,
                "exit_code": exit_code,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )


def cast_from_policy() -> Cast:
    from mlops_platform.governance.approvals.policy import load_approval_policy

    policy = load_approval_policy("production")
    rules = policy.stage("production")
    if rules is None:
        raise typer.BadParameter("configs/base/approvals.yaml defines no production stage.")
    requesters = sorted(policy.people_in(rules.requesters))
    approvers = sorted(policy.people_in(rules.approvers))
    others = sorted(set(policy.people_in(policy.roles)) - set(requesters) - set(approvers))
    return Cast(author=others[0], requester=requesters[0], approver=approvers[0])


def run(args: Sequence[str]) -> int:
    """Run one `mlops` command in-process, showing its command line; returns its exit code."""
    from mlops_cli.app import app

    out.print(f"[bold cyan]$ mlops {escape(shlex.join(args))}[/]", highlight=False)
    if len(args) > 1 and args[0] == "--as":
        out.print(
            f"  [dim]authenticated to the ZenML server as [bold]{escape(args[1])}[/bold], with "
            f"{escape(args[1])}'s own API key ({escape(str(state_dir() / 'server' / 'accounts'))})[/]",
            highlight=False,
        )
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(args), prog_name="mlops", standalone_mode=False)
    except typer.Exit as stop:
        return stop.exit_code
    return result if isinstance(result, int) else 0


def prepare_next_chapters() -> threading.Thread:
    """Import what training needs and create the stack's MLflow store on a thread, so the
    seconds the demo would wait for the ZenML server to answer are not idle.

    Only the order of work changes: each module and the store are what the first training would
    otherwise import and create itself. A failure here is logged and left to that command, which
    reports it in its own words."""
    from mlops_platform.workspace import mlflow_tracking_uri

    uri = mlflow_tracking_uri()  # the local stack's tracker, which `mlops setup` just activated
    # What `mlops server start` imports is imported here first, so the two threads never import
    # the same modules at once (concurrent circular imports can raise in either thread).
    for module in SERVER_START_MODULES:
        importlib.import_module(module)

    def prepare() -> None:
        try:
            for module in NEXT_CHAPTERS_MODULES:
                importlib.import_module(module)
            from mlops_platform.runtime.tracking import prepare_store

            prepare_store(uri)
        except Exception:
            logger.debug("Preparing the next chapters failed; training will retry", exc_info=True)

    worker = threading.Thread(target=prepare, name="demo-prepare", daemon=True)
    worker.start()
    return worker


def demo_data(given: Path | None) -> tuple[Path, str]:
    """Real data when available (given, READMISSION_DATA, or the UCI download), else synthetic."""
    from mlops_cli.commands import training_config
    from readmission.core.data import DataUnavailableError, download_uci
    from readmission.core.synthetic import generate_encounters

    settings = training_config("local", given).data
    if settings.path:
        return Path(settings.path), "real data (file)"
    try:
        path = download_uci(
            settings.url,
            Path(settings.cache_dir),
            settings.timeout_seconds,
            settings.expected_sha256,
        )
    except DataUnavailableError as error:
        out.print(f"[yellow]No download: {error}[/]")
    else:
        return path, "real data (UCI download, SHA-256 verified)"
    path = state_dir() / "demo" / "synthetic_encounters.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    generate_encounters(settings.synthetic_patients, settings.synthetic_seed).to_csv(
        partial, index=False
    )
    partial.replace(path)
    out.print(
        "[bold yellow]No real data: this demo uses SYNTHETIC encounters with the UCI schema.[/] "
        "Every run records where its data came from. Set READMISSION_DATA or pass --data to run "
        "the demo on the real file."
    )
    return path, "SYNTHETIC data"


def scoring_file(data: Path) -> Path:
    """A batch of encounters to score: a sample of the data without its outcome column."""
    from readmission.core.data import read_encounters
    from readmission.core.uci import TARGET_COLUMN

    frame, _ = read_encounters(data)
    sample = frame.sample(n=min(SCORING_ROWS, len(frame)), random_state=0)
    path = state_dir() / "demo" / "new_encounters.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    sample.drop(columns=[TARGET_COLUMN]).to_csv(partial, index=False)
    partial.replace(path)
    return path


def latest_version() -> str:
    from zenml.client import Client

    from readmission.names import MODEL_NAME

    return str(Client().list_model_versions(MODEL_NAME, sort_by="desc:number", size=1)[0].name)


def latest_result() -> Path | None:
    from mlops_cli.inference import DEFAULT_OUTPUT

    results = state_dir() / DEFAULT_OUTPUT
    runs = (
        [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if results.is_dir()
        else []
    )
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def promote(
    timeline: Timeline, version: str, stage: str, cast: Cast, data: Path, reason: str, *extra: str
) -> int:
    started = time.perf_counter()
    code = run(
        [
            "--as",
            cast.requester,
            "promote",
            "--version",
            version,
            "--to",
            stage,
            "--reason",
            reason,
            "--data",
            str(data),
            *extra,
        ]
    )
    timeline.promotion(version, stage, code, started)
    return code


def outcome(code: int) -> str:
    return "promoted" if code == 0 else f"denied (exit {code})"


def chapter(title: str) -> None:
    out.print(Rule(f"[bold]{title}[/]"))


def one_encounter(batch: Path) -> dict[str, Any]:
    """The first encounter of the scoring file as a client sends it (integers as numbers)."""
    import pandas as pd

    from readmission.core import uci

    row = pd.read_csv(batch, dtype=str, keep_default_na=False, nrows=1).iloc[0]
    return {k: int(v) if k in uci.INTEGER_COLUMNS else str(v) for k, v in row.items()}


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import http.client
    from urllib.parse import urlparse

    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        connection.request(
            "POST", target.path, json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def realtime_chapter(cast: Cast, batch: Path) -> str:
    """Start the service, score one encounter over HTTP, show its log row, stop the service."""
    from mlops_platform.serving.deploy import service_status
    from mlops_platform.serving.log import read_log

    if run(["--as", cast.requester, "serve", "start"]) != 0:
        return "service did not start"
    try:
        endpoint = str(service_status("local")["endpoint"])
        body = {"encounters": [one_encounter(batch)]}
        out.print(
            f"[bold cyan]$ curl -s -X POST {endpoint} -H 'Content-Type: application/json' "
            f'-d @encounter.json[/]  [dim](encounter.json: {{"encounters": [{{<the 50 UCI '
            "columns>}]})[/]",
            highlight=False,
        )
        try:
            status, answer = post_json(endpoint, body)
        except (OSError, ValueError) as error:  # refused, timed out, or not JSON
            out.print(f"[yellow]The request failed: {escape(str(error))}[/]")
            return f"request failed ({type(error).__name__})"
        out.print_json(data=answer)
    finally:
        run(["--as", cast.requester, "serve", "stop"])  # flushes the prediction log
    if status != 200:
        return f"HTTP {status}"
    log = read_log(state_dir() / "prediction-log").to_pandas()
    row = log[log["request_id"] == answer["request_id"]]
    out.print("The prediction log row of that request (written on stop, its SHA-256 recorded):")
    out.print(row.drop(columns=["shadow"]).to_string(index=False))
    return f"HTTP {status}, risk {answer['predictions'][0]['readmission_risk']:.3f}"


@reports_errors
def demo(
    data: Annotated[
        Path | None,
        typer.Option(
            help="CSV, CSV.gz or UCI zip. Default: READMISSION_DATA, else download, else synthetic."
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Start the real-time service, score one encounter over HTTP, show its log row "
            "and stop it (about 10 s here; timed outside the lifecycle's total).",
        ),
    ] = True,
) -> None:
    """Run the whole lifecycle locally and narrate it: train, gate, promote with approval, retrain,
    champion/challenger, batch scoring with drift, real-time scoring (skip it with --no-serve),
    lineage, audit verification.

    Example: mlops demo --data ../shared/data/uci-diabetes-130/diabetic_data_dev.csv.gz
    """
    timeline = Timeline()
    os.environ.setdefault(AUDIT_ENV, f"sqlite:///{state_dir() / 'audit.db'}")
    cast = cast_from_policy()
    out.print(
        f"Cast from the approval policy: [bold]{cast.author}[/] trains, [bold]{cast.requester}[/] "
        f"requests promotions, [bold]{cast.approver}[/] approves production, each through their "
        "own account on the project's ZenML server. On this machine "
        f"staging and production record to one audit trail ({os.environ[AUDIT_ENV]})."
    )

    chapter("1. Local stack and data")
    started = time.perf_counter()
    from mlops_platform.infra.server import boot_early

    boot_early()  # the server's imports run beside `mlops setup`; `mlops server start` adopts it
    run(["setup"])
    preparing = prepare_next_chapters()
    server_code = run(["server", "start"])
    preparing.join()
    if server_code != 0:
        timeline.add("set-up and data", "ZenML server did not start", started)
        raise typer.Exit(int(ExitCode.CONFIG))
    run(["--as", cast.author, "setup"])
    path, label = demo_data(data)
    out.print(f"Data: {label}: {path}")
    timeline.add("set-up and data", label, started)

    results: dict[str, Any] = {}
    released: list[int] = []  # each round's exit code: its production promotion, else staging's
    for round_name in ("v1", "v2"):
        chapter(f"2. Train {round_name} (gates for the local environment)")
        started = time.perf_counter()
        code = run(["--as", cast.author, "train", "--env", "local", "--data", str(path)])
        if code != 0:
            timeline.add(f"train {round_name}", f"failed (exit {code})", started)
            raise typer.Exit(code)
        version = latest_version()
        results[round_name] = version
        timeline.add(f"train {round_name}", f"version {version} validated", started)

        chapter(f"3. Promote version {version} to staging")
        started = time.perf_counter()
        code = promote(timeline, version, "staging", cast, path, "demo: candidate for review")
        timeline.add(f"{round_name} to staging", outcome(code), started)
        if code != 0:
            released.append(code)
            continue

        chapter(
            f"4. Production needs an approval: first without one, then {cast.approver} approves"
        )
        started = time.perf_counter()
        code = promote(timeline, version, "production", cast, path, "demo: release")
        out.print(
            f"Exit code {code}: "
            + ("denied, and the denial is in the audit trail." if code else "promoted.")
        )
        if code == ExitCode.DENIED:
            approval = ["approve", "--version", version, "--to", "production"]
            out.print(
                f"{cast.requester} cannot approve by typing {cast.approver}'s name: production "
                "accepts only verified identities."
            )
            typed = run(
                ["--as", cast.requester, *approval, "--actor", cast.approver, "--reason", "typed"]
            )
            out.print(f"Exit code {typed}: refused, nothing recorded.")
            run(
                [
                    "--as",
                    cast.approver,
                    *approval,
                    "--reason",
                    "demo: model report and subgroup table reviewed",
                ]
            )
            out.print("Champion/challenger runs against the production model on the same patients.")
            code = promote(
                timeline, version, "production", cast, path, "demo: release", "--ticket", "DEMO-1"
            )
        timeline.add(f"{round_name} to production", outcome(code), started)
        released.append(code)

    chapter("5. Batch scoring with the production model, drift monitoring")
    started = time.perf_counter()
    batch = scoring_file(path)
    code = run(["--as", cast.requester, "infer", "--input", str(batch)])
    timeline.add("batch scoring", "scored" if code == 0 else f"failed (exit {code})", started)
    scored = code

    if serve and code == 0:
        chapter("5b. Real-time scoring: one request to the served production model")
        started = time.perf_counter()
        timeline.add_chapter("real-time scoring", realtime_chapter(cast, batch), started)

    chapter("6. Lineage of one prediction, stage history, audit verification")
    started = time.perf_counter()
    result = latest_result()
    if result is not None and code == 0:
        import pyarrow.parquet as pq

        from mlops_platform.batch.results import PREDICTIONS_FILE

        first = pq.read_table(result / PREDICTIONS_FILE, columns=["encounter_id"]).column(0)[0]
        run(
            [
                "--as",
                cast.approver,
                "lineage",
                "--predictions",
                str(result),
                "--encounter-id",
                str(first),
            ]
        )
    run(["--as", cast.approver, "history"])
    verified = run(["--as", cast.approver, "audit", "verify"])
    timeline.add("lineage, history, audit", "verified" if verified == 0 else "BROKEN", started)

    chapter("7. Where to look")
    out.print(
        "  make dashboard            ZenML dashboard (runs, artifacts, the model report on the\n"
        "                            validate_model step) and the MLflow UI (model versions and\n"
        "                            the staging/production aliases)\n"
        f"  {state_dir() / 'predictions'}  versioned batch results, manifest, drift report\n"
        "  mlops audit log           every governance event, hash-chained"
    )
    summary(timeline, results)
    save_timeline(timeline, results)
    unfinished = [
        (what, failed)
        for what, failed in (
            ("no version reached production",
             0 if 0 in released else next((c for c in released if c), int(ExitCode.ERROR))),
            ("batch scoring failed", scored),
            ("the audit trail did not verify", verified),
        )
        if failed
    ]  # fmt: skip
    if unfinished:
        # A fork whose policy or data stops the story (two approvals required, a stricter gate)
        # must not read it as a finished lifecycle: exit with the first refusal's code.
        out.print(
            "[bold red]The lifecycle did not complete:[/] "
            + "; ".join(f"{what} (exit {failed})" for what, failed in unfinished)
            + ". The refusals above say why; nothing was forced."
        )
        raise typer.Exit(unfinished[0][1])


def save_timeline(timeline: Timeline, results: dict[str, Any]) -> Path:
    """Keep the stage timings (read by `make bench`), written atomically."""
    path = state_dir() / "demo" / "timeline.json"
    partial = path.with_suffix(".tmp")
    stages = [
        {"stage": s, "outcome": o, "seconds": round(t, 2), "cpu_seconds": round(c, 2)}
        for (s, o, t), c in zip(timeline.rows, timeline.cpu, strict=True)
    ]
    partial.write_text(
        json.dumps(
            {
                "stages": stages,
                "total_seconds": sum(t for *_, t in timeline.rows),
                "total_cpu_seconds": round(sum(timeline.cpu), 2),
                "versions": results,
                "promotions": timeline.promotions,
                "outside_total": timeline.chapters,
            },
            indent=2,
        )
    )
    partial.replace(path)
    return path


def summary(timeline: Timeline, results: dict[str, Any]) -> None:
    table = Table(title="Lifecycle summary")
    table.add_column("stage")
    table.add_column("outcome")
    table.add_column("seconds", justify="right")
    table.add_column("CPU s", justify="right")
    for (stage, outcome, seconds), cpu in zip(timeline.rows, timeline.cpu, strict=True):
        table.add_row(stage, outcome, f"{seconds:.1f}", f"{cpu:.1f}")
    table.add_row(
        "total",
        ", ".join(f"{k}={v}" for k, v in results.items()),
        f"{sum(r[2] for r in timeline.rows):.1f}",
        f"{sum(timeline.cpu):.1f}",
    )
    for chapter_row in timeline.chapters:
        table.add_row(
            f"{chapter_row['stage']} (not in the total)",
            chapter_row["outcome"],
            f"{chapter_row['seconds']:.1f}",
            f"{chapter_row['cpu_seconds']:.1f}",
        )
    out.print(table)

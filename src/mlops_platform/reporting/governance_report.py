"""Static governance report: one self-contained HTML file an auditor can archive as evidence.

The OSS ZenML dashboard lists no models (its Models page is a ZenML Pro feature), so this report
puts in one place what a reviewer needs: versions with their tags, stages, metrics and gate
results, approvals with identities, stage history, drift of the latest batch, the lineage of one
prediction and whether the audit chain verifies. `gather_report` is a thin adapter over the ZenML
store and the audit trail; `render_governance_report` is a pure function of its result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlops_platform.governance.promotion import (
    Tenure,
    consumed_seqs,
    stage_history,
    withdrawals,
)
from mlops_platform.monitoring.verdict import StandingCheck, standing_checks
from mlops_platform.reporting.html import BASE_CSS, escape
from mlops_platform.text import printable
from mlops_platform.trust.audit import (
    AuditError,
    AuditEventType,
    AuditRecord,
    AuditTrail,
    ChainVerification,
)

REPORT_FILE: Final = "governance_report.html"
OUTCOME_REPORT_FILE: Final = "outcome_report.html"
SECTION_IDS: Final[tuple[str, ...]] = (
    "summary",
    "versions",
    "approvals",
    "history",
    "drift",
    "outcomes",
    "lineage",
    "verification",
)
_STYLE: Final = BASE_CSS + (
    "td{vertical-align:top}pre{background:#f6f8fa;padding:.5rem;overflow:auto;font-size:.8rem}"
)


@dataclass(frozen=True)
class VersionFacts:
    """One model version: tags, stage and creation as the ZenML store holds them; who trained
    it, its metrics and its last gate from its audit records (`source` says which), else from
    ZenML's metadata, which anyone with write access to ZenML can edit (`source` says so)."""

    version: str
    tags: tuple[str, ...]
    stage: str | None
    created: str
    trained_by: str
    metrics: dict[str, Any]
    gate: dict[str, Any]
    source: str = ""
    data: str = ""  # what it was trained on (`reporting.versions.version_row`'s "data")


SHADOW_THRESHOLD_COLUMN: Final = "operating_threshold"


@dataclass(frozen=True)
class GovernanceReport:
    """Everything the report shows; plain data so rendering is a pure function."""

    model_name: str
    environment: str
    generated_at: str
    audit_url: str
    versions: tuple[VersionFacts, ...]
    approvals: tuple[AuditRecord, ...]
    history: dict[str, list[Tenure]]
    latest_batch: AuditRecord | None
    latest_drift: AuditRecord | None
    lineage: dict[str, Any] | None
    lineage_note: str
    verification: ChainVerification
    record_count: int
    # The `outcomes_checked` event that stands per version (`monitoring.verdict.standing_checks`:
    # a degraded verdict is not cleared by a later check), and the HTML of the newest report.
    outcome_checks: tuple[StandingCheck, ...] = ()
    outcome_report: str | None = None
    # Shadow scoring per shadow (staging) version, from the recorded prediction-log parts.
    shadow: dict[str, dict[str, Any]] = field(default_factory=dict)
    shadow_note: str = ""
    # ZenML id of each version number today: a record of another id is about a deleted version.
    version_ids: dict[str, str] = field(default_factory=dict)
    # Approval and countersignature records a promotion consumed, and those withdrawn (by the
    # withdrawal's record): the approvals table says which carried a move (day-one review).
    used: frozenset[int] = frozenset()
    withdrawn: dict[int, int] = field(default_factory=dict)


UNVERIFIED: Final = "ZenML metadata (no audit record)"


def _unverified(registration: Any) -> str:
    named = registration.get("trained_by") if isinstance(registration, dict) else None
    return f"{named} (unverified)" if named else ""


def _version_facts(
    version: Any, records: Sequence[AuditRecord] = (), unverified: str = UNVERIFIED
) -> VersionFacts:
    """The version's facts, from its verified-trail records where it has them (pure);
    ``unverified`` says why ZenML's metadata is shown where it has none."""
    from mlops_platform.governance.promotion import recorded_gate_metrics
    from mlops_platform.reporting.versions import recorded_facts, version_row

    metadata = version.run_metadata or {}
    registration = metadata.get("registration") or {}
    number, version_id = str(version.name), str(version.id)
    gates = [
        r
        for r in records
        if r.event_type in (AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED)
        and str(r.model_version) == number
        and (
            (r.details.get("version_identity") or {}).get("model_version_id") in (None, version_id)
        )
    ]
    wanted = (AuditEventType.TRAINING_COMPLETED, AuditEventType.GATE_FAILED)
    facts = recorded_facts([r for r in records if r.event_type in wanted])
    author = facts.get((number, version_id)) or facts.get((number, "")) or {}
    common = {
        "version": number,
        "tags": tuple(sorted(tag.name for tag in version.tags)),
        "stage": str(version.stage) if version.stage else None,
        "created": str(version.created),
        "data": version_row(number, None, (), metadata, {}, author)["data"],
    }
    if not gates:
        return VersionFacts(
            **common,
            trained_by=str(author.get("trained_by") or "") or _unverified(registration),
            metrics=dict(registration.get("metrics") or metadata.get("gate_metrics") or {}),
            gate=dict(metadata.get("gate_decision") or {}),
            source=unverified,
        )
    last = max(gates, key=lambda r: r.seq)
    failed = set(last.details.get("failed_checks") or [])
    limits = last.details.get("limits") or {}
    measured = [recorded_gate_metrics(r.details) for r in sorted(gates, key=lambda r: r.seq)]
    return VersionFacts(
        **common,
        trained_by=str(author.get("trained_by") or "") or _unverified(registration),
        metrics=next((m for m in reversed(measured) if m), {}),
        gate={
            "passed": last.event_type == AuditEventType.GATE_PASSED,
            "checks": [{"name": name, "passed": name not in failed} for name in limits],
        },
        source=f"audit record {last.seq} ({last.details.get('environment') or 'gate'})",
    )


def _lineage_of_latest(batch: AuditRecord | None) -> tuple[dict[str, Any] | None, str]:
    """Trace the first prediction of the newest batch result, if that result is still on disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_platform.batch.results import PREDICTIONS_FILE, ResultManifestError, read_manifest
    from mlops_platform.monitoring.predictions import PredictionsIntegrityError
    from mlops_platform.reporting.lineage import LineageNotFoundError, trace_prediction

    if batch is None:
        return None, "No batch inference has been recorded, so there is no prediction to trace."
    directory = Path(str(batch.details.get("output_dir") or ""))
    predictions = directory / PREDICTIONS_FILE
    if not predictions.is_file():
        return None, f"The newest batch result {directory} is no longer on disk."
    try:
        column = read_manifest(directory)["contract"]["id_columns"][0]
        keys = pq.read_table(predictions, columns=[column]).slice(0, 1).column(0).to_pylist()
        if not keys:
            return None, f"The newest batch result {directory} holds no predictions."
        return trace_prediction(directory, keys[0]).as_dict(), ""
    except LineageNotFoundError as error:
        return None, str(error)
    # Lineage rests on verified records and on result files that match their run's record; a
    # result that does not is named in the report rather than stopping it.
    except (AuditError, ResultManifestError, PredictionsIntegrityError, pa.ArrowException) as error:
        return None, f"Lineage is not shown: {error}"


def gather_report(model_name: str, environment: str, audit_url: str) -> GovernanceReport:
    """Read the facts from the active ZenML store and the audit trail at `audit_url`."""
    from sqlalchemy.engine import make_url
    from zenml.client import Client

    versions = Client().list_model_versions(model=model_name, size=1000, hydrate=True)
    from mlops_platform.trust.events import trail_anchors
    from mlops_platform.trust.keys import verifier_for

    trail = AuditTrail(audit_url, env=environment, verifier=verifier_for(environment))
    try:
        records = trail.records()
        # Against the anchors outside the database too, as `mlops audit verify` does: a trail
        # cut, emptied or swapped for another file must not read as verified evidence.
        verification = trail.verify(anchors=trail_anchors(environment, audit_url, [model_name]))
    finally:
        trail.close()
    mine = [r for r in records if r.model_name == model_name]
    # From the records when the trail verifies; otherwise what ZenML says, marked unverified.
    usable = mine if verification.ok else []
    why = UNVERIFIED if verification.ok else "ZenML metadata (the audit trail does not verify)"
    facts = tuple(
        sorted(
            (_version_facts(v, usable, why) for v in versions.items), key=lambda f: int(f.version)
        )
    )
    batches = [r for r in mine if r.event_type == AuditEventType.BATCH_INFERENCE]
    drifts = [r for r in mine if r.event_type == AuditEventType.DRIFT_DETECTED]
    latest_batch = batches[-1] if batches else None
    lineage, lineage_note = _lineage_of_latest(latest_batch)
    checks = [r for r in mine if r.event_type == AuditEventType.OUTCOMES_CHECKED]
    stopped = [r for r in mine if r.event_type == AuditEventType.SERVING_STOPPED]
    shadow, shadow_note = (
        shadow_comparisons(stopped)
        if verification.ok
        else ({}, "Not shown: the audit trail does not verify, so no recorded log part is trusted.")
    )
    return GovernanceReport(
        model_name=model_name,
        environment=environment,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        audit_url=make_url(audit_url).render_as_string(hide_password=True),
        versions=facts,
        approvals=tuple(r for r in mine if r.event_type in _DECISION_EVIDENCE),
        used=consumed_seqs(usable, model_name),
        withdrawn=withdrawals(usable, model_name),
        history=stage_history(mine, model_name),
        latest_batch=latest_batch,
        latest_drift=drifts[-1] if drifts else None,
        lineage=lineage,
        lineage_note=lineage_note,
        verification=verification,
        record_count=len(records),
        outcome_checks=tuple(
            sorted(standing_checks(checks).values(), key=lambda c: c.standing.seq)
        ),
        outcome_report=_outcome_report(checks),
        shadow=shadow,
        shadow_note=shadow_note,
        version_ids={str(v.name): str(v.id) for v in versions.items},
    )


class RecordedLogNotFoundError(LookupError):
    """No stopped service recorded the prediction log asked for in the verified trail."""


def shadow_comparisons(stopped: list[AuditRecord]) -> tuple[dict[str, dict[str, Any]], str]:
    """`recorded_shadow_comparisons` for the report: a part that changed is reported, not read."""
    from mlops_platform.monitoring.predictions import PredictionsIntegrityError

    try:
        return recorded_shadow_comparisons(stopped)
    except PredictionsIntegrityError as error:
        return {}, f"Not shown: {error}"


def recorded_shadow_comparisons(
    stopped: list[AuditRecord], log_dir: Path | None = None
) -> tuple[dict[str, dict[str, Any]], str]:
    """Shadow against served scores per shadow version, from the prediction logs that stopped
    services recorded (`serving_stopped`: log directory, each part's SHA-256, the threshold).

    Only recorded parts whose bytes still hash to the record count; the directories come from the
    verified trail, not from whoever asks (`log_dir` only picks one of them). A recorded part that
    changed raises `PredictionsIntegrityError`; parts no stopped service recorded (a service still
    running, a file put there) are left out and named in the note.
    """
    import pandas as pd

    from mlops_platform.monitoring.predictions import load_recorded_log, recorded_parts_from
    from mlops_platform.serving.shadow import compare_by_shadow_version

    recorded = recorded_parts_from(stopped)
    directories = sorted(
        {str(r.details.get("log_dir")) for r in stopped if r.details.get("log_dir")}
    )
    if log_dir is not None:
        wanted = str(Path(log_dir).expanduser().resolve())
        if wanted not in directories:
            raise RecordedLogNotFoundError(
                f"No stopped service recorded the prediction log {wanted} in the audit trail "
                f"(recorded: {', '.join(directories) or 'none'}); only recorded log parts are "
                "compared. Stop the service that writes it (`mlops serve stop`) first."
            )
        directories = [wanted]
    frames, missing, left_out = [], [], []
    for directory in directories:
        if not Path(directory).is_dir():
            missing.append(directory)
            continue
        frame, unrecorded = load_recorded_log(Path(directory), recorded, SHADOW_THRESHOLD_COLUMN)
        left_out += [str(Path(directory) / name) for name in unrecorded]
        if len(frame):
            frames.append(frame)
    notes = []
    if missing:
        notes.append(f"Recorded prediction logs no longer on disk: {', '.join(missing)}.")
    if left_out:
        shown = ", ".join(left_out[:3]) + (
            f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
        )
        notes.append(
            f"{len(left_out)} log part(s) no stopped service recorded are left out ({shown}): "
            "a running service's parts count once it stops (`mlops serve stop`); any other "
            "file there was not written by a recorded service."
        )
    note = " ".join(notes)
    log = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if log.empty or not log["shadow"].any():
        return {}, note
    key, score = str(log.columns[0]), str(log.columns[list(log.columns).index("risk_band") - 1])
    return compare_by_shadow_version(log, key, score, SHADOW_THRESHOLD_COLUMN), note


def _outcome_report(checks: list[AuditRecord]) -> str | None:
    """The HTML outcome report of the newest outcome check, from the ZenML store."""
    from zenml.client import Client

    from mlops_platform.steps.check_outcomes import OutcomeArtifact
    from mlops_platform.trust.stored import guard_artifact_loads

    guard_artifact_loads()
    if not checks:
        return None
    newest = max(checks, key=lambda r: r.seq)
    try:
        run = Client().get_pipeline_run(str(newest.details.get("pipeline_run_id")))
        return str(run.steps["check_outcomes"].outputs[OutcomeArtifact.REPORT][0].load())
    except (KeyError, IndexError, ValueError):
        return None


def _e(value: Any) -> str:
    """HTML-escaped, control and invisible characters shown escaped (`printable`)."""
    return escape("" if value is None else printable(str(value), keep="\n\t"))


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    """`rows` cells must already be escaped HTML."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(section_id: str, heading: str, content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_e(heading)}</h2>\n{content}\n</section>'


def _verdict(ok: bool, yes: str, no: str) -> str:
    return f'<span class="pass">{_e(yes)}</span>' if ok else f'<span class="fail">{_e(no)}</span>'


def _metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _e(value)


def _gate(gate: dict[str, Any]) -> str:
    if not gate:
        return '<span class="muted">no gate decision</span>'
    failed = [c for c in gate.get("checks", []) if not c.get("passed")]
    verdict = _verdict(bool(gate.get("passed")), "passed", "failed")
    checks = f"{len(gate.get('checks', []))} checks"
    if failed:
        names = ", ".join(_e(c.get("name")) for c in failed)
        return f"{verdict} ({checks}; failed: {names})"
    return f"{verdict} ({checks})"


def _versions(report: GovernanceReport) -> str:
    metric_names = sorted(
        {k for v in report.versions for k, m in v.metrics.items() if not isinstance(m, dict)}
    )
    rows = [
        [
            _e(v.version),
            _e(", ".join(v.tags)),
            _e(v.stage or "none"),
            _e(v.trained_by),
            _e(v.created),
            *(_metric(v.metrics.get(name)) for name in metric_names),
            _gate(v.gate),
            _e(v.data),
            _e(v.source),
        ]
        for v in report.versions
    ]
    headers = [
        "Version", "Tags", "Stage now", "Trained by", "Created", *metric_names, "Gate",
        "Trained on", "From",
    ]  # fmt: skip
    return _table(headers, rows, "No model versions are registered.")


def _use(report: GovernanceReport, record: AuditRecord) -> str:
    """Whether an approval or countersignature carried a promotion, was withdrawn, or neither."""
    if record.event_type not in (AuditEventType.APPROVAL_RECORDED, AuditEventType.COUNTERSIGNATURE):
        return "-"
    if record.seq in report.used:  # a promotion used it: withdrawing came too late
        return "by a promotion"
    if record.seq in report.withdrawn:
        return f"withdrawn (record {report.withdrawn[record.seq]})"
    return "not used"


def _approvals(report: GovernanceReport) -> str:
    from mlops_platform.trust.events import about_version

    def version(record: AuditRecord) -> str:
        current = report.version_ids.get(str(record.model_version))
        if current is None or about_version(record, current):
            return str(record.model_version)
        return f"{record.model_version} (a deleted version: the number now names another)"

    rows = [
        [
            _e(version(r)),
            _e(r.details.get("target_stage") or r.stage),
            _e(
                f"{_DECISION_EVIDENCE[r.event_type]} "
                + ", ".join(str(seq) for seq in r.details.get("withdrawn") or [])
                if r.event_type == AuditEventType.APPROVAL_WITHDRAWN
                else _DECISION_EVIDENCE[r.event_type]
            ),
            _e(r.details.get("approver") or r.details.get("countersigner") or r.actor),
            _e(r.details.get("source") or (r.details.get("identity") or {}).get("source")),
            _e(r.details.get("reason")),
            _e(r.recorded_at),
            _e(r.seq),
            _e(_use(report, r)),
        ]
        for r in report.approvals
    ]
    headers = [
        "Version", "Stage", "Kind", "By", "Identity source", "Reason", "Recorded", "Seq", "Used",
    ]  # fmt: skip
    return _table(headers, rows, "No approvals are recorded.")


# What a production move may rest on, as the report's approvals table names it: approvals, and
# an emergency override with its countersignature (the override record is the requester's).
_DECISION_EVIDENCE: dict[str, str] = {
    AuditEventType.APPROVAL_RECORDED: "approval",
    AuditEventType.COUNTERSIGNATURE: "countersignature of an override",
    AuditEventType.OVERRIDE: "override (emergency release)",
    AuditEventType.APPROVAL_WITHDRAWN: "withdrawal of record",
}


def _history(report: GovernanceReport) -> str:
    rows = [
        [
            _e(t.stage),
            _e(t.model_version),
            _e(t.started_by),
            _e(t.actor),
            _e(t.since),
            _e(t.until or "current"),
            _e(t.seq),
        ]
        for tenures in report.history.values()
        for t in tenures
    ]
    headers = ["Stage", "Version", "By event", "Actor", "Since", "Until", "Seq"]
    return _table(headers, rows, "No promotion or rollback is recorded.")


def _drift(report: GovernanceReport) -> str:
    batch = report.latest_batch
    if batch is None:
        return '<p class="muted">No batch inference is recorded.</p>'
    detected = bool(batch.details.get("drift_detected"))
    lines = [
        f"<p>Latest batch (seq {_e(batch.seq)}, {_e(batch.recorded_at)}) scored by version "
        f"{_e(batch.model_version)} ({_e(batch.stage)}): "
        f"{_verdict(not detected, 'no drift detected', 'drift detected')}</p>",
        f"<p>Rows scored {_e(batch.details.get('rows_scored'))}, rejected "
        f"{_e(batch.details.get('rows_rejected'))}; input {_e(batch.details.get('input_path'))}; "
        f"results {_e(batch.details.get('output_dir'))}.</p>",
    ]
    drift = report.latest_drift
    if detected and drift is not None:
        features = ", ".join(str(f) for f in drift.details.get("drifted_features", []))
        reasons = "".join(f"<li>{_e(r)}</li>" for r in drift.details.get("reasons", []))
        lines.append(f"<p>Drifted features: {_e(features)}</p><ul>{reasons}</ul>")
    return "\n".join(lines)


def _outcomes(report: GovernanceReport) -> str:
    untrusted = (
        ""
        if report.verification.ok
        else '<p class="fail">The audit trail does not verify (see the verification section): '
        "the checks below cannot be trusted, and a recorded degraded verdict may be missing.</p>"
    )
    return untrusted + _outcome_checks(report)


def _outcome_checks(report: GovernanceReport) -> str:
    if not report.outcome_checks:
        return (
            '<p class="muted">No outcome check is recorded (`mlops monitor outcomes` joins the '
            "true outcomes to the served predictions).</p>"
        )
    rows = []
    for check in report.outcome_checks:
        r = check.standing
        d = r.details
        interval = d.get("roc_auc_ci")
        auc = _metric(d.get("roc_auc")) + (
            f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        )
        verdict = str(d.get("verdict"))
        shown = _verdict(verdict != "degraded", verdict, verdict)
        rows.append(
            [
                _e(r.model_version),
                shown,
                _e(", ".join(d.get("failed_checks") or []) or "none"),
                _e(d.get("n_labelled")),
                _e(d.get("n_pending")),
                auc,
                _e(d.get("as_of")),
                _e(r.recorded_at),
                _e(r.seq),
                _later(check),
            ]
        )
    headers = [
        "Version",
        "Verdict",
        "Failed checks",
        "Labelled",
        "Pending",
        "ROC-AUC (95% CI)",
        "As of",
        "Recorded",
        "Seq",
        "Later checks",
    ]
    link = (
        f'<p>Full report of the newest check: <a href="{OUTCOME_REPORT_FILE}">'
        f"{OUTCOME_REPORT_FILE}</a>.</p>"
        if report.outcome_report
        else '<p class="muted">The report of the newest check is not in the ZenML store.</p>'
    )
    advice = "".join(
        f'<p class="fail">{_e(c.standing.details["recommendation"])}</p>'
        for c in report.outcome_checks
        if c.standing.details.get("recommendation")
    )
    return _table(headers, rows, "") + advice + link


def _later(check: StandingCheck) -> str:
    if not check.overridden:
        return "none"
    latest = check.latest
    return _e(
        f"{latest.details.get('verdict')} (seq {latest.seq}, as of {latest.details.get('as_of')}): "
        "does not clear the degraded verdict; retrain or replace the version"
    )


def _shadow(report: GovernanceReport) -> str:
    note = f'<p class="muted">{_e(report.shadow_note)}</p>' if report.shadow_note else ""
    if not report.shadow:
        return note or (
            '<p class="muted">No shadow scores are recorded (`mlops serve start --shadow` scores '
            "each request with the staging version too; a stopped service records its log).</p>"
        )
    rows = [
        [
            _e(version),
            _e(", ".join(result["served_versions"])),
            _e(result["requests"]),
            _e(result["n_encounters"]),
            _metric(result["agreement"]),
            f"{result['mean_difference']:+.4f}",
            _metric(result["rank_correlation"]),
        ]
        for version, result in report.shadow.items()
    ]
    headers = [
        "Shadow version",
        "Against served",
        "Requests",
        "Encounters",
        "Band agreement",
        "Mean difference (shadow - served)",
        "Rank correlation (Spearman)",
    ]
    return _table(headers, rows, "") + note


def _lineage(report: GovernanceReport) -> str:
    if report.lineage is None:
        return f'<p class="muted">None: {_e(report.lineage_note)}</p>'
    chain = report.lineage
    model = chain["model_version"]
    key = chain["prediction"].get(chain["key_column"])
    summary = (
        f"<p>Prediction {_e(chain['key_column'])}={_e(key)} "
        f"(score {_e(chain['prediction'].get(chain['score_column']))}) from version "
        f"{_e(model['version'])} ({_e(model['stage_at_scoring'])} at scoring time), "
        f"result {_e(chain['result_dir'])}.</p>"
    )
    return summary + f"<pre>{_e(json.dumps(chain, indent=2, default=str))}</pre>"


def _verification(report: GovernanceReport) -> str:
    check = report.verification
    if check.ok:
        verdict = _verdict(
            True, f"The audit chain verifies with {report.record_count} records.", ""
        )
    else:
        verdict = _verdict(
            False,
            "",
            f"The audit chain does NOT verify: first bad record seq {check.first_bad_seq}: "
            f"{check.problem}",
        )
    return (
        f"<p>{verdict}</p><p>Records checked intact: {_e(check.records_checked)} of "
        f"{_e(report.record_count)}; store {_e(report.audit_url)}.</p>"
    )


def render_governance_report(report: GovernanceReport) -> str:
    """The report as one HTML document: inline CSS, no scripts, no external assets."""
    stages = {v.stage: v.version for v in report.versions if v.stage}
    summary = (
        f"<p>Model <strong>{_e(report.model_name)}</strong>, environment "
        f"{_e(report.environment)}, generated {_e(report.generated_at)}.</p>"
        f"<p>{_e(len(report.versions))} versions; staging: {_e(stages.get('staging', 'none'))}; "
        f"production: {_e(stages.get('production', 'none'))}.</p>"
    )
    sections = [
        _section("summary", "Summary", summary),
        _section("versions", "Versions, stages, metrics and gates", _versions(report)),
        _section("approvals", "Approvals and overrides", _approvals(report)),
        _section("history", "Promotion and rollback history", _history(report)),
        _section("drift", "Drift of the latest batch inference", _drift(report)),
        _section("outcomes", "Realised performance on true outcomes", _outcomes(report)),
        _section("shadow", "Shadow scoring of staging versions (real-time)", _shadow(report)),
        _section("lineage", "Lineage of a sample prediction", _lineage(report)),
        _section("verification", "Audit-trail verification", _verification(report)),
    ]
    body = "\n".join(sections)
    title = _e(f"Governance report: {report.model_name}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )


def write_report(html_text: str, out_dir: Path, attachments: dict[str, str] | None = None) -> Path:
    """Write under a temporary name, then rename, so a reader never sees half a report.

    `attachments` (file name -> HTML) are written first, the same way, so a link from the
    report never points at a missing file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in {**(attachments or {}), REPORT_FILE: html_text}.items():
        partial = out_dir / f".{name}.{os.getpid()}.tmp"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out_dir / name)
    return out_dir / REPORT_FILE

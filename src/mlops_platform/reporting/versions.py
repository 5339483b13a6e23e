"""Read-only summaries of model versions: `mlops versions` and `mlops compare`.

`version_row` and `comparison` are pure over plain dicts; `read_versions` reads ZenML metadata
and the audit trail (approvals), and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mlops_platform.names import KEY_METRICS

APPROVAL_STAGES: tuple[str, ...] = ("staging", "production")


def verdict(metadata: Mapping[str, Any], tags: Sequence[str]) -> str:
    """passed / rejected / failed / not judged, from the training gate (the tags it set) and the
    last gate decision: a validated version whose later promotion gate failed says both."""
    decision = metadata.get("gate_decision") or {}
    if "rejected" in tags:
        return "rejected"
    if "validated" in tags:
        return "passed" if decision.get("passed", True) else "passed; last gate failed"
    if not decision:
        return "not judged"
    return "passed" if decision.get("passed") else "failed"


def metrics_of(metadata: Mapping[str, Any]) -> dict[str, float]:
    """The platform-computed metrics of the version's last gate (registration's if none)."""
    source = (
        metadata.get("gate_metrics") or (metadata.get("registration") or {}).get("metrics") or {}
    )
    return {k: float(source[k]) for k in KEY_METRICS if isinstance(source.get(k), int | float)}


def holdout_of(metadata: Mapping[str, Any]) -> str:
    """The holdout rows the version's metrics were measured on (`metrics_of`'s gate): their
    SHA-256 (first 12) and count, or "-" when not recorded."""
    if metadata.get("gate_metrics"):
        evaluation = metadata.get("gate_evaluation") or {}
    else:
        evaluation = (metadata.get("registration") or {}).get("evaluation") or {}
    digest = evaluation.get("sha256")
    return f"{str(digest)[:12]} ({evaluation.get('rows', '?')} rows)" if digest else "-"


def version_row(
    number: str,
    stage: str | None,
    tags: Sequence[str],
    metadata: Mapping[str, Any],
    approvals: Mapping[str, Sequence[str]],
    recorded: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One version as `mlops versions` shows it. ``recorded``: who trained it, its commit and
    data from its verified audit records (`recorded_facts`), shown in place of ZenML's editable
    ``registration`` metadata, which a version rejected before registration does not have."""
    registration = metadata.get("registration") or {}
    code = dict(registration.get("code") or {})
    data_sha256 = (registration.get("data") or {}).get("sha256")
    model_sha256 = (registration.get("model_file") or {}).get("sha256")
    trained_by = registration.get("trained_by")
    metrics = metrics_of(metadata)
    if recorded and recorded.get("metrics"):  # its newest gate record's, not ZenML's copy
        metrics = {k: recorded["metrics"][k] for k in KEY_METRICS if k in recorded["metrics"]}
    data_source = (registration.get("data") or {}).get("source")
    data_file = (registration.get("data") or {}).get("file_sha256")
    if recorded:
        trained_by = recorded.get("trained_by") or trained_by
        data_source = recorded.get("data_source") or data_source
        data_file = recorded.get("data_file_sha256") or data_file
        data_sha256 = recorded.get("data_sha256") or data_sha256
        model_sha256 = recorded.get("model_sha256") or model_sha256
        if recorded.get("git_sha"):
            code = {"git_sha": recorded["git_sha"], "git_dirty": recorded.get("git_dirty")}
    return {
        "model_version": number,
        "stage": stage if stage and stage != "none" else "-",
        "tags": sorted(tags),
        "metrics": metrics,
        "holdout": holdout_of(metadata),
        "verdict": verdict(metadata, tags),
        "trained_by": trained_by or "-",
        # each person once per stage (an approval recorded again is still one approver)
        "approved_by": {
            stage: list(dict.fromkeys(people)) for stage, people in approvals.items() if people
        },
        "git_sha": code.get("git_sha") or "-",
        "git_dirty": bool(code.get("git_dirty")),
        # the commit as people read it: a run from a tree with uncommitted changes says so
        "code": (str(code.get("git_sha"))[:12] if code.get("git_sha") else "-")
        + (" (uncommitted changes)" if code.get("git_dirty") else ""),
        "data_sha256": data_sha256 or "-",
        # what it was trained on, as its verified training record names it: the loader's source
        # (a file, the verified download, synthetic) and the platform's hash of the data file
        "data_source": data_source or "-",
        "data_file_sha256": data_file or "-",
        "data": (data_source or "?")
        + (f" {str(data_file)[:12]}" if data_file else "")
        + ("" if data_source in (None, "file", "download") else " (not real data)"),
        # the signed model file (a deployment manifest's model.model_sha256 names it)
        "model_sha256": model_sha256 or "-",
    }


def comparison(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two version rows side by side: metric differences (second minus first) and what differs."""
    metrics = []
    for key in KEY_METRICS:
        a, b = first["metrics"].get(key), second["metrics"].get(key)
        metrics.append(
            {
                "metric": key,
                first["model_version"]: a,
                second["model_version"]: b,
                "difference": None if a is None or b is None else b - a,
            }
        )
    facts = ("stage", "verdict", "trained_by", "git_sha", "git_dirty", "data_sha256", "holdout")
    holdouts = (first.get("holdout", "-"), second.get("holdout", "-"))
    return {
        "versions": [first["model_version"], second["model_version"]],
        # Differences mean something only when both were measured on the same holdout rows.
        "same_holdout": holdouts[0] == holdouts[1] and holdouts[0] != "-",
        "metrics": metrics,
        "facts": [
            {
                "fact": fact,
                first["model_version"]: first[fact],
                second["model_version"]: second[fact],
                "same": first[fact] == second[fact],
            }
            for fact in facts
        ],
    }


def read_versions(model_name: str, numbers: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows for every version of `model_name` (or the given numbers), newest first."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate_stream

    from mlops_platform.governance.promotion import consumed_seqs

    client = Client()
    if numbers is None:
        versions = list(
            depaginate_stream(client.list_model_versions, model=model_name, sort_by="desc:number")
        )
    else:
        versions = []
        for number in numbers:
            try:
                versions.append(client.get_model_version(model_name, int(number)))
            except (KeyError, ValueError) as error:  # name the one that is missing
                raise KeyError(number) from error
    recorded = {stage: approval_records(model_name, stage) for stage in APPROVAL_STAGES}
    used = {stage: consumed_seqs(records, model_name) for stage, records in recorded.items()}
    facts = recorded_facts(training_and_gate_records(model_name))
    rows = []
    for version in versions:
        tags = [tag.name for tag in version.tags]
        approvals = {
            stage: approvers(recorded[stage], version.name, stage, str(version.id), used[stage])
            for stage in APPROVAL_STAGES
        }
        stage = version.stage.value if hasattr(version.stage, "value") else version.stage
        rows.append(
            version_row(
                version.name, stage, tags, version.run_metadata or {}, approvals,
                facts.get((version.name, str(version.id))) or facts.get((version.name, "")),
            )
        )  # fmt: skip
    return rows


def recorded_facts(records: Sequence[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(version number, ZenML version id or "") -> who trained it, its commit and data, from
    verified `training_completed` records, else its gate's record (a version the training gate
    rejected is never registered, but its gate record names who ran it and on which data); and
    ``metrics``, from its newest gate record holding them."""
    from mlops_platform.governance.promotion import MODEL_VERSION_ID_KEY, recorded_gate_metrics
    from mlops_platform.trust.audit import AuditEventType

    found: dict[tuple[str, str], dict[str, Any]] = {}
    # Training records win over gate records; among gate records the earliest, the training
    # run's own gate (a later one is a promotion's, run by its requester). Metrics: the newest
    # gate record holding them.
    wanted = (AuditEventType.TRAINING_COMPLETED, AuditEventType.GATE_FAILED)
    gates = {AuditEventType.GATE_FAILED}
    ordered = sorted(
        (r for r in records if r.event_type in wanted),
        key=lambda r: (0, -r.seq) if r.event_type in gates else (1, r.seq),
    )
    for record in ordered:
        details = record.details or {}
        identity = details.get("version_identity") or {}
        version_id = str(
            details.get(MODEL_VERSION_ID_KEY) or identity.get("model_version_id") or ""
        )
        found[(str(record.model_version), version_id)] = {
            "trained_by": record.actor,
            "data_sha256": details.get("data_sha256"),
            "git_sha": details.get("git_sha"),
            "git_dirty": details.get("git_dirty"),
            "model_sha256": details.get("model_sha256"),
            "data_source": details.get("data_source"),
            "data_file_sha256": details.get("data_file_sha256"),
        }
    judged = (AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED)
    for record in sorted((r for r in records if r.event_type in judged), key=lambda r: r.seq):
        measured = recorded_gate_metrics(record.details)
        identity = record.details.get("version_identity") or {}
        key = (str(record.model_version), str(identity.get("model_version_id") or ""))
        if measured and key in found:
            found[key]["metrics"] = measured
        elif measured:
            found[key] = {"metrics": measured}
    return found


def training_and_gate_records(model_name: str) -> list[Any]:
    """The verified training and training-gate records of every stage's trail."""
    from mlops_platform.governance.approvals.policy import STAGES
    from mlops_platform.governance.model_stages import _records, trail_environments
    from mlops_platform.trust.audit import AuditEventType

    wanted = [
        AuditEventType.TRAINING_COMPLETED,
        AuditEventType.GATE_FAILED,
        AuditEventType.GATE_PASSED,
    ]
    return [r for env in trail_environments(STAGES) for r in _records(env, model_name, wanted)]


def approvers(
    records: Sequence[Any],
    model_version: str,
    stage: str,
    version_id: str,
    used: Collection[int] | None = None,
) -> list[str]:
    """Who approved `model_version` (ZenML id `version_id`) for `stage`: every recorded approval
    and countersigned override; an approval of an earlier version that had the same number is
    not its. With ``used`` (the record numbers promotions consumed, `promotion.consumed_seqs`), one no
    promotion used is marked "(not used)": it moved nothing (a denied promotion, or none yet); one
    its giver withdrew (`promotion.withdrawals`) "(withdrawn)"."""
    from mlops_platform.governance.promotion import withdrawals
    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import about_version

    withdrawals_made = [
        r for r in records if getattr(r, "event_type", None) == AuditEventType.APPROVAL_WITHDRAWN
    ]
    withdrawn = withdrawals(records, withdrawals_made[0].model_name) if withdrawals_made else {}
    shown = []
    for record in records:
        if getattr(record, "event_type", None) in (
            AuditEventType.PROMOTION,
            AuditEventType.APPROVAL_WITHDRAWN,
        ):
            continue  # read beside them to tell the used and withdrawn ones
        if not (
            record.model_version == model_version
            and about_version(record, version_id)
            and (record.stage or record.details.get("target_stage")) == stage
        ):
            continue
        name = (
            f"{record.details.get('countersigner') or record.actor} (countersigned override)"
            if getattr(record, "event_type", None) == AuditEventType.COUNTERSIGNATURE
            else str(record.details.get("approver") or record.actor)
        )
        if getattr(record, "seq", None) in withdrawn and (
            used is None or record.seq not in used  # used first: withdrawing came too late
        ):
            name += " (withdrawn)"
        elif used is not None and getattr(record, "seq", None) not in used:
            name += " (not used)"
        shown.append(name)
    return shown


def approval_records(model_name: str, stage: str) -> list[Any]:
    """The `approval_recorded`, `countersignature` and `promotion` records of `stage`'s audit
    trail (read through its verified store)."""
    from mlops_platform.governance.model_stages import _records
    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.trust.audit import AuditEventType

    events = [
        AuditEventType.APPROVAL_RECORDED,
        AuditEventType.COUNTERSIGNATURE,
        AuditEventType.APPROVAL_WITHDRAWN,
        AuditEventType.PROMOTION,
    ]
    return _records(stage_environment(stage), model_name, events)

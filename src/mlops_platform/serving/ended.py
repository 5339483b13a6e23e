"""Real-time services the trail records as started and never as stopped (a killed or crashed
process), and the record that closes them.

A service records `serving_started` when it starts and `serving_stopped` (its log parts and their
SHA-256) when it stops normally. A service killed (SIGKILL, a crash, the machine going down) never
records its stop: its buffered rows are lost and its log parts are never recorded, so outcome
monitoring and lineage do not judge its answers. `mlops check` names such a service
(`serving-not-stopped`) once no service of its environment runs; `mlops serve stop` with no service
running records its end (`serving_stopped` with ``ended``), under the identity of who ran it, and
the finding is closed: the trail then says the answers it gave after its last recorded part are
not in the record.

`unstopped` is pure; `record_ends` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from mlops_platform.trust.audit import AuditEventType, AuditRecord

ENDED_UNRECORDED: Final = (
    "the service was not running when its end was recorded (killed or crashed): its buffered "
    "rows are lost and none of its log parts were recorded, so outcome monitoring and lineage "
    "do not use its answers"
)


def unstopped(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The `serving_started` records no `serving_stopped` of the same service (its
    ``inference_run_id``) follows, oldest first (pure)."""
    started: dict[str, AuditRecord] = {}
    for record in sorted(records, key=lambda r: r.seq):
        run = str(record.details.get("inference_run_id") or "")
        if not run:
            continue
        if record.event_type == AuditEventType.SERVING_STARTED:
            started[run] = record
        elif record.event_type == AuditEventType.SERVING_STOPPED:
            started.pop(run, None)
    return sorted(started.values(), key=lambda r: r.seq)


def start_alive(start: AuditRecord, host: str) -> bool | None:
    """Whether the process a `serving_started` record names still runs: True or False when it
    ran on ``host`` (this machine), None when that cannot be told here (another machine, or a
    record written before services named their process)."""
    import os

    pid, where = start.details.get("pid"), start.details.get("host")
    if type(pid) is not int or where != host:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process with that id
    return True


def not_running(
    starts: Sequence[AuditRecord], running: bool, alive: Callable[[AuditRecord], bool | None]
) -> list[AuditRecord]:
    """Of ``starts`` (one environment's, oldest first), those whose service cannot be running:
    a process seen dead (``alive`` False) always, one seen alive never (attack review: a
    deployment row deleted in ZenML while the process kept answering); otherwise all when the
    environment's deployment does not run (``running``), else all but the newest (one
    deployment per environment)."""
    found = []
    for index, start in enumerate(starts):
        seen = alive(start)
        if seen is None:
            seen = running and index == len(starts) - 1
        if not seen:
            found.append(start)
    return found


def service_runs(env: str) -> bool:
    """Whether the environment's deployment exists and its process is alive."""
    from mlops_platform.serving.deploy import ServiceNotFoundError, service_status

    try:
        status = service_status(env)
    except ServiceNotFoundError:
        return False
    pid = status.get("pid")
    if pid:
        try:
            import os

            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return False
    return str(status.get("status")) not in ("error", "absent")


def recorded_starts(env: str) -> list[AuditRecord]:
    """The verified `serving_started` and `serving_stopped` records of ``env``'s trail."""
    from mlops_platform.trust.events import audit_trail

    trail = audit_trail(env, write=False)
    try:
        return list(
            trail.records(
                event_types=[AuditEventType.SERVING_STARTED, AuditEventType.SERVING_STOPPED],
                verified=True,
            )
        )
    finally:
        trail.close()


def record_ends(env: str, actor: Any) -> list[dict[str, Any]]:
    """Record the end of every service of ``env`` the trail records as started and never
    stopped, when none runs; returns what was recorded (empty: nothing to close)."""
    import socket

    from mlops_platform.governance.model_stages import actor_details
    from mlops_platform.trust.events import record_event

    host = socket.gethostname()
    starts = unstopped(r for r in recorded_starts(env) if _of(r, env))
    ended = []
    for start in not_running(
        starts, bool(starts) and service_runs(env), lambda r: start_alive(r, host)
    ):
        details = start.details
        written = record_event(
            env,
            AuditEventType.SERVING_STOPPED,
            actor.name,
            model_name=start.model_name,
            model_version=start.model_version,
            stage=start.stage,
            details={
                "deployment": details.get("deployment"),
                "inference_run_id": details.get("inference_run_id"),
                "version_identity": details.get("version_identity"),
                "log_dir": details.get("log_dir"),
                "started_seq": start.seq,
                "ended": ENDED_UNRECORDED,
                "log_parts": {},
                "identity": actor_details(actor),
            },
        )
        ended.append(
            {"started_seq": start.seq, "seq": written.seq, "log_dir": details.get("log_dir")}
        )
    return ended


def _of(record: AuditRecord, env: str) -> bool:
    """A record of ``env``'s own service (a shared trail holds every environment's)."""
    from mlops_platform.serving.deploy import deployment_name

    return str(record.details.get("deployment") or "") == deployment_name(env)

"""Which real-time services the trail records as started and never stopped (pure)."""

from __future__ import annotations

from typing import Any

from mlops_platform.serving.ended import not_running, start_alive, unstopped
from mlops_platform.trust.audit import AuditEventType, AuditRecord


def record(seq: int, event: str, run: str, **details: Any) -> AuditRecord:
    return AuditRecord(seq, "2026-03-01T10:00:00+00:00", event, "bob", "m", "1", "production",
                       {"inference_run_id": run, **details}, "p", f"h{seq}")  # fmt: skip


def test_a_start_without_the_same_service_s_stop_is_unstopped() -> None:
    trail = [
        record(1, AuditEventType.SERVING_STARTED, "serve-a"),
        record(2, AuditEventType.SERVING_STOPPED, "serve-a"),
        record(3, AuditEventType.SERVING_STARTED, "serve-b"),  # killed
        record(4, AuditEventType.SERVING_STARTED, "serve-c"),
        record(5, AuditEventType.SERVING_STOPPED, "serve-x"),  # another service's stop
    ]
    assert [r.seq for r in unstopped(trail)] == [3, 4]
    unknown = lambda _: None  # noqa: E731  (records without a process: ZenML's row decides)
    assert [r.seq for r in not_running(unstopped(trail), True, unknown)] == [3]  # c may run
    assert [r.seq for r in not_running(unstopped(trail), False, unknown)] == [3, 4]
    assert unstopped(trail[:2]) == []


def test_the_recorded_process_decides_over_zenml_s_deployment_row() -> None:
    """Attack review: the deployment row deleted in ZenML while the process kept answering, and
    `mlops serve stop` recorded its end; a stale row of a killed process hid it."""
    import os
    import socket
    import subprocess
    import sys

    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = record(1, AuditEventType.SERVING_STARTED, "serve-a", pid=os.getpid(), host=host)
    gone = record(2, AuditEventType.SERVING_STARTED, "serve-b", pid=dead.pid, host=host)
    elsewhere = record(3, AuditEventType.SERVING_STARTED, "serve-c", pid=os.getpid(), host="x")
    assert (start_alive(live, host), start_alive(gone, host), start_alive(elsewhere, host)) == (
        True,
        False,
        None,
    )
    alive = lambda r: start_alive(r, host)  # noqa: E731
    assert [r.seq for r in not_running([live, gone], running=False, alive=alive)] == [2]
    assert [r.seq for r in not_running([gone, live], running=True, alive=alive)] == [2]

"""Which real-time services the trail records as started and never stopped (pure)."""

from __future__ import annotations

from typing import Any

from mlops_platform.serving.ended import not_running, unstopped
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
    assert [r.seq for r in not_running(unstopped(trail), running=True)] == [3]  # c may run
    assert [r.seq for r in not_running(unstopped(trail), running=False)] == [3, 4]
    assert unstopped(trail[:2]) == []

"""ZenML's gate metadata compared with the verified gate records (`mlops check`), and the
metrics a gate record holds (pure)."""

from __future__ import annotations

from types import SimpleNamespace

from mlops_platform.governance.check import gate_metadata_findings
from mlops_platform.governance.promotion import recorded_gate_metrics
from mlops_platform.trust.audit import AuditEventType


def gate(seq: int, env: str, run: str, passed: bool = True, **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(
        seq=seq,
        event_type=AuditEventType.GATE_PASSED if passed else AuditEventType.GATE_FAILED,
        details={"environment": env, "pipeline_run_id": run, "metrics": metrics},
    )


def test_a_gate_record_s_metrics_and_older_records_check_values() -> None:
    older = {"limits": {"roc_auc": [0.71, ">=", 0.6], "fairness_assessed": [3.0, ">=", 3.0]}}
    assert recorded_gate_metrics(older) == {"roc_auc": 0.71}
    newer = {**older, "metrics": {"roc_auc": 0.7100001, "n": 900, "passed": True}}
    assert recorded_gate_metrics(newer) == {"roc_auc": 0.7100001, "n": 900.0}
    assert recorded_gate_metrics({"limits": "edited", "metrics": None}) == {}


def test_edited_metrics_and_verdicts_are_found_and_untouched_ones_are_not() -> None:
    training = gate(3, "local", "run-1", roc_auc=0.7, recall=0.4)
    promotion = gate(9, "staging", "run-2", passed=False, roc_auc=0.69, recall=0.4)
    metadata = {
        "registration": {"metrics": {"roc_auc": 0.7, "recall": 0.4}},
        "gate_decision": {"environment": "staging", "passed": False, "metrics": {"roc_auc": 0.69}},
        "gate_metrics": {"roc_auc": 0.69, "recall": 0.4, "pr_auc": 0.2},
    }
    assert gate_metadata_findings("v", metadata, [training, promotion], "run-1") == []

    edited = {
        "registration": {"metrics": {"roc_auc": 0.94, "recall": 0.4}},
        "gate_decision": {"environment": "staging", "passed": True, "metrics": {"roc_auc": 0.69}},
        "gate_metrics": {"roc_auc": 0.69, "recall": 0.91},
    }
    found = gate_metadata_findings("v", edited, [training, promotion], "run-1")
    assert sorted(f.rule for f in found) == [
        "gate-metadata-vs-trail",
        "metrics-vs-trail",
        "metrics-vs-trail",
    ]
    messages = " ".join(f.message for f in found)
    assert "registration.metrics says roc_auc 0.94 (recorded 0.7)" in messages
    assert "gate_metrics says recall 0.91 (recorded 0.4)" in messages
    # Without records to compare with, nothing is claimed either way.
    assert gate_metadata_findings("v", edited, [], None) == []


def test_a_metric_rewritten_as_text_is_a_finding() -> None:
    """The second review: `roc_auc: "0.9512"` (text) passed `mlops check` silently."""
    training = gate(3, "local", "run-1", roc_auc=0.7)
    metadata = {"registration": {"metrics": {"roc_auc": "0.9512"}}}
    (found,) = gate_metadata_findings("v", metadata, [training], "run-1")
    assert found.rule == "metrics-vs-trail" and "'0.9512'" in found.message

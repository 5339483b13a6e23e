"""The governance report's approvals table tells a deleted version's approval from its number's
successor (the fresh-eyes review: the report listed "version 4, production, carol" beside a new
version 4 nobody approved)."""

from __future__ import annotations

from _reports import report_of

from mlops_platform.reporting.governance_report import render_governance_report
from mlops_platform.trust.audit import AuditEventType, AuditRecord


def approval(seq: int, version_id: str) -> AuditRecord:
    details = {"approver": "carol", "version_identity": {"model_version_id": version_id}}
    return AuditRecord(seq, "t", AuditEventType.APPROVAL_RECORDED, "carol", "readmission", "4",
                       "production", details, "p", "h")  # fmt: skip


def test_an_approval_of_a_deleted_version_is_marked_as_such() -> None:
    html = render_governance_report(
        report_of(
            approvals=(approval(3, "old-4"), approval(9, "new-4")), version_ids={"4": "new-4"}
        )
    )
    assert html.count("a deleted version: the number now names another") == 1
    section = html[html.index("Approvals") :]
    assert section.index("a deleted version") < section.index(">9<")


def test_a_withdrawal_names_the_records_it_withdrew() -> None:
    withdrawn = AuditRecord(10, "t", AuditEventType.APPROVAL_WITHDRAWN, "carol", "readmission",
                            "4", "production", {"withdrawn": [9], "reason": "report had errors",
                            "version_identity": {"model_version_id": "new-4"}}, "p", "h")  # fmt: skip
    html = render_governance_report(
        report_of(approvals=(approval(9, "new-4"), withdrawn), version_ids={"4": "new-4"})
    )
    section = html[html.index("Approvals") :]
    assert "withdrawal of record 9" in section and "report had errors" in section


def test_the_approvals_table_says_which_carried_a_promotion() -> None:
    """Day-one review: the report listed five approvals alike, used or not."""
    withdrawn = AuditRecord(10, "t", AuditEventType.APPROVAL_WITHDRAWN, "carol", "readmission",
                            "4", "production", {"withdrawn": [5]}, "p", "h")  # fmt: skip
    html = render_governance_report(
        report_of(
            approvals=(approval(3, "new-4"), approval(5, "new-4"), approval(9, "new-4"), withdrawn),
            version_ids={"4": "new-4"},
            used=frozenset({3}),
            withdrawn={5: 10},
        )
    )
    section = html[html.index("Approvals") :]
    assert "by a promotion" in section and "withdrawn (record 10)" in section
    assert "not used" in section

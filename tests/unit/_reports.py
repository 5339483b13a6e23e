"""A governance report with nothing in it but what a test gives, for tests of one section."""

from __future__ import annotations

from typing import Any

from mlops_platform.reporting.governance_report import GovernanceReport
from mlops_platform.trust.audit import ChainVerification


def report_of(**sections: Any) -> GovernanceReport:
    """An otherwise empty report of a verified, empty trail, with ``sections`` filled in."""
    empty: dict[str, Any] = {
        "model_name": "readmission",
        "environment": "local",
        "generated_at": "2026-11-30T00:00:00+00:00",
        "audit_url": "sqlite:///audit.db",
        "versions": (),
        "approvals": (),
        "history": {},
        "latest_batch": None,
        "latest_drift": None,
        "lineage": None,
        "lineage_note": "",
        "verification": ChainVerification(True, 0, None, None),
        "record_count": 0,
    }
    return GovernanceReport(**{**empty, **sections})

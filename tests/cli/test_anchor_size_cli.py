"""A record whose details are over ZenML's metadata size limit still leaves its ZenML anchor."""

from __future__ import annotations

import pytest

from mlops_platform.trust.audit import AuditEventType

pytestmark = pytest.mark.usefixtures("isolated_state")

MODEL = "patient_readmission_predictor"


def test_a_record_with_huge_details_is_anchored_in_zenml() -> None:
    """The anchor of a record whose details are over ZenML's 65,535-character limit is written
    (its details' digest in place of them): a cut of the trail below it stays detectable."""
    from zenml.client import Client

    from mlops_platform.trust.events import record_version_event, zenml_anchors

    client = Client()
    client.create_model(MODEL)
    version = client.create_model_version(MODEL)  # number 1

    record = record_version_event(
        "local",
        AuditEventType.APPROVAL_RECORDED,
        "bob",
        version,
        stage="production",
        details={"reason": "B" * 130_000},
    )

    anchors = zenml_anchors(["local"], MODEL)
    assert (record.seq, record.record_hash) in [(a.seq, a.record_hash) for a in anchors]

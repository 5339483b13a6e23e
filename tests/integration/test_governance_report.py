"""`mlops report`: the archived governance report, opened in headless Chromium, against the trail.

One real training run and one real promotion to staging (staging judges with the local policy,
as in test_promotion, because synthetic data does not meet staging thresholds), one approval for
production, then the report. Every environment shares the local audit store.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from zenml.utils import source_utils

from mlops_cli.errors import ExitCode
from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.reporting.governance_report import REPORT_FILE, SECTION_IDS
from mlops_platform.trust.audit import AuditEventType, AuditTrail
from mlops_platform.workspace import state_dir
from tests.integration import browser
from tests.integration.helpers import invoke, write_synthetic_csv
from tests.integration.test_promotion import SOURCE_ROOT, pick_cast, promotion_configs, train
from tests.oidc_issuer import running_issuer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def promoted(module_state: Path, zenml_server: str) -> Iterator[Path]:
    """Each person acts through their own account on the module's ZenML server (`--as`)."""
    isolated_state = module_state
    root = isolated_state.parent
    for name in [n for n in os.environ if n.startswith("GITHUB_")] + ["READMISSION_DATA"]:
        os.environ.pop(name, None)
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{isolated_state / 'audit.db'}"
    source_utils.set_custom_source_root(str(SOURCE_ROOT))
    try:
        cast = pick_cast()
        data = write_synthetic_csv(root / "train.csv", seed=11)
        with running_issuer() as issuer:
            os.environ["MLOPS_CONFIG_DIR"] = str(promotion_configs(root / "configs", None, issuer))
            assert train(data, cast.author, issuer) == "1"
        promoted = invoke(
            "--as", cast.requester, "promote", "--version", "1", "--to", STAGING,
            "--reason", "report test", "--data", str(data),
        )  # fmt: skip
        assert promoted.exit_code == 0, promoted.output
        approved = invoke(
            "--as", cast.approver, "approve", "--version", "1", "--to", PRODUCTION,
            "--reason", "report reviewed",
        )  # fmt: skip
        assert approved.exit_code == 0, approved.output
        yield root
    finally:
        source_utils.set_custom_source_root(None)


def section(dom: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', dom, re.S)
    assert found, f"section {section_id!r} missing from the rendered report"
    return found.group(1)


def test_report_matches_the_audit_trail(promoted: Path, output_dir: Path) -> None:
    started = time.monotonic()
    result = invoke("report", "--out", str(promoted / "report"), "--json")
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.stdout.strip().splitlines()[-1])["report"])
    assert path == promoted / "report" / REPORT_FILE
    assert not [p for p in path.parent.iterdir() if p.name != REPORT_FILE]  # no temp left
    html_text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html_text), "external asset"

    dom = browser.dump_dom(path.as_uri())
    browser.screenshot(path.as_uri(), output_dir / "governance_report.png")
    trail = AuditTrail(load_platform_settings("local").audit.url)
    try:
        records = trail.records()
    finally:
        trail.close()

    for section_id in SECTION_IDS:
        section(dom, section_id)
    promotion = next(r for r in records if r.event_type == AuditEventType.PROMOTION)
    history = section(dom, "history")
    assert promotion.actor in history and f"<td>{promotion.model_version}</td>" in history
    assert f"<td>{promotion.seq}</td>" in history
    approval = next(r for r in records if r.event_type == AuditEventType.APPROVAL_RECORDED)
    approvals = section(dom, "approvals")
    assert approval.details["approver"] in approvals
    assert approval.details["source"] in approvals
    versions = section(dom, "versions")
    assert "validated" in versions and STAGING in versions
    trained = next(r for r in records if r.event_type == AuditEventType.TRAINING_COMPLETED)
    assert "Trained on" in versions  # from the verified training record (day-one review)
    assert f"file {trained.details['data_file_sha256'][:12]}" in versions
    assert f"verifies with {len(records)} records" in section(dom, "verification")
    assert "None:" in section(dom, "lineage") and "No batch inference" in section(dom, "drift")
    print(f"governance report + 2 Chromium renders: {time.monotonic() - started:.1f} s")


def test_the_report_is_never_written_among_the_platform_files(promoted: Path) -> None:
    keys = state_dir() / "keys"  # the signing keys of this checkout
    before = sorted(p.name for p in keys.iterdir())
    result = invoke("report", "--out", str(keys))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--out" in result.output and "state directory" in result.output
    assert sorted(p.name for p in keys.iterdir()) == before


def test_metrics_edited_in_zenml_are_shown_from_the_trail_and_found_by_check(
    promoted: Path,
) -> None:
    """The attack review: `log_metadata` on the version raised `registration.metrics` and
    `gate_metrics` (roc_auc 0.9412, recall 0.91); the report showed them and `mlops check`
    passed. The report shows the verified gate record's values (and says so); `mlops check`
    names each edited key (`metrics-vs-trail`). The metadata is put back afterwards."""
    from zenml import log_metadata
    from zenml.client import Client

    from mlops_platform.governance.promotion import recorded_gate_metrics
    from mlops_platform.reporting.governance_report import gather_report
    from readmission.names import MODEL_NAME

    url = load_platform_settings("local").audit.url
    trail = AuditTrail(url)
    try:
        gates = [
            r
            for r in trail.records(model_name=MODEL_NAME)
            if r.event_type in (AuditEventType.GATE_PASSED, AuditEventType.GATE_FAILED)
            and r.model_version == "1"
        ]
    finally:
        trail.close()
    recorded = recorded_gate_metrics(max(gates, key=lambda r: r.seq).details)
    assert {"roc_auc", "recall"} <= set(recorded)
    before = json.loads(invoke("check", "--json").stdout)["findings"]
    assert not [f for f in before if f["rule"] in ("metrics-vs-trail", "gate-metadata-vs-trail")]
    metadata = Client().get_model_version(MODEL_NAME, 1).run_metadata
    kept = {key: metadata[key] for key in ("registration", "gate_metrics")}
    forged = {"roc_auc": 0.9412, "recall": 0.91}
    log_metadata(
        metadata={
            "registration": {
                **kept["registration"],
                "metrics": {**kept["registration"]["metrics"], **forged},
            },
            "gate_metrics": {**kept["gate_metrics"], **forged},
        },
        model_name=MODEL_NAME,
        model_version="1",
    )
    try:
        (facts,) = [v for v in gather_report(MODEL_NAME, "local", url).versions if v.version == "1"]
        assert facts.metrics["roc_auc"] == recorded["roc_auc"] != forged["roc_auc"]
        assert facts.source.startswith("audit record")
        result = invoke("check", "--json")
        assert result.exit_code == ExitCode.CHECK_FAILED, result.output
        found = [
            f for f in json.loads(result.stdout)["findings"] if f["rule"] == "metrics-vs-trail"
        ]
        assert {
            key
            for f in found
            for key in ("gate_metrics", "registration.metrics")
            if key in f["message"]
        } == {"gate_metrics", "registration.metrics"}
        assert all("0.9412" in f["message"] for f in found)
    finally:
        log_metadata(metadata=kept, model_name=MODEL_NAME, model_version="1")

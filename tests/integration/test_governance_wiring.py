"""Governance reaches every run through one mechanism, and `mlops check` enforces the rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import yaml
from zenml.client import Client
from zenml.enums import ExecutionStatus

from mlops_cli.commands import training_config
from mlops_cli.errors import ExitCode
from mlops_platform.batch.preflight import PREFLIGHT_ROWS
from mlops_platform.config import config_dir
from mlops_platform.governance.policy.models import REQUIRED_THRESHOLDS
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.runtime.run_context import UngovernedRunError
from mlops_platform.trust.audit import AuditTrail
from readmission.pipelines.training import readmission_training
from tests.integration.helpers import copy_configs, invoke, write_synthetic_csv

pytestmark = pytest.mark.usefixtures("isolated_state")


def test_check_passes_on_the_project() -> None:
    result = invoke("check", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True


def test_check_fails_on_a_pipeline_without_the_model_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text())
    platform["governance"]["pipeline_packages"].append("tests.integration.broken_pipelines")
    monkeypatch.setenv(
        "MLOPS_CONFIG_DIR",
        str(copy_configs(tmp_path / "configs", {"base/platform.yaml": platform})),
    )

    result = invoke("check", "--json")

    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    findings = json.loads(result.stdout)["findings"]
    broken = {f["message"].split("`")[1] for f in findings if "ungated_training" in f["subject"]}
    assert broken == {"validate_model", "register_model"}
    promotion = [f for f in findings if f["subject"] == "pipeline ungated_promotion"]
    assert [f["rule"] for f in promotion] == ["gate-upstream"], findings
    assert "validate_model" in promotion[0]["message"]
    unchecked = [f for f in findings if f["subject"] == "pipeline unchecked_data"]
    assert [f["rule"] for f in unchecked] == ["data-schema"], findings
    assert "copy.copy" in unchecked[0]["message"] and "DataFrameSchema" in unchecked[0]["message"]


def test_check_fails_when_an_environment_lacks_a_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section, key = REQUIRED_THRESHOLDS[0].split(".")
    policy = yaml.safe_load((config_dir() / "base" / "policy.yaml").read_text())
    del policy[section][key]
    staging = yaml.safe_load((config_dir() / "staging" / "policy.yaml").read_text())
    staging.get(section, {}).pop(key, None)
    configs = copy_configs(
        tmp_path / "configs", {"base/policy.yaml": policy, "staging/policy.yaml": staging}
    )
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))

    result = invoke("check")

    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert REQUIRED_THRESHOLDS[0] in result.stdout
    assert "staging" in result.stdout


def test_check_of_a_fresh_checkout_without_a_trail_passes_and_creates_nothing(
    isolated_state: Path,
) -> None:
    """No model and no trail: nothing to compare (the trail-driven model check reads only
    trails that exist, and never creates one); `mlops check` runs in CI before any set-up."""
    trail = isolated_state / "audit.db"
    trail.unlink()
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert not trail.exists()


def test_check_after_the_model_and_its_trail_were_both_deleted_is_not_a_fresh_checkout(
    isolated_state: Path,
) -> None:
    """A review of the trail-driven check: deleting ZenML's model and the trail file together
    passed `mlops check` as a new checkout would. The machine's checkpoint of the trail (and
    the model's anchors, where they survive) say the trail held records."""
    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import audit_trail
    from readmission.names import MODEL_NAME

    trail = audit_trail("local")
    trail.append(AuditEventType.TRAINING_COMPLETED, "alice", model_name=MODEL_NAME,
                 model_version="1", details={"data_source": "file"})  # fmt: skip
    trail.records(verified=True)  # a verified read keeps this machine's checkpoint
    trail.close()
    (isolated_state / "audit.db").unlink()  # ZenML has no such model either
    result = invoke("check")
    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "deleted or moved, not never made" in result.stderr
    assert not (isolated_state / "audit.db").exists()  # nothing re-created


@pytest.mark.slow
def test_a_run_started_without_the_platform_runner_fails_closed(tmp_path: Path) -> None:
    data = write_synthetic_csv(tmp_path / "encounters.csv", patients=500)
    invoke("setup")

    with pytest.raises(RuntimeError):
        readmission_training.with_options(enable_cache=False)(
            **training_config("local", data).pipeline_parameters()
        )

    run = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    failed = [s for s in run.steps.values() if s.status == ExecutionStatus.FAILED]
    assert [s.name for s in failed] == ["validate_data"]
    assert UngovernedRunError.__name__ in (failed[0].exception_info.traceback or "")


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Webhook.received = []
    webhook_env = load_platform_settings("local").alerting.webhook_env
    monkeypatch.setenv(webhook_env, f"http://127.0.0.1:{server.server_port}/alert")
    yield _Webhook.received
    server.shutdown()


@pytest.mark.slow
def test_a_failed_step_is_audited_and_alerted(
    tmp_path: Path, webhook: list[dict[str, str]]
) -> None:
    # The bad rows come after the rows the pre-flight reads (PREFLIGHT_ROWS), so the pipeline's
    # own data gate is the step that fails.
    path = write_synthetic_csv(tmp_path / "bad.csv", patients=5000)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(frame) > PREFLIGHT_ROWS + 2
    frame.loc[frame.index[-2:], "race"] = "Martian"
    frame.to_csv(path, index=False)

    result = invoke("train", "--data", str(path))

    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "race" in result.stderr
    events = AuditTrail(load_platform_settings("local").audit.url).records()
    assert [e.event_type for e in events] == ["pipeline_failed"]
    assert events[0].details["step"] == "validate_data"
    assert "race" in events[0].details["error"]
    assert len(webhook) == 1
    assert "validate_data" in webhook[0]["text"]

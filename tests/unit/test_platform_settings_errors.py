"""Day-one review of a platform engineer's mistakes in platform.yaml and the alert webhook: each
is one message naming the file or the variable, found by `mlops check` before it matters."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from mlops_platform.config import CONFIG_DIR_VARIABLE, ConfigError, config_dir
from mlops_platform.governance.check import check_configs
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.runtime.alerting import send_alert, webhook_url_problem
from tests.integration.helpers import copy_configs


def _with_platform(tmp_path: Path, change: dict[str, object]) -> Path:
    base = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text())
    base["identity"] = {**base["identity"], **change}
    return copy_configs(tmp_path / "configs", {"base/platform.yaml": base})


@pytest.mark.parametrize("url", ["zenml.hospital.example", "https://zenml.hospital.example "])
def test_a_server_url_without_scheme_or_with_spaces_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    configs = _with_platform(tmp_path, {"zenml_server_urls": [url]})
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(configs))
    with pytest.raises(ConfigError) as refused:
        load_platform_settings("local")
    message = str(refused.value)
    assert "configs/local/platform.yaml" in message and "zenml_server_urls" in message
    assert "errors.pydantic.dev" not in message  # one line of ours, not pydantic's text
    found = [f for f in check_configs(configs) if f.rule == "platform"]
    assert {f.subject for f in found} >= {"local"} and repr(url) in found[0].message


def test_a_bad_webhook_is_named_by_check_and_never_fails_the_alert(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert webhook_url_problem("https://hooks.slack.com/services/x") is None
    assert webhook_url_problem("http://127.0.0.1:9/hook") is None
    assert "not an https URL" in str(webhook_url_problem("hooks.slack.com/x"))
    assert "plain http" in str(webhook_url_problem("http://hooks.example/x"))
    assert "not an https URL" in str(webhook_url_problem("file:///etc/passwd"))
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", "hooks.slack.com/x")
    with caplog.at_level(logging.WARNING):
        assert send_alert("degraded", "MLOPS_ALERT_WEBHOOK_URL")[0] == "log"  # raised before
    assert "is not used" in caplog.text
    found = [f for f in check_configs() if f.rule == "alert-webhook"]
    assert found and "MLOPS_ALERT_WEBHOOK_URL" in found[0].message

"""`mlops serve start|stop` wait for ZenML's deployer: its poll loop, run for real, checks often."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from zenml.deployers import base_deployer
from zenml.deployers.base_deployer import BaseDeployer
from zenml.enums import DeploymentStatus
from zenml.models import DeploymentOperationalState

from mlops_platform.serving.deploy import poll_deployer_faster


class StartsAfter:
    """Stands in for a deployer whose service answers its health check after `checks` checks."""

    def __init__(self, checks: int) -> None:
        self.left = checks
        self.asked = 0

    def do_get_deployment_state(self, deployment: Any) -> DeploymentOperationalState:
        self.asked += 1
        self.left -= 1
        up = self.left <= 0
        return DeploymentOperationalState(
            status=DeploymentStatus.RUNNING if up else DeploymentStatus.PENDING
        )

    def _check_deployment_health(self, deployment: Any) -> bool:
        return True

    def _update_deployment(self, deployment: Any, state: DeploymentOperationalState) -> Any:
        return SimpleNamespace(name=deployment.name, status=state.status)


def test_the_deployer_checks_a_starting_service_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base_deployer, "time", time)  # restored after the test
    assert poll_deployer_faster(0.05) and poll_deployer_faster(0.05)  # idempotent
    deployer = StartsAfter(checks=3)
    started = time.monotonic()
    deployment, _ = BaseDeployer._poll_deployment(
        deployer,  # type: ignore[arg-type]
        SimpleNamespace(name="d", status=DeploymentStatus.PENDING),  # type: ignore[arg-type]
        DeploymentStatus.RUNNING,
        timeout=60,
    )
    waited = time.monotonic() - started
    assert deployment.status == DeploymentStatus.RUNNING and deployer.asked == 3
    assert waited < 2.0  # ZenML's own loop waits 5 s between checks: 10 s here
    assert base_deployer.time.time() == pytest.approx(time.time(), abs=1.0)


def test_serve_start_refuses_a_log_directory_it_cannot_write(tmp_path: Path) -> None:
    """Insider review: `serve start --log-dir` on a folder nothing could be written to started
    (exit 0). The command checks the folder first and names it (exit 7)."""
    from mlops_cli.errors import ExitCode, exit_code_for
    from mlops_platform.serving.deploy import ServingSetupError, require_writable_log

    (tmp_path / "file").write_text("x")
    for directory in (tmp_path / "file", tmp_path / "file" / "log"):
        with pytest.raises(ServingSetupError, match="cannot be written") as refused:
            require_writable_log(directory)
        assert str(directory) in str(refused.value)
    assert exit_code_for(ServingSetupError) == ExitCode.CONFIG
    require_writable_log(tmp_path / "new" / "log")  # made, written, accepted
    assert (tmp_path / "new" / "log").is_dir()

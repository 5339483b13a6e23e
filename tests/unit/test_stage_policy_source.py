"""Which approval policy judges a stage, and that a config folder of one's own cannot change it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_platform.config import config_dir
from mlops_platform.governance.model_stages import approval_policy
from tests.integration.helpers import copy_configs


def test_a_private_config_folder_does_not_change_production_roles_off_a_laptop(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: a folder of one's own that makes mallory a model risk officer, used with a
    # trail that is not this checkout's local file (so the stage's own policy applies).
    base = yaml.safe_load((config_dir() / "base" / "approvals.yaml").read_text())
    base["roles"]["model_risk_officer"] = ["carol", "mallory"]
    monkeypatch.setenv(
        "MLOPS_CONFIG_DIR",
        str(copy_configs(tmp_path / "configs", {"base/approvals.yaml": base})),
    )
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'shared-trail.db'}")

    assert "mallory" not in approval_policy("production").people_in(["model_risk_officer"])

    # On a laptop checkout (the trail in the state directory) the folder is the user's own.
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{isolated_state / 'audit.db'}")
    assert "mallory" in approval_policy("production").people_in(["model_risk_officer"])

"""Platform settings per environment (audit store, tracking experiment, alerting)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlops_platform.config import load_layered
from mlops_platform.expand import expand_env
from mlops_platform.workspace import state_dir


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class TrackingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: str


class AlertingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_env: str | None = None


class PlatformSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit: AuditSettings
    tracking: TrackingSettings
    alerting: AlertingSettings


def load_platform_settings(env: str, directory: Path | None = None) -> PlatformSettings:
    environ = {"MLOPS_STATE_DIR": str(state_dir()), **os.environ}
    raw = expand_env(load_layered("platform", env, directory), environ, f"platform.yaml[{env}]")
    return PlatformSettings.model_validate(raw)

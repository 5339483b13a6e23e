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


class SerializationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trusted_prefixes: tuple[str, ...]


class PlatformSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit: AuditSettings
    tracking: TrackingSettings
    alerting: AlertingSettings
    serialization: SerializationSettings


def load_platform_settings(env: str, directory: Path | None = None) -> PlatformSettings:
    environ = {"MLOPS_STATE_DIR": str(state_dir()), **os.environ}
    raw = expand_env(load_layered("platform", env, directory), environ, f"platform.yaml[{env}]")
    return PlatformSettings.model_validate(raw)


def trusted_model_prefixes(env: str | None = None) -> tuple[str, ...]:
    """Module prefixes a stored model may use; outside a governed run the local settings apply."""
    chosen = env or os.environ.get("MLOPS_RUN_ENV") or "local"
    raw = load_layered("platform", chosen)
    return SerializationSettings.model_validate(raw["serialization"]).trusted_prefixes

"""Record a governance event: append it to the hash-chained audit trail and mirror it onto the model
version's metadata, so the ZenML dashboard shows the same history the auditor verifies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditRecord, AuditTrail

logger = logging.getLogger(__name__)


def audit_trail(env: str) -> AuditTrail:
    return AuditTrail(load_platform_settings(env).audit.url)


def record_event(
    env: str,
    event_type: str,
    actor: str,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    stage: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    record = audit_trail(env).append(
        event_type,
        actor,
        model_name=model_name,
        model_version=model_version,
        stage=stage,
        details={"environment": env, **(details or {})},
    )
    if model_name and model_version:
        mirror_to_model_version(record)
    return record


class _Named(Protocol):
    name: str


class ModelVersionLike(Protocol):
    """A ZenML model version (`ModelVersionResponse`): its number and its model's name."""

    name: str
    model: _Named


def record_version_event(
    env: str,
    event_type: str,
    actor: str,
    version: ModelVersionLike,
    *,
    stage: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """`record_event` about one ZenML model version."""
    return record_event(
        env,
        event_type,
        actor,
        model_name=version.model.name,
        model_version=version.name,
        stage=stage,
        details=details,
    )


def mirror_to_model_version(record: AuditRecord) -> None:
    """Write the event under a key unique to its sequence number, so earlier events stay visible."""
    from zenml import log_metadata

    log_metadata(
        metadata={
            f"audit_{record.seq:06d}_{record.event_type}": {
                "seq": record.seq,
                "event_type": record.event_type,
                "actor": record.actor,
                "stage": record.stage or "",
                "recorded_at": record.recorded_at,
                "record_hash": record.record_hash,
                "details": dict(record.details),
            }
        },
        model_name=record.model_name,
        model_version=record.model_version,
    )

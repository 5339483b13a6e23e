"""Tamper-evident audit trail: every governance event in one hash chain an auditor can verify."""

from mlops_platform.trust.audit.chain import (
    EVENT_TYPES,
    GENESIS,
    AuditChainBroken,
    AuditError,
    AuditEventType,
    AuditRecord,
    AuditTrailMissing,
    ChainVerification,
    InvalidAuditEvent,
    canonical_json,
    canonical_payload,
    compute_hash,
    seal_record,
    validate_event,
    verify_chain,
)
from mlops_platform.trust.audit.store import AuditTrail, LockBusy

__all__ = [
    "EVENT_TYPES",
    "GENESIS",
    "AuditChainBroken",
    "AuditError",
    "AuditEventType",
    "AuditRecord",
    "AuditTrail",
    "AuditTrailMissing",
    "ChainVerification",
    "InvalidAuditEvent",
    "LockBusy",
    "canonical_json",
    "canonical_payload",
    "compute_hash",
    "seal_record",
    "validate_event",
    "verify_chain",
]

"""`mlops history --at`: which version held each stage at a moment, and under which policy.

The policy of a tenure is the SHA-256 of the effective governance configuration (the layered
`policy` and `approvals` configs of the stage's environment) that the promotion or rollback which
started the tenure recorded in its audit event (`policy_sha256`). Events recorded before that
field existed say so ("not recorded") rather than guessing from today's files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlops_platform.governance.promotion import Tenure
from mlops_platform.trust.audit import AuditRecord

POLICY_CONFIGS: Final = ("policy", "approvals")
POLICY_HASH_KEY: Final = "policy_sha256"


class HistoryTimeError(ValueError):
    """The moment given to `mlops history --at` is not a timestamp."""


def effective_policy_sha256(env: str, directory: Path | None = None) -> str:
    """SHA-256 of the canonical JSON of the layered policy and approvals configs of `env`."""
    from mlops_platform.runtime.preconditions import config_fingerprint

    return config_fingerprint(env, directory, POLICY_CONFIGS)


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or time; UTC when it has no offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise HistoryTimeError(
            f"--at {text!r} is not an ISO 8601 date or time; write e.g. 2026-03-01 or "
            "2026-03-01T12:00:00+00:00."
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def holder_at(tenures: Sequence[Tenure], moment: datetime) -> Tenure | None:
    """The tenure covering `moment` (since <= moment < until), or None."""
    for tenure in tenures:
        since = parse_moment(tenure.since)
        until = parse_moment(tenure.until) if tenure.until else None
        if since <= moment and (until is None or moment < until):
            return tenure
    return None


def stages_at(
    history: Mapping[str, Sequence[Tenure]],
    records: Sequence[AuditRecord],
    moment: datetime,
) -> dict[str, dict[str, Any] | None]:
    """Per stage: the holder at `moment` with the policy hash its starting event recorded."""
    by_seq = {record.seq: record for record in records}
    result: dict[str, dict[str, Any] | None] = {}
    for stage, tenures in history.items():
        tenure = holder_at(tenures, moment)
        if tenure is None:
            result[stage] = None
            continue
        start = by_seq.get(tenure.seq)
        recorded = start.details.get(POLICY_HASH_KEY) if start is not None else None
        result[stage] = {
            **tenure.as_dict(),
            POLICY_HASH_KEY: str(recorded) if recorded else None,
        }
    return result

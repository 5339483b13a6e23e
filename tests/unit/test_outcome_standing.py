"""Which outcome verdict stands for a version: a later `ok` never clears a `degraded` one, on the
version's standing verdict and in the governance report."""

from __future__ import annotations

from typing import Any

from _reports import report_of

from mlops_platform.monitoring.verdict import Verdict, standing_checks
from mlops_platform.reporting.governance_report import render_governance_report
from mlops_platform.trust.audit import (
    GENESIS,
    AuditEventType,
    AuditRecord,
    seal_record,
)

OK, DEGRADED, NOT_ASSESSED = Verdict.OK.value, Verdict.DEGRADED.value, Verdict.NOT_ASSESSED.value


def checks(*verdicts: tuple[str, str]) -> list[AuditRecord]:
    """`outcomes_checked` records, one per (version, verdict), in this order."""
    records: list[AuditRecord] = []
    for seq, (version, verdict) in enumerate(verdicts, start=1):
        records.append(
            seal_record(
                seq=seq,
                recorded_at=f"2026-11-{seq:02d}T00:00:00+00:00",
                event_type=AuditEventType.OUTCOMES_CHECKED,
                actor="monitor",
                model_name="readmission",
                model_version=version,
                stage=None,
                details={
                    "verdict": verdict,
                    "as_of": f"2026-10-{seq:02d}",
                    "failed_checks": ["roc_auc_floor"] if verdict == DEGRADED else [],
                    "recommendation": "retrain on recent data" if verdict == DEGRADED else "",
                },
                prev_hash=records[-1].record_hash if records else GENESIS,
            )
        )
    return records


def test_a_later_ok_does_not_clear_a_degraded_verdict() -> None:
    records = checks(
        ("1", DEGRADED),  # seq 1
        ("2", OK),
        ("1", OK),  # seq 3: other labels, an earlier as-of
        ("3", OK),
        ("3", DEGRADED),  # seq 5
        ("2", NOT_ASSESSED),  # seq 6
        ("4", DEGRADED),
        ("4", DEGRADED),  # seq 8: the newest degraded check stands
    )

    standing = standing_checks(list(reversed(records)))  # order of the input does not matter

    assert {v: (c.standing.seq, c.latest.seq) for v, c in standing.items()} == {
        "1": (1, 3),
        "2": (6, 6),
        "3": (5, 5),
        "4": (8, 8),
    }
    assert [v for v, c in standing.items() if c.overridden] == ["1"]


def report(outcome_checks: Any) -> str:
    return render_governance_report(report_of(outcome_checks=outcome_checks))


def test_the_report_shows_the_standing_degraded_verdict_and_the_later_check() -> None:
    standing = standing_checks(checks(("1", DEGRADED), ("1", OK), ("2", OK)))

    html = report(tuple(standing.values()))

    outcomes = html[html.index("Realised performance on true outcomes") :]
    row_1 = outcomes[outcomes.index("<td>1</td>") : outcomes.index("<td>2</td>")]
    assert DEGRADED in row_1 and "roc_auc_floor" in row_1
    assert "ok (seq 2, as of 2026-10-02): does not clear the degraded verdict" in row_1
    assert "retrain on recent data" in outcomes

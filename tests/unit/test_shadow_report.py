"""The shadow comparison in the governance report: numbers from the recorded log parts only.

A real prediction log is written with served and shadow rows of two staging versions; the audit
records a stopped service would write are built from what the log wrote. The expected agreement,
mean difference and rank correlation are computed here with numpy on the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from _raw_frames import raw_frame
from _reports import report_of

from mlops_platform.reporting.governance_report import (
    GovernanceReport,
    render_governance_report,
    shadow_comparisons,
)
from mlops_platform.serving.log import PredictionLog, parts
from mlops_platform.serving.scorer import RealtimeScorer, ServedModel
from mlops_platform.serving.service import _log_schema
from readmission.core import uci
from readmission.pipelines.realtime import realtime_contract

THRESHOLDS = (0.15, 0.3)  # two services, each recording its own threshold
CONTRACT = realtime_contract(THRESHOLDS[0])
SERVED = ServedModel(None, "readmission", "7", "production", "id-7")
SHADOWS = {v: ServedModel(None, "readmission", v, "staging", f"id-{v}") for v in ("8", "9")}


def _request(seed: int) -> list[dict[str, Any]]:
    frame = raw_frame(40, seed=seed).drop(columns=[uci.TARGET_COLUMN]).head(6)
    return [
        {k: (int(v) if k in uci.INTEGER_COLUMNS else str(v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _service_log(directory: Path, threshold: float, shadow_version: str, seed: int) -> Any:
    """One stopped service: its log (three requests) and its `serving_stopped` record."""
    scorer = RealtimeScorer(CONTRACT)
    log = PredictionLog(directory, _log_schema(CONTRACT), batch_rows=4, background=False)
    rng = np.random.default_rng(seed)
    for request in range(3):
        frame = scorer.frame(_request(seed + request))
        served = rng.uniform(0.02, 0.6, len(frame))
        shadow = np.clip(served + rng.normal(0.0, 0.08, len(frame)), 0.0, 1.0)
        for model, scores, is_shadow in (
            (SERVED, served, False),
            (SHADOWS[shadow_version], shadow, True),
        ):
            log.append(
                scorer.log_table(
                    model,
                    frame,
                    scores,
                    request_id=f"{seed}-{request}",
                    inference_run_id=f"serve-{seed}",
                    shadow=is_shadow,
                    scored_at=datetime(2026, 11, 30, tzinfo=UTC),
                )
            )
    log.close()
    return SimpleNamespace(
        details={
            "log_dir": str(directory),
            "log_parts": {p.path.name: p.sha256 for p in log.written},
            "operating_threshold": threshold,
            "inference_run_id": f"serve-{seed}",
        }
    )


def _expected(rows: pd.DataFrame, threshold: float) -> dict[str, float]:
    served = rows[~rows["shadow"]].sort_values(["request_id", uci.ENCOUNTER_ID])
    shadow = rows[rows["shadow"]].sort_values(["request_id", uci.ENCOUNTER_ID])
    a = served["readmission_risk"].to_numpy()
    b = shadow["readmission_risk"].to_numpy()
    ranks_a = pd.Series(a).rank().to_numpy()
    ranks_b = pd.Series(b).rank().to_numpy()
    return {
        "n_encounters": len(a),
        "agreement": float(np.mean((a >= threshold) == (b >= threshold))),
        "mean_difference": float(np.mean(b - a)),
        "rank_correlation": float(np.corrcoef(ranks_a, ranks_b)[0, 1]),
    }


def _rows(directory: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in parts(directory)], ignore_index=True)


def test_report_shows_agreement_difference_and_rank_correlation_per_staging_version(
    tmp_path: Path,
) -> None:
    first = _service_log(tmp_path / "a", THRESHOLDS[0], "8", seed=3)
    second = _service_log(tmp_path / "b", THRESHOLDS[1], "9", seed=11)
    found, note = shadow_comparisons([first, second])
    assert note == "" and sorted(found) == ["8", "9"]
    for version, directory, threshold in (("8", "a", THRESHOLDS[0]), ("9", "b", THRESHOLDS[1])):
        expected = _expected(_rows(tmp_path / directory), threshold)
        got = found[version]
        assert got["n_encounters"] == expected["n_encounters"] == 18
        assert got["served_versions"] == ["7"] and got["requests"] == 3
        for name in ("agreement", "mean_difference", "rank_correlation"):
            assert abs(got[name] - expected[name]) < 1e-12, (version, name)
    html = render_governance_report(_report(found, note))
    expected_8 = _expected(_rows(tmp_path / "a"), THRESHOLDS[0])
    assert f"{expected_8['agreement']:.4f}" in html
    assert f"{expected_8['mean_difference']:+.4f}" in html
    assert f"{expected_8['rank_correlation']:.4f}" in html


def test_only_recorded_unchanged_parts_count(tmp_path: Path) -> None:
    record = _service_log(tmp_path / "a", THRESHOLDS[0], "8", seed=3)
    before, _ = shadow_comparisons([record])
    # A part the service did not record (written by someone else into the recorded directory).
    extra = _service_log(tmp_path / "a", THRESHOLDS[0], "9", seed=20)
    assert extra.details["log_parts"]
    after, _ = shadow_comparisons([record])
    assert after == before and "9" not in after
    # A recorded part whose bytes changed: nothing is shown, and the note says why.
    part = sorted(record.details["log_parts"])[0]
    table = pq.read_table(tmp_path / "a" / part)
    index = table.schema.get_field_index("readmission_risk")
    forged = table.set_column(index, "readmission_risk", [np.full(table.num_rows, 0.99)])
    pq.write_table(forged, tmp_path / "a" / part)
    found, note = shadow_comparisons([record])
    assert found == {} and "changed after it was written" in note
    assert "changed after it was written" in render_governance_report(_report(found, note))


def _report(shadow: dict[str, Any], note: str) -> GovernanceReport:
    return report_of(shadow=shadow, shadow_note=note)

"""Joining and evaluating labelled predictions: wall time, CPU time and peak memory per size.

What is timed is what the `check_outcomes` step does after ZenML hands it the request: reading and
checking the labels file (CSV, in chunks), reading every batch result's predictions with the
SHA-256 check, the join, and the assessment of the model version (ROC-AUC and Brier with 200-resample
patient-clustered intervals, calibration, ECE, the subgroup table, the windows) with the default
thresholds (`bootstrap_resamples` from configs/base/monitoring.yaml, seed 0), each phase timed
too. Not timed: ZenML's per-run overhead, the audit event and the HTML report (the same
few seconds whatever the size). The inputs are synthetic (about 1.4 encounters per patient,
11% readmitted, a score that ranks them with ROC-AUC about 0.7) and written once under
bench-output/outcomes/. Each size runs in a fresh process that reports its peak resident set
size (`ru_maxrss`, imports included) and, on Linux, the peak of each phase (the kernel's high-water
mark, reset after each phase). Memory is flat when the peak grows by less than
`FLAT_MIB_PER_MILLION` per million rows between the two sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUTPUT = Path("bench-output") / "outcomes"
SIZES = (100_000, 1_000_000)
TARGET_SECONDS = 30.0
FLAT_MIB_PER_MILLION = 60.0
_STATUS = Path("/proc/self/status")
_RUN_ID = "bench-run"


def inputs(rows: int) -> tuple[Path, Path]:
    """(batch result directory, labels CSV) of `rows` labelled predictions, cached."""
    import numpy as np
    import pandas as pd

    from mlops_platform.batch.results import ResultDirectory, is_result

    output = OUTPUT / f"results-{rows}"
    labels_path = OUTPUT / f"labels-{rows}.csv"
    if is_result(output / _RUN_ID) and labels_path.is_file():
        return output, labels_path
    rng = np.random.default_rng(rows)
    patients = rng.integers(0, int(rows / 1.4), rows)
    risk = rng.beta(2, 14, rows)
    outcome = rng.random(rows) < np.clip(risk * 0.9 + 0.02, 0, 1)
    ages = np.array(["[40-50)", "[60-70)", "[70-80)", "[80-90)"])
    predictions = pd.DataFrame(
        {
            "encounter_id": np.arange(rows, dtype="int64") + 10**8,
            "patient_nbr": patients.astype("int64"),
            "readmission_risk": risk,
            "risk_band": "standard",
            "model_name": "patient_readmission_predictor",
            "model_version": "1",
            "model_stage": "production",
            "inference_run_id": _RUN_ID,
            "scored_at": pd.Timestamp("2026-03-01", tz="UTC"),
        }
    )
    result = ResultDirectory(output, _RUN_ID)
    predictions.to_parquet(result.path("predictions.parquet"), index=False)
    result.publish(
        {
            "inference_run_id": _RUN_ID,
            "model": {"name": "patient_readmission_predictor", "version": "1"},
            "contract": {
                "id_columns": ["encounter_id", "patient_nbr"],
                "score_column": "readmission_risk",
                "operating_threshold": 0.2,
            },
            "files": {},
            "timings": {"finished_at": "2026-03-01T00:00:00+00:00"},
        }
    )
    pd.DataFrame(
        {
            "encounter_id": predictions["encounter_id"],
            "readmitted": np.where(outcome, "<30", "NO"),
            "race": rng.choice(["Caucasian", "AfricanAmerican", "?", "Hispanic"], rows),
            "gender": rng.choice(["Female", "Male"], rows),
            "age": rng.choice(ages, rows),
        }
    ).to_csv(labels_path, index=False)
    return output, labels_path


def measure(rows: int) -> dict[str, Any]:
    """One timed check in this process (called in a fresh process by `run`)."""
    import pandas as pd

    from mlops_platform.monitoring.assess import VersionFacts, assess_versions
    from mlops_platform.monitoring.join import join_outcomes
    from mlops_platform.monitoring.labels import read_labels
    from mlops_platform.monitoring.predictions import _sha256, load_served_predictions
    from mlops_platform.monitoring.verdict import load_outcome_thresholds
    from readmission.pipelines.outcome_monitoring import readmission_outcome_contract

    output, labels_path = inputs(rows)
    contract = readmission_outcome_contract()
    thresholds = load_outcome_thresholds("local")
    recorded = _sha256(output / _RUN_ID / "predictions.parquet")
    peaks = {"imports": _phase_peak_mib()}
    wall, cpu = time.perf_counter(), time.process_time()
    phases: dict[str, float] = {}
    started = wall
    labels = read_labels(labels_path, contract)
    phases["labels"], started = time.perf_counter() - started, time.perf_counter()
    peaks["labels"] = _phase_peak_mib()
    predictions, _ = load_served_predictions(output, "patient_nbr", lambda _: recorded)
    phases["predictions"], started = time.perf_counter() - started, time.perf_counter()
    peaks["predictions"] = _phase_peak_mib()
    joined = join_outcomes(
        predictions, labels.frame, "encounter_id", pd.Timestamp.now(tz="UTC"), thresholds.window
    )
    del predictions, labels  # as the check_outcomes step does
    phases["join"], started = time.perf_counter() - started, time.perf_counter()
    peaks["join"] = _phase_peak_mib()
    facts = {"1": VersionFacts("patient_readmission_predictor", "1", {"roc_auc": 0.7}, [], 0.2)}
    (version,) = assess_versions(joined, facts, thresholds, {})
    phases["assess"] = time.perf_counter() - started
    peaks["assess"] = _phase_peak_mib()
    return {
        "rows": rows,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        # Resetting the high-water mark per phase also resets ru_maxrss: the peak is the largest
        # phase peak where those are known.
        "peak_rss_mib": max(
            [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
            + [v for v in peaks.values() if v is not None]
        ),
        "phase_seconds": phases,
        "phase_peak_rss_mib": peaks,
        "bootstrap_resamples": thresholds.bootstrap_resamples,
        "n_labelled": version["n_labelled"],
        "roc_auc": version["roc_auc"],
    }


def run(repeats: int) -> dict[str, Any]:
    """Medians over `repeats` fresh processes per size."""
    sizes = []
    for rows in SIZES:
        inputs(rows)
        samples = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-m", "benchmarks.outcomes", "--measure", str(rows)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.splitlines()[-1]
            )
            for _ in range(repeats)
        ]
        sizes.append(
            {
                "rows": rows,
                "seconds_median": statistics.median(s["seconds"] for s in samples),
                "cpu_seconds_median": statistics.median(s["cpu_seconds"] for s in samples),
                "peak_rss_mib_median": statistics.median(s["peak_rss_mib"] for s in samples),
                "phase_seconds_median": {
                    phase: statistics.median(s["phase_seconds"][phase] for s in samples)
                    for phase in samples[0]["phase_seconds"]
                },
                "phase_peak_rss_mib_median": {
                    phase: _median_or_none([s["phase_peak_rss_mib"][phase] for s in samples])
                    for phase in samples[0]["phase_peak_rss_mib"]
                },
                "bootstrap_resamples": samples[0]["bootstrap_resamples"],
                "samples": samples,
            }
        )
    small, large = sizes[0], sizes[-1]
    growth = (large["peak_rss_mib_median"] - small["peak_rss_mib_median"]) / (
        (large["rows"] - small["rows"]) / 1_000_000
    )
    return {
        "sizes": sizes,
        "target_seconds": TARGET_SECONDS,
        "rss_growth_mib_per_million": growth,
        "flat_mib_per_million": FLAT_MIB_PER_MILLION,
        "cpus": os.cpu_count(),
    }


def _phase_peak_mib() -> float | None:
    """Peak resident memory since the last call (MiB), then reset; None off Linux."""
    try:
        status = _STATUS.read_text()
        Path("/proc/self/clear_refs").write_text("5")  # resets the high-water mark
    except OSError:
        return None
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure(args.measure)))


if __name__ == "__main__":
    main()

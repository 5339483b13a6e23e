"""Batch scoring throughput and peak memory at 100k, 1M and 5M synthetic rows with the UCI schema.

What is timed is the platform's `BatchScorer`, exactly as the `score_batch` step runs it: streamed
CSV reading with the SHA-256 of the file, the team's text-to-frame conversion and schema
validation, feature engineering and the calibrated model (`predict_proba` of the whole pipeline),
drift accumulation and Parquet output. The patient history of the model's training cohort is
attached as the step attaches it; the inputs' patients are new to it, so each chunk pays the
lookup but finds no earlier encounters. Loading the model and the history, importing the
contract's code and ZenML's per-run overhead (a few seconds, whatever the size) are not timed.
Each measurement runs in a fresh process that reports its own peak resident set size
(`ru_maxrss`), which includes the imports and the loaded model, and its CPU seconds per 100k rows,
which other load on a shared machine barely moves: CPUs divided by it bounds the throughput an
idle machine could reach.

Inputs are written once in chunks by `iter_synthetic_chunks` and cached in bench-output/inference/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUTPUT = Path("bench-output") / "inference"
SIZES = (100_000, 1_000_000, 5_000_000)
TARGET_ROWS_PER_SECOND = 50_000
TARGET_PEAK_MIB = 1536
_WRITE_CHUNK_ROWS = 200_000
_TRAINING_PATIENTS = 15_000


def input_file(rows: int) -> Path:
    """A cached CSV of `rows` synthetic encounters (written under a temporary name, then renamed)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from readmission.core.synthetic import iter_synthetic_chunks

    path = OUTPUT / f"synthetic-{rows}.csv"
    if path.is_file():
        return path
    OUTPUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    for chunk in iter_synthetic_chunks(rows, _WRITE_CHUNK_ROWS, seed=2024):
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if writer is None:
            writer = pa_csv.CSVWriter(
                partial, table.schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )
        writer.write_table(table)
    if writer is None:
        raise RuntimeError(f"No rows generated for {rows} rows.")
    writer.close()
    os.replace(partial, path)
    return path


def model_files() -> tuple[Path, Path, Path]:
    """A model trained like `mlops train` on synthetic data, its drift reference and the
    patient history (Parquet) scoring attaches to it."""
    from mlops_platform.evaluation.drift import build_reference
    from mlops_platform.materializers.skops_model import dumps_model
    from readmission.core.cohort import build_cohort, split_by_patient
    from readmission.core.history import history_table
    from readmission.core.model import predict_risk, train_readmission_model
    from readmission.core.params import ModelParams, SplitParams
    from readmission.core.synthetic import generate_encounters
    from readmission.monitoring import MONITORED_CATEGORICAL, MONITORED_NUMERIC

    model_path, reference_path = OUTPUT / "model.skops", OUTPUT / "drift_reference.json"
    history_path = OUTPUT / "patient_history.parquet"
    if model_path.is_file() and reference_path.is_file() and history_path.is_file():
        return model_path, reference_path, history_path
    OUTPUT.mkdir(parents=True, exist_ok=True)
    cohort = build_cohort(generate_encounters(_TRAINING_PATIENTS, seed=11))
    train, validation, _ = split_by_patient(cohort, SplitParams())
    model = train_readmission_model(train, validation, ModelParams())
    reference = build_reference(
        validation, predict_risk(model, validation), MONITORED_NUMERIC, MONITORED_CATEGORICAL
    )
    reference_path.write_text(json.dumps(reference.as_dict()))
    history_table(cohort).to_parquet(history_path)
    model_path.write_bytes(dumps_model(model))
    return model_path, reference_path, history_path


def score_once(
    data: Path, files: tuple[Path, Path, Path], chunk_rows: int, workers: int
) -> dict[str, Any]:
    """In this process: load the model and its context as the step does, score `data` into a
    temporary directory, report."""
    import pandas as pd

    from mlops_platform.batch.contract import BatchRequest
    from mlops_platform.batch.scoring import BatchScorer, PredictionStamp, load_callable
    from mlops_platform.evaluation.drift import (
        DriftAccumulator,
        ReferenceProfile,
        load_drift_thresholds,
    )
    from mlops_platform.materializers.skops_model import loads_model
    from readmission.pipelines.batch_inference import readmission_batch_inference

    model_path, reference_path, history_path = files
    model = loads_model(model_path.read_bytes())
    reference = ReferenceProfile.from_dict(json.loads(reference_path.read_text()))
    contract = _contract(readmission_batch_inference)
    if contract.bind_context:
        load_callable(contract.bind_context)(model, pd.read_parquet(history_path))
    with tempfile.TemporaryDirectory() as scratch:
        request = BatchRequest(
            input_path=str(data),
            output_dir=scratch,
            stage="production",
            chunk_rows=chunk_rows,
            workers=workers,
        )
        drift = DriftAccumulator(reference)
        stamp = PredictionStamp("benchmark", "1", "production", "benchmark")
        scorer = BatchScorer(contract, model, stamp, drift, request)
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        summary = scorer.score(
            Path(scratch) / "predictions.parquet", Path(scratch) / "quarantine.parquet"
        )
        drift.result(load_drift_thresholds("local"))
        seconds = time.perf_counter() - started
        cpu_seconds = _cpu_seconds() - cpu_before
    return {
        "rows": summary.rows_scored,
        "seconds": seconds,
        "rows_per_second": summary.rows_scored / seconds,
        "cpu_seconds_per_100k_rows": cpu_seconds / summary.rows_scored * 100_000,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): unlike wall time, barely moved by other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _contract(pipeline: Any) -> Any:
    """The contract the batch-inference pipeline passes, with the configured threshold."""
    from mlops_cli.commands import training_config
    from mlops_platform.batch.contract import BatchRequest

    evaluation = training_config("local", None).evaluation
    request = BatchRequest(input_path="-", output_dir="-", stage="production")
    pipeline.prepare(scoring=request, evaluation=evaluation)
    return pipeline.invocations["score_batch"].parameters["contract"]


def measure(rows: int, repeats: int, chunk_rows: int, workers: int) -> dict[str, Any]:
    data = input_file(rows)
    command = [
        sys.executable,
        "-m",
        "benchmarks.inference",
        "--child",
        str(data),
        *(str(path) for path in model_files()),
        str(chunk_rows),
        str(workers),
    ]
    runs = []
    for _ in range(repeats):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"Benchmark run for {rows} rows failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "rows": rows,
        "input_bytes": data.stat().st_size,
        "runs": runs,
        "rows_per_second_median": statistics.median(r["rows_per_second"] for r in runs),
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib_median": statistics.median(r["peak_rss_mib"] for r in runs),
        "cpu_seconds_per_100k_rows_median": statistics.median(
            r["cpu_seconds_per_100k_rows"] for r in runs
        ),
    }


def run(
    repeats: int, sizes: tuple[int, ...] = SIZES, chunk_rows: int = 50_000, workers: int = 2
) -> dict[str, Any]:
    return {
        "chunk_rows": chunk_rows,
        "workers": workers,
        "cpus": os.cpu_count(),
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
        "target_peak_mib": TARGET_PEAK_MIB,
        "sizes": [measure(rows, repeats, chunk_rows, workers) for rows in sizes],
    }


def _child() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=Path, required=True)
    parser.add_argument("model", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("history", type=Path)
    parser.add_argument("chunk_rows", type=int)
    parser.add_argument("workers", type=int)
    args = parser.parse_args()
    from mlops_platform import workspace

    workspace.activate()
    files = (args.model, args.reference, args.history)
    result = score_once(args.child, files, args.chunk_rows, args.workers)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    _child()

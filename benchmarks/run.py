"""`make bench`: performance figures (medians over repeats; this machine is shared and noisy).

Sections: `zenml` (ZenML's fixed cost per step and per artifact), `training` (the governed
pipeline against plain Python, on the real UCI file),
`inference` (batch scoring throughput and peak memory at 100k, 1M and 5M synthetic rows) and
`lifecycle` (each stage of `mlops demo`, once, cold, on the real file), `audit` (verification
of 10k and 1M signed audit records, and the verified reads of a promotion), `outcomes` (joining
and evaluating 100k and 1M synthetic labelled predictions) and `serving` (real-time latency,
throughput and memory of `mlops serve` on loopback, with and without shadow).
Figures above `benchmarks/budget.yaml` make it exit 1. `--only SECTION` runs one; without it,
sections that need the data file are skipped with a note when none is set.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from mlops_platform import workspace

OUTPUT = Path("bench-output")
SHARED_DEV_DATA = Path("../shared/data/uci-diabetes-130/diabetic_data_dev.csv.gz")
SECTIONS = ("zenml", "training", "inference", "lifecycle", "audit", "outcomes", "serving")
NEEDS_DATA = ("training", "lifecycle")


def default_data() -> Path | None:
    value = os.environ.get("READMISSION_DATA")
    if value:
        return Path(value)
    return SHARED_DEV_DATA.resolve() if SHARED_DEV_DATA.is_file() else None


def print_zenml(results: dict[str, Any]) -> None:
    z = results["zenml"]
    print(f"ZenML fixed costs ({z['repeats']} repeats, medians; pass-through DataFrame steps):")
    print(f"  one-step run     {z['one_step_run_median_s']:7.2f} s")
    print(f"  per extra step   {z['per_step_s']:7.2f} s")
    print(f"  per extra output {z['per_artifact_s']:7.2f} s")


def print_training(results: dict[str, Any], data: Path, repeats: int) -> None:
    t = results["training"]
    print(f"Training on {data} ({repeats} repeats, medians):")
    print(f"  plain Python     {t['plain_python_median_s']:7.1f} s")
    print(
        f"  ZenML pipeline   {t['zenml_pipeline_median_s']:7.1f} s  (governed: hooks, MLflow, audit)"
    )
    print(f"  ratio            {t['ratio']:7.2f}x")
    print(
        f"  first run        {t['zenml_first_run_s']:7.1f} s  (store set-up; computes the data "
        "steps that later runs reuse)"
    )


def print_inference(results: dict[str, Any], repeats: int) -> None:
    i = results["inference"]
    print(
        f"Batch scoring ({repeats} repeats, medians; chunks of {i['chunk_rows']:,} rows, "
        f"{i['workers']} workers, {i['cpus']} CPUs; reading, SHA-256, validation, features, "
        "model, drift and Parquet included):"
    )
    print(f"  {'rows':>10}  {'rows/s':>9}  {'seconds':>8}  {'peak RSS':>10}  {'CPU s/100k':>10}")
    for size in i["sizes"]:
        print(
            f"  {size['rows']:>10,}  {size['rows_per_second_median']:>9,.0f}  "
            f"{size['seconds_median']:>8.1f}  {size['peak_rss_mib_median']:>6,.0f} MiB  "
            f"{size['cpu_seconds_per_100k_rows_median']:>10.2f}"
        )
    print(
        f"  targets: at least {i['target_rows_per_second']:,} rows/s, under "
        f"{i['target_peak_mib']:,} MiB peak at the largest size"
    )


def print_lifecycle(timeline: dict[str, Any]) -> None:
    print("Demo lifecycle (one cold run of `mlops demo` in a new process and state):")
    print(f"  {'stage':<26} {'wall':>9} {'CPU':>9}  outcome")
    for stage in timeline["stages"]:
        cpu = stage.get("cpu_seconds")
        cpu_text = f"{cpu:7.1f} s" if cpu is not None else f"{'n/a':>9}"
        print(f"  {stage['stage']:<26} {stage['seconds']:7.1f} s {cpu_text}  {stage['outcome']}")
    total_cpu = timeline.get("total_cpu_seconds")
    print(
        f"  {'total (stages)':<26} {timeline['total_seconds']:7.1f} s "
        + (f"{total_cpu:7.1f} s" if total_cpu is not None else "")
    )
    print(
        f"  {'process wall time':<26} {timeline['process_wall_seconds']:7.1f} s  (imports included)"
    )
    for chapter in timeline.get("outside_total", []):
        print(
            f"  {chapter['stage'] + ' (not in the total)':<26} {chapter['seconds']:7.1f} s "
            f"{chapter['cpu_seconds']:7.1f} s  {chapter['outcome']}"
        )
    for promotion in timeline.get("promotions", []):
        result = "promoted" if promotion["exit_code"] == 0 else f"exit {promotion['exit_code']}"
        print(
            f"  mlops promote v{promotion['version']} --to {promotion['to']:<11}"
            f"{promotion['seconds']:7.1f} s  {result}"
        )
    if "load_average" in timeline:
        print(f"  load average (1, 5, 15 min) at the end: {timeline['load_average']}")


def print_audit(results: dict[str, Any], repeats: int) -> None:
    a = results["audit"]
    print(f"Audit trail verification (SQLite, medians of up to {repeats} repeats):")
    print(
        f"  {'records':>10}  {'verify s':>9}  {'CPU s':>7}  {'records/s':>10}  "
        f"{'promotion reads s':>17}"
    )
    for size in a["sizes"]:
        print(
            f"  {size['records']:>10,}  {size['verify_seconds_median']:>9.2f}  "
            f"{size['verify_cpu_seconds_median']:>7.2f}  {size['records_per_second']:>10,.0f}  "
            f"{size['promotion_reads_seconds_median']:>17.3f}"
        )
        print(f"  {'':>10}  lock taken and released in {size['lock_seconds_median'] * 1000:.1f} ms")
        if "verify_all_signatures_seconds_median" in size:
            print(
                f"  {'':>10}  {size['verify_all_signatures_seconds_median']:>9.2f}  "
                "(every signature checked)"
            )
    print(f"  target: 1M records verified in under {a['target_seconds_1m']:.0f} s")


def print_outcomes(results: dict[str, Any], repeats: int) -> None:
    o = results["outcomes"]
    resamples = o["sizes"][0]["bootstrap_resamples"]
    print(
        f"Outcome monitoring ({repeats} repeats, medians; {o['cpus']} CPUs; labels CSV read in "
        "chunks and checked, predictions read with SHA-256, join, metrics with "
        f"{resamples}-resample patient-clustered intervals, subgroups, calibration):"
    )
    print(
        f"  {'rows':>10}  {'seconds':>8}  {'CPU s':>8}  {'peak RSS':>10}  "
        f"{'labels':>7}  {'preds':>7}  {'join':>7}  {'assess':>7}"
    )
    for size in o["sizes"]:
        phase = size["phase_seconds_median"]
        print(
            f"  {size['rows']:>10,}  {size['seconds_median']:>8.1f}  "
            f"{size['cpu_seconds_median']:>8.1f}  {size['peak_rss_mib_median']:>6,.0f} MiB  "
            f"{phase['labels']:>7.1f}  {phase['predictions']:>7.1f}  {phase['join']:>7.1f}  "
            f"{phase['assess']:>7.1f}"
        )
    print("  peak RSS per phase (MiB, high-water mark reset after each phase):")
    for size in o["sizes"]:
        peaks = size.get("phase_peak_rss_mib_median") or {}
        print(
            f"  {size['rows']:>10,}  "
            + "  ".join(
                f"{phase} {value:,.0f}" if value is not None else f"{phase} n/a"
                for phase, value in peaks.items()
            )
        )
    print(f"  target: under {o['target_seconds']:.0f} s at the largest size")
    print(
        f"  peak RSS growth: {o['rss_growth_mib_per_million']:,.0f} MiB per million rows "
        f"(flat: under {o['flat_mib_per_million']:.0f})"
    )


def print_serving(results: dict[str, Any]) -> None:
    s = results["serving"]
    targets = s["targets"]
    print(
        f"Real-time scoring (one-encounter requests to /score on loopback, {s['cpus']} CPUs; "
        "bounded load generator, keep-alive connections):"
    )
    print(
        f"  {'variant':<10} {'c=1 p50':>9} {'c=1 p99':>9} {'c=8 p50':>9} {'c=8 p99':>9} "
        f"{'c=8 req/s':>10} {'peak RSS':>10} {'failed':>7}"
    )
    for v in s["variants"]:
        one, eight = v["concurrency_1"], v["concurrency_8"]
        peak = f"{v['peak_rss_mib']:,.0f} MiB" if v["peak_rss_mib"] else "n/a"
        print(
            f"  {'shadow' if v['shadow'] else 'plain':<10} {one['p50_ms']:>7.1f}ms "
            f"{one['p99_ms']:>7.1f}ms {eight['p50_ms']:>7.1f}ms {eight['p99_ms']:>7.1f}ms "
            f"{eight['requests_per_second']:>10.0f} {peak:>10} "
            f"{one['failed'] + eight['failed']:>7}"
        )
        if one.get("cpu_ms_per_request") is not None:
            print(
                f"  {'':<10} service CPU per request: {one['cpu_ms_per_request']:.1f} ms at c=1, "
                f"{eight['cpu_ms_per_request']:.1f} ms at c=8 (load average "
                f"{one['load_average_1m']:.1f} / {eight['load_average_1m']:.1f})"
            )
        stopped = v.get("stopped")
        if stopped and v["shadow"]:
            print(
                f"  {'':<10} shadow: {stopped['shadow_requests_logged']} of "
                f"{stopped['requests']} requests shadow-scored and logged, "
                f"{stopped['shadow_skipped']} skipped (queue full), "
                f"{stopped['shadow_failures']} failed"
            )
        if v["zenml_invoke"]:
            print(
                f"  ZenML /invoke (one pipeline run per request): p50 "
                f"{v['zenml_invoke']['p50_ms']:.0f} ms, p99 {v['zenml_invoke']['p99_ms']:.0f} ms"
            )
    print(
        f"  targets: p50 <= {targets['p50_ms_at_1']:.0f} ms and p99 <= "
        f"{targets['p99_ms_at_1']:.0f} ms at c=1, >= {targets['requests_per_second_at_8']:.0f} "
        "req/s at c=8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=SECTIONS, help="Run one section only.")
    args = parser.parse_args()
    sections = [args.only] if args.only else list(SECTIONS)
    for section in [s for s in sections if s in NEEDS_DATA and args.data is None]:
        if args.only == section:
            raise SystemExit("Set READMISSION_DATA (or --data) to the UCI file to benchmark on.")
        print(f"Skipping the {section} section: set READMISSION_DATA (or --data) to run it.")
        sections.remove(section)
    workspace.activate()
    from benchmarks import (
        audit,
        inference,
        lifecycle,
        outcomes,
        serving,
        training,
        zenml_overhead,
    )
    from benchmarks.budget import load_budget, over_budget

    results: dict[str, Any] = {}
    if "zenml" in sections:
        results["zenml"] = zenml_overhead.run(args.repeats)
        print_zenml(results)
    if "training" in sections:
        results["data"] = str(args.data)
        results["training"] = training.run(args.data, args.repeats)
        print_training(results, args.data, args.repeats)
    if "inference" in sections:
        results["inference"] = inference.run(args.repeats)
        print_inference(results, args.repeats)
    if "lifecycle" in sections:
        results["lifecycle"] = lifecycle.run(args.data)
        print_lifecycle(results["lifecycle"])
    if "audit" in sections:
        results["audit"] = audit.run(args.repeats)
        print_audit(results, args.repeats)
    if "outcomes" in sections:
        results["outcomes"] = outcomes.run(args.repeats)
        print_outcomes(results, args.repeats)
    if "serving" in sections:
        results["serving"] = serving.run(args.repeats)
        print_serving(results)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"Full results: {OUTPUT / 'results.json'}")
    problems = over_budget(results, load_budget())
    for line in problems:
        print(f"over budget: {line}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""`make bench`: performance figures (medians over repeats; this machine is shared and noisy)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mlops_platform import workspace

OUTPUT = Path("bench-output")
SHARED_DEV_DATA = Path("../shared/data/uci-diabetes-130/diabetic_data_dev.csv.gz")


def default_data() -> Path | None:
    value = os.environ.get("READMISSION_DATA")
    if value:
        return Path(value)
    return SHARED_DEV_DATA.resolve() if SHARED_DEV_DATA.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("Set READMISSION_DATA (or --data) to the UCI file to benchmark on.")
    workspace.activate()
    from benchmarks import training

    results = {"data": str(args.data), "training": training.run(args.data, args.repeats)}
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=2))
    t = results["training"]
    print(f"Training on {args.data} ({args.repeats} repeats, medians):")
    print(f"  plain Python     {t['plain_python_median_s']:7.1f} s")
    print(
        f"  ZenML pipeline   {t['zenml_pipeline_median_s']:7.1f} s  (governed: hooks, MLflow, audit)"
    )
    print(f"  ratio            {t['ratio']:7.2f}x")
    print(f"Full results: {OUTPUT / 'results.json'}")


if __name__ == "__main__":
    main()

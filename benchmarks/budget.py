"""The performance budget `make bench` holds the line with (benchmarks/budget.yaml).

A figure over its budget makes `make bench` exit non-zero, so a regression shows in review. It is
not a timed test: `make test` never depends on how busy the machine is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BUDGET_FILE = Path(__file__).with_name("budget.yaml")


def load_budget(path: Path = BUDGET_FILE) -> dict[str, float]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): float(v) for k, v in raw.items()}


def figures(results: dict[str, Any]) -> dict[str, float]:
    """The budgeted figures present in one `make bench` result."""
    found: dict[str, float] = {}
    if "lifecycle" in results:
        timeline = results["lifecycle"]
        found["lifecycle_total_seconds"] = float(timeline["total_seconds"])
        # Each successful `mlops promote` command on its own; a timeline from before the demo
        # recorded them falls back to the promotion stages (which hold refusals and approvals).
        promotions = [p["seconds"] for p in timeline.get("promotions", []) if p["exit_code"] == 0]
        if not promotions:
            promotions = [s["seconds"] for s in timeline["stages"] if " to " in s["stage"]]
        if promotions:
            found["promotion_max_seconds"] = float(max(promotions))
    if "training" in results:
        found["training_ratio"] = float(results["training"]["ratio"])
    return found


def over_budget(results: dict[str, Any], budget: dict[str, float]) -> list[str]:
    """One line per figure above its budget (empty: within budget)."""
    return [
        f"{name} = {value:.2f} is over its budget of {budget[name]:.2f} ({BUDGET_FILE.name})"
        for name, value in sorted(figures(results).items())
        if name in budget and value > budget[name]
    ]

"""Registered gate checks: adding a check is one registered function plus one policy key.

```python
@gate_check("quality.min_pr_auc", bounds=(0.12, 1.0))
def pr_auc(inputs: GateInputs, limit: float) -> CheckResult:
    return compare("pr_auc", inputs.metrics.get("pr_auc"), limit, ">=", "improve the model")
```

plus `min_pr_auc: 0.2` under `quality:` in configs/base/policy.yaml. From then on every policy must
set the key within `bounds` (a missing key, a value outside the bounds, or a key nobody registered
is a policy error, so `mlops check` and every run refuse it); `evaluate` runs the check in every
gate, and `mlops policy show` and the strictness ordering of `mlops check` cover the key (name it
`min_*` or `max_*` so its direction is known). Checks live in modules listed in `CHECK_MODULES`.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_platform.evaluation.fairness import FairnessSummary
    from mlops_platform.governance.policy.evaluate import CheckResult

# Modules whose import registers checks (the built-in gates are in evaluate.py, not here).
CHECK_MODULES: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateInputs:
    """Everything a check may read: the platform-computed metrics, fairness and champion."""

    metrics: Mapping[str, float]
    fairness: FairnessSummary | None
    champion: Mapping[str, float] | None


CheckFunction = Callable[[GateInputs, float], "CheckResult"]


@dataclass(frozen=True)
class RegisteredCheck:
    key: str  # "section.threshold" in policy.yaml
    bounds: tuple[float, float]  # inclusive; keeps the gate meaningful
    function: CheckFunction


REGISTRY: dict[str, RegisteredCheck] = {}


def gate_check(
    key: str, *, bounds: tuple[float, float]
) -> Callable[[CheckFunction], CheckFunction]:
    """Register `function` as the check whose limit is policy key `key` (e.g. quality.min_x)."""
    section, _, name = key.partition(".")
    if not section or not name or "." in name:
        raise ValueError(f"A gate check key is 'section.threshold'; got {key!r}.")

    def register(function: CheckFunction) -> CheckFunction:
        if key in REGISTRY and REGISTRY[key].function is not function:
            raise ValueError(f"Gate check {key!r} is registered twice.")
        REGISTRY[key] = RegisteredCheck(key, bounds, function)
        return function

    return register


def load_check_modules() -> dict[str, RegisteredCheck]:
    for module in CHECK_MODULES:
        importlib.import_module(module)
    return REGISTRY


def extra_key_problems(
    section: str, extra: Mapping[str, Any], known: Iterable[str] = ()
) -> list[str]:
    """Why the keys of a policy section beyond its built-in fields (``known``) are not
    acceptable; a misspelt key names the closest known one."""
    checks = load_check_modules()
    problems = []
    names = [*known, *(k.split(".", 1)[1] for k in checks if k.startswith(f"{section}."))]
    for name, value in extra.items():
        key = f"{section}.{name}"
        registered = checks.get(key)
        if registered is None:
            close = difflib.get_close_matches(name, names, n=1)
            problems.append(
                f"{key} is not a gate threshold (no check is registered for it; see "
                "mlops_platform/governance/policy/registry.py)"
                + (f"; did you mean {section}.{close[0]}?" if close else "")
            )
            continue
        low, high = registered.bounds
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not low <= value <= high:
            problems.append(f"{key} must be a number in [{low}, {high}]; got {value!r}")
    return problems


def missing_registered(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Registered keys a policy does not set (every registered check must have its limit)."""
    return [
        key
        for key in load_check_modules()
        if (sections.get(key.split(".", 1)[0]) or {}).get(key.split(".", 1)[1]) is None
    ]


def evaluate_registered(inputs: GateInputs, limits: Mapping[str, float]) -> list[CheckResult]:
    """Run every registered check with its limit from the policy."""
    return [
        check.function(inputs, float(limits[key])) for key, check in load_check_modules().items()
    ]

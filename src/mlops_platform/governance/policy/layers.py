"""Where each effective threshold comes from, and whether stricter environments really are stricter.

Pure functions over the raw YAML mappings (base and environment layers) so they are tested without
files; `effective_thresholds` and `ordering_findings` read the files through `mlops_platform.config`.

Direction comes from the key name, for every threshold, including ones added later: `min_*` is
stricter when higher, `max_*` when lower (`DIRECTION_EXCEPTIONS` lists the keys named against
their sense). A list (such as `fairness.sensitive_features`) is
stricter when it covers more, except an allow-list (a key named `approved_*`), stricter when it
accepts less. Any other numeric key has no direction the check can know, so it is
reported rather than skipped: name it `min_*` or `max_*`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_platform.config import config_dir, layer_files, read_mapping

POLICY_CONFIG = "policy"
# From least to most strict: each environment must be at least as strict as the one before it.
STRICTNESS_ORDER: tuple[str, ...] = ("local", "staging", "production")


@dataclass(frozen=True)
class Threshold:
    key: str  # dotted, e.g. "quality.min_roc_auc"
    value: Any
    source: str  # the file that set the effective value


@dataclass(frozen=True)
class OrderingProblem:
    """`env` must be at least as strict as `reference_env` on `key`, and is not."""

    key: str
    env: str
    value: Any
    reference_env: str
    reference_value: Any
    rule: str

    def __str__(self) -> str:
        return (
            f"{self.key} is {self.value!r} in {self.env} but {self.reference_value!r} in "
            f"{self.reference_env}; {self.rule}, and {self.env} must be at least as strict as "
            f"{self.reference_env}. Tighten configs/{self.env}/{POLICY_CONFIG}.yaml (or loosen "
            f"{self.reference_env})."
        )


def leaves(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys and values of every non-mapping value, depth first, in file order."""
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def sourced(
    base: Mapping[str, Any], override: Mapping[str, Any], base_name: str, override_name: str
) -> list[Threshold]:
    """Every effective leaf of base merged with override, with the file that set it."""
    overridden = dict(leaves(override))
    result = [
        Threshold(key, overridden.pop(key), override_name)
        if key in overridden
        else Threshold(key, value, base_name)
        for key, value in leaves(base)
    ]
    result.extend(Threshold(key, value, override_name) for key, value in overridden.items())
    return result


# Keys whose name prefix says the opposite of their strictness: these minimums decide which
# groups are compared at all, so a lower minimum compares more groups and is the stricter gate.
DIRECTION_EXCEPTIONS: dict[str, str] = {
    "fairness.min_group_size": "<=",
    "fairness.min_group_events": "<=",
}


def direction(key: str) -> str | None:
    """ ">=" when a higher value is stricter, "<=" when a lower one is, None when unknown."""
    if key in DIRECTION_EXCEPTIONS:
        return DIRECTION_EXCEPTIONS[key]
    name = key.rsplit(".", 1)[-1]
    if name.startswith("min_"):
        return ">="
    if name.startswith("max_"):
        return "<="
    return None


def is_allow_list(key: str) -> bool:
    """Keys named ``approved_*`` list what an environment accepts (data files by SHA-256): empty
    accepts anything, and a shorter list is the stricter one."""
    return key.rsplit(".", 1)[-1].startswith("approved_")


def allow_list_problem(looser: list[Any], stricter: list[Any]) -> str | None:
    """Why an allow-list is not at least as strict as a looser environment's, or None: it must
    accept nothing the looser one refuses (empty accepts anything)."""
    if not looser or (stricter and set(stricter) <= set(looser)):
        return None
    return "an allow-list is stricter when it accepts less (an empty list accepts anything)"


def compare_layers(
    looser_env: str,
    looser: Mapping[str, Any],
    stricter_env: str,
    stricter: Mapping[str, Any],
) -> list[OrderingProblem]:
    """Thresholds where `looser_env` is stricter than `stricter_env` (it may only be looser)."""
    problems = []
    other = dict(leaves(stricter))
    for key, value in leaves(looser):
        if key not in other:
            continue
        strict_value = other[key]
        if is_allow_list(key):
            # Local gates ignore the lists (any file on a laptop), so no list orders after it.
            looser_list = [] if looser_env == STRICTNESS_ORDER[0] else list(value or [])
            problem = allow_list_problem(looser_list, list(strict_value or []))
            if problem:
                problems.append(
                    OrderingProblem(
                        key,
                        stricter_env,
                        list(strict_value or []),
                        looser_env,
                        list(value),
                        problem,
                    )
                )
            continue
        if isinstance(value, list | tuple) and isinstance(strict_value, list | tuple):
            if not set(value) <= set(strict_value):
                problems.append(
                    OrderingProblem(
                        key,
                        stricter_env,
                        list(strict_value),
                        looser_env,
                        list(value),
                        "a stricter environment must cover every group a looser one covers",
                    )
                )
            continue
        if not _is_number(value) or not _is_number(strict_value):
            continue
        sense = direction(key)
        if sense is None and value != strict_value:
            problems.append(
                OrderingProblem(
                    key,
                    stricter_env,
                    strict_value,
                    looser_env,
                    value,
                    "its direction is unknown (name a threshold min_* or max_*)",
                )
            )
        elif (sense == ">=" and strict_value < value) or (sense == "<=" and strict_value > value):
            rule = "this threshold is stricter when higher"
            if sense == "<=":
                rule = "this threshold is stricter when lower"
            problems.append(
                OrderingProblem(key, stricter_env, strict_value, looser_env, value, rule)
            )
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# File edges ---------------------------------------------------------------------------------------


def _display(path: Path, root: Path) -> str:
    try:
        return str(Path("configs") / path.relative_to(root))
    except ValueError:
        return str(path)


def effective_thresholds(env: str, directory: Path | None = None) -> list[Threshold]:
    """The merged policy of `env`, each value with the file (base or environment) that set it."""
    from mlops_platform.governance.policy.models import load_policy

    load_policy(env, directory)  # the same validation every command applies (fails closed)
    root = directory if directory is not None else config_dir()
    files = layer_files(POLICY_CONFIG, env, root)
    base = read_mapping(files[0])
    override_path = root / env / f"{POLICY_CONFIG}.yaml"
    override = read_mapping(override_path) if override_path in files else {}
    return sourced(base, override, _display(files[0], root), _display(override_path, root))


def ordering_problems(directory: Path | None = None) -> list[OrderingProblem]:
    """Each environment at least as strict as the previous one in STRICTNESS_ORDER."""
    from mlops_platform.config import load_layered

    merged = {env: load_layered(POLICY_CONFIG, env, directory) for env in STRICTNESS_ORDER}
    problems: list[OrderingProblem] = []
    for looser, stricter in itertools.pairwise(STRICTNESS_ORDER):
        problems.extend(compare_layers(looser, merged[looser], stricter, merged[stricter]))
    return problems

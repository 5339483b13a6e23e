"""CODEOWNERS gives the platform team the governance surface and data science its model code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = "@your-org/platform-team"
DATA_SCIENCE = "@your-org/data-science"


def rules() -> list[tuple[re.Pattern[str], list[str]]]:
    """(pattern, owners) in file order; anchored patterns, `*` within one directory level."""
    parsed = []
    for line in (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, *owners = line.split()
        if pattern == "*":  # the default owners of every path
            parsed.append((re.compile(".*"), owners))
            continue
        assert pattern.startswith("/"), f"anchor {pattern} at the repository root"
        regex = re.escape(pattern.lstrip("/")).replace(r"\*", "[^/]*")
        regex += "(/.*)?" if not pattern.endswith("/") else ".*"
        parsed.append((re.compile(f"^{regex}$"), owners))
    return parsed


def owners_of(path: str) -> list[str]:
    matching = [owners for pattern, owners in rules() if pattern.match(path)]
    return matching[-1] if matching else []


@pytest.mark.parametrize(
    "path",
    [
        "src/mlops_platform/runtime/runner.py",
        "src/mlops_cli/app.py",
        "configs/base/policy.yaml",
        "configs/production/policy.yaml",
        "configs/base/approvals.yaml",
        "configs/staging/platform.yaml",
        "configs/base/monitoring.yaml",
        "configs/stacks/production.yaml",
        ".github/workflows/promote-production.yml",
        ".github/CODEOWNERS",
        "Dockerfile.base",
        "deploy/production.yaml",
        "docs/SECURITY.md",
        "tests/integration/test_stage_vs_trail.py",
        "tests/unit/test_codeowners.py",
        ".ci/run",
        "benchmarks/budget.yaml",
    ],
)
def test_the_platform_team_owns_the_governance_surface(path: str) -> None:
    assert (ROOT / path).exists(), path
    assert PLATFORM in owners_of(path)


@pytest.mark.parametrize(
    "path",
    ["src/readmission/core/model.py", "configs/base/training.yaml", "configs/local/training.yaml"],
)
def test_data_science_owns_the_model_code_and_training_settings(path: str) -> None:
    assert (ROOT / path).exists(), path
    assert owners_of(path) == [DATA_SCIENCE]


@pytest.mark.parametrize("path", ["src/sitecustomize.py", "src/newpackage/hook.py", "setup.py"])
def test_a_new_file_no_rule_names_needs_the_platform_team(path: str) -> None:
    """The second review: a new `src/sitecustomize.py` ran inside `mlops audit verify`, and no
    rule named it, so no code owner had to review it."""
    assert owners_of(path) == [PLATFORM]

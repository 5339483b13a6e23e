"""`mlops stack setup` names every missing variable of a stack file at once."""

from __future__ import annotations

import re

import pytest
import yaml

from mlops_platform.expand import unset_variables
from mlops_platform.infra.stacks import StackFileError, parse_stack_file, stack_file


@pytest.mark.parametrize("env", ["staging", "production"])
def test_every_unset_variable_is_listed_in_one_error(env: str) -> None:
    path = stack_file(env)
    components = yaml.safe_load(path.read_text(encoding="utf-8"))["components"]
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", yaml.safe_dump(components)))
    assert len(referenced) > 1

    with pytest.raises(StackFileError) as raised:
        parse_stack_file(path, {})

    assert all(name in str(raised.value) for name in referenced)
    assert f"{len(referenced)} environment variable(s)" in str(raised.value)


def test_unset_variables_walks_nested_values_once_each() -> None:
    value = {"a": "${X}/${Y}", "b": ["${X}", {"c": "${Z}"}], "d": 3}

    assert unset_variables(value, {"Y": "set"}) == ["X", "Z"]


def test_validate_stacks_ends_with_a_one_line_summary() -> None:
    from scripts.validate_stacks import summary_line

    component = {"read_back": True, "rejects_unknown_key": True}
    report = {
        "passed": False,
        "stacks": {
            "staging": {
                "components": {
                    "orchestrator": component,
                    "alerter": {"read_back": True, "rejects_unknown_key": None},
                }
            }
        },
        "code_repository": {"name": "x"},
    }

    line = summary_line(report)

    assert "\n" not in line
    assert line.startswith("validate-stacks: FAILED")
    assert "staging 1/2 components" in line and "code repository ok" in line

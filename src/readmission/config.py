"""The training configuration as typed objects; YAML is parsed once, where it enters.

Every key is checked against the typed sections before pydantic sees it, so a typo names the file
it is in and lists the valid keys of its section, instead of a bare validation error.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from readmission.core.data import DataSettings
from readmission.core.params import EvaluationParams, ModelParams, SplitParams


class TrainingConfigError(ValueError):
    """A training configuration names a key or section that does not exist, or a bad --set."""


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataSettings
    split: SplitParams
    model: ModelParams
    evaluation: EvaluationParams

    def pipeline_parameters(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "split": self.split,
            "model": self.model,
            "evaluation": self.evaluation,
        }


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in TrainingConfig.model_fields.items()
}


def valid_keys(section: str) -> list[str]:
    return list(SECTIONS[section].model_fields)


def _unknown(name: str, valid: Sequence[str], where: str, what: str) -> TrainingConfigError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return TrainingConfigError(
        f"{where}: unknown {what} {name!r}.{hint} Valid {what}s: {', '.join(valid)}."
    )


def check_keys(raw: Mapping[str, Any], where: str) -> None:
    """Raise TrainingConfigError naming `where` for the first section or key that does not exist."""
    for section, values in raw.items():
        if section not in SECTIONS:
            raise _unknown(str(section), list(SECTIONS), where, "section")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise TrainingConfigError(
                f"{where}: section {section!r} must be a mapping of keys to values; got "
                f"{type(values).__name__}. Valid keys: {', '.join(valid_keys(section))}."
            )
        for key in values:
            if key not in SECTIONS[section].model_fields:
                raise _unknown(f"{section}.{key}", _dotted(section), where, "key")


def _dotted(section: str) -> list[str]:
    return [f"{section}.{key}" for key in valid_keys(section)]


def parse_overrides(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`["model.learning_rate=0.1", ...]` as nested settings; values are read as YAML scalars."""
    overrides: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name or "." in name:
            raise TrainingConfigError(
                f"--set {assignment!r}: expected SECTION.KEY=VALUE, for example "
                "--set model.learning_rate=0.1."
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise TrainingConfigError(
                f"--set {assignment!r}: unreadable value ({error})."
            ) from error
        if name in overrides.get(section, {}):
            raise TrainingConfigError(
                f"--set {section}.{name} is given twice; give each setting once."
            )
        overrides.setdefault(section, {})[name] = value
    check_keys(overrides, "--set")
    return overrides

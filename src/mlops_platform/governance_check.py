"""`mlops check`: the governance rules CI enforces on the code and configuration themselves.

1. Every pipeline that produces a model validates its data with the platform's `validate_data`
   before any model is trained, judges the model with `validate_model`, and publishes it only
   through `register_model`, which must consume the gate's decision.
2. Every environment's policy defines every required threshold and loads; the approval policy and
   the monitoring thresholds load for every environment.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zenml.enums import ArtifactType
from zenml.pipelines.pipeline_definition import Pipeline

from mlops_platform.approvals.policy import load_approval_policy
from mlops_platform.config import ENVIRONMENTS, ConfigError, load_layered
from mlops_platform.evaluation.drift import load_drift_thresholds
from mlops_platform.policy.models import POLICY_CONFIG, load_policy, missing_thresholds
from mlops_platform.steps.register_model import register_model
from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import validate_model


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.message}"


def discover_pipelines(packages: Iterable[str]) -> list[Pipeline]:
    """Every ZenML pipeline defined in the given packages (all their modules) or modules."""
    found: dict[str, Pipeline] = {}
    for name in packages:
        package = importlib.import_module(name)
        modules = [package] + [
            importlib.import_module(info.name)
            for info in pkgutil.iter_modules(getattr(package, "__path__", []), f"{name}.")
        ]
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, Pipeline):
                    found[value.name] = value
    return list(found.values())


def _produces_model(invocation: Any) -> bool:
    from sklearn.base import BaseEstimator

    for output in invocation.step.entrypoint_definition.outputs.values():
        config = output.artifact_config
        if config is not None and config.artifact_type == ArtifactType.MODEL:
            return True
        annotation = output.resolved_annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseEstimator):
            return True
    return False


def _ancestors(invocations: Mapping[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    pending = list(invocations[name].upstream_steps)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(invocations[current].upstream_steps)
    return seen


def check_pipeline(pipeline: Pipeline, parameters: Mapping[str, Any]) -> list[Finding]:
    """Check one pipeline's step graph, built (not run) with the `parameters` it accepts."""
    accepted = inspect.signature(pipeline.entrypoint).parameters
    pipeline.prepare(**{k: v for k, v in parameters.items() if k in accepted})
    invocations = pipeline.invocations
    subject = f"pipeline {pipeline.name}"

    def using(step: Any) -> list[str]:
        return [
            name
            for name, inv in invocations.items()
            if inv.step.source_object is step.source_object
        ]

    producers = [name for name, inv in invocations.items() if _produces_model(inv)]
    if not producers:
        return []
    findings: list[Finding] = []
    gates = {"validate_data": using(validate_data), "validate_model": using(validate_model)}
    registrations = using(register_model)
    for step_name, present in (*gates.items(), ("register_model", registrations)):
        if not present:
            findings.append(
                Finding(
                    "required-step",
                    subject,
                    f"produces a model ({', '.join(producers)}) but has no platform step "
                    f"`{step_name}`. Add mlops_platform.steps.{step_name} to the pipeline.",
                )
            )
    for producer in producers:
        if gates["validate_data"] and not set(gates["validate_data"]) & _ancestors(
            invocations, producer
        ):
            findings.append(
                Finding(
                    "data-before-training",
                    subject,
                    f"step `{producer}` trains on data that did not pass `validate_data`. "
                    "Feed it the output of validate_data.",
                )
            )
    for registration in registrations:
        upstream = invocations[registration].upstream_steps
        if not set(gates["validate_model"]) & set(upstream):
            findings.append(
                Finding(
                    "gate-before-registration",
                    subject,
                    f"`{registration}` does not consume the decision of `validate_model`. "
                    "Pass validate_model's output to register_model.",
                )
            )
        model_sources = set(producers) & set(upstream)
        for producer in model_sources:
            if not set(gates["validate_model"]) & (
                {n for n in invocations if producer in _ancestors(invocations, n)}
            ):
                findings.append(
                    Finding(
                        "gate-judges-model",
                        subject,
                        f"the model from `{producer}` is registered without `validate_model` "
                        "judging its predictions. Evaluate it and pass the predictions to the gate.",
                    )
                )
    return findings


def check_configs(directory: Path | None = None) -> list[Finding]:
    """Every environment defines every required threshold, and every platform config loads."""
    loaders: dict[str, Callable[[str], object]] = {
        "policy": lambda env: load_policy(env, directory),
        "approvals": lambda env: load_approval_policy(env, directory),
        "monitoring": lambda env: load_drift_thresholds(env, directory),
    }
    findings: list[Finding] = []
    for env in ENVIRONMENTS:
        try:
            missing = missing_thresholds(load_layered(POLICY_CONFIG, env, directory))
        except ConfigError as error:
            findings.append(Finding("policy", env, str(error)))
            continue
        if missing:
            findings.append(
                Finding(
                    "required-threshold",
                    env,
                    f"policy does not define {', '.join(missing)}. Set them in "
                    f"configs/base/{POLICY_CONFIG}.yaml or configs/{env}/{POLICY_CONFIG}.yaml.",
                )
            )
        for name, load in loaders.items():
            try:
                load(env)
            except (ConfigError, ValueError) as error:
                findings.append(Finding(name, env, str(error)))
    return findings

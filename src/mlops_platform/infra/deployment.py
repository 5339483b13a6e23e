"""Declarative deployment manifests (`deploy/<stage>.yaml`) and the plan that reconciles one.

A manifest states which model version a stage should serve and under which configuration. A pull
request that changes it is how a person asks for a change; `mlops deploy` compares it with the
registry and, if they differ, promotes through the same approvals and gates as `mlops promote`.
Everything here is pure: reading the registry and promoting are the CLI's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops_platform.config import ConfigError, parse_yaml, validation_issues
from mlops_platform.governance.approvals.policy import STAGES
from mlops_platform.governance.promotion import STAGE_ENVIRONMENTS

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ManifestError(ConfigError):
    """A deployment manifest is missing, malformed, or contradicts itself or the platform."""


class ManifestModel(BaseModel):
    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    # A version number; "latest" is refused: a manifest must say exactly what serves.
    version: Annotated[str, Field(pattern=r"^[1-9][0-9]*$")]
    # The SHA-256 of that version's signed model file (`mlops versions --json`): with it, the
    # release deploys the very model its reviewers read, never another version given the same
    # number after a deletion (the deployment is refused). Optional for older manifests.
    model_sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = None


class ManifestConfig(BaseModel):
    model_config = _STRICT
    # The layered configuration (configs/base + configs/<environment>) whose gates, approvals and
    # monitoring govern the served model; it must be the stage's own environment.
    environment: str


class ManifestChange(BaseModel):
    model_config = _STRICT
    reason: Annotated[str, Field(min_length=1)]
    ticket: str | None = None


class DeploymentManifest(BaseModel):
    """The desired state of one stage."""

    model_config = _STRICT
    stage: str
    model: ManifestModel
    config: ManifestConfig
    change: ManifestChange

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentManifest:
        if self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        wanted = STAGE_ENVIRONMENTS[self.stage]
        if self.config.environment != wanted:
            raise ValueError(
                f"config.environment {self.config.environment!r} does not govern stage "
                f"{self.stage!r}; the {self.stage} stage is governed by configs/{wanted}"
            )
        return self


def load_manifest(path: Path) -> DeploymentManifest:
    """Read and validate a manifest; every problem is a ManifestError naming the file."""
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"Cannot read deployment manifest {path}: {error}") from error
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        version = raw["model"].get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            raw["model"]["version"] = str(version)
    try:
        return DeploymentManifest.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(validation_issues(error, "manifest"))
        raise ManifestError(f"Deployment manifest {path} is invalid: {problems}") from error


def manifest_model_problem(manifest: DeploymentManifest, signed_sha256: str | None) -> str | None:
    """Why the version the manifest's number finds is not the model it names (pure): its signed
    model file (``signed_sha256``, None: no pin) is another one. None when the manifest names no
    file, or the same one."""
    wanted = manifest.model.model_sha256
    if wanted is None or signed_sha256 == wanted:
        return None
    return (
        f"{manifest.model.name} version {manifest.model.version}'s signed model file is "
        f"{(signed_sha256 or 'missing')[:16]}…, but the manifest names {wanted[:16]}…: the number "
        "now names another model (deleted and trained again?), so it is not deployed. Find out "
        "what happened to the reviewed version (`mlops audit log`), and change the manifest in a "
        "reviewed pull request"
    )


@dataclass(frozen=True)
class Difference:
    field: str
    current: str | None
    desired: str

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "current": self.current, "desired": self.desired}


@dataclass(frozen=True)
class DeploymentPlan:
    """What reconciling a manifest takes: nothing (in place) or promoting the desired version."""

    stage: str
    model_name: str
    desired_version: str
    current_version: str | None
    differences: tuple[Difference, ...]

    @property
    def in_place(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "model_name": self.model_name,
            "desired_version": self.desired_version,
            "current_version": self.current_version,
            "in_place": self.in_place,
            "differences": [d.as_dict() for d in self.differences],
        }


def plan_deployment(
    manifest: DeploymentManifest, served_model: str, current_version: str | None
) -> DeploymentPlan:
    """Compare the manifest with the stage's current holder (`current_version`, None if none).

    `served_model` is the one model the platform's promotion serves; a manifest naming another
    is refused rather than silently applied to the wrong model.
    """
    if manifest.model.name != served_model:
        raise ManifestError(
            f"The manifest names model {manifest.model.name!r}, but this project deploys "
            f"{served_model!r}; fix model.name."
        )
    differences: tuple[Difference, ...] = ()
    if current_version != manifest.model.version:
        differences = (Difference("model_version", current_version, manifest.model.version),)
    return DeploymentPlan(
        stage=manifest.stage,
        model_name=served_model,
        desired_version=manifest.model.version,
        current_version=current_version,
        differences=differences,
    )

"""Deployment manifests: the committed ones load, bad ones are refused, and the plan is a diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_platform.governance.approvals.policy import STAGES
from mlops_platform.governance.promotion import STAGE_ENVIRONMENTS
from mlops_platform.infra.deployment import (
    DeploymentManifest,
    ManifestError,
    load_manifest,
    plan_deployment,
)
from readmission.names import MODEL_NAME

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def manifest(**changes: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "stage": "production",
        "model": {"name": MODEL_NAME, "version": "3"},
        "config": {"environment": STAGE_ENVIRONMENTS["production"]},
        "change": {"reason": "Quarterly refresh", "ticket": "CHG-1"},
    }
    content.update(changes)
    return content


@pytest.mark.parametrize("stage", STAGES)
def test_the_committed_manifest_of_each_stage_loads(stage: str) -> None:
    loaded = load_manifest(ROOT / "deploy" / f"{stage}.yaml")
    assert loaded.stage == stage
    assert loaded.model.name == MODEL_NAME
    assert loaded.config.environment == STAGE_ENVIRONMENTS[stage]


def test_an_integer_version_is_read_as_its_number(tmp_path: Path) -> None:
    loaded = load_manifest(write(tmp_path, manifest(model={"name": MODEL_NAME, "version": 7})))
    assert loaded.model.version == "7"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"name": MODEL_NAME, "version": "latest"}}, "model.version"),
        ({"model": {"name": MODEL_NAME, "version": "v1.2.0"}}, "model.version"),
        ({"stage": "canary"}, "canary"),
        ({"config": {"environment": "staging"}}, "configs/production"),
        ({"change": {"reason": ""}}, "change.reason"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_a_bad_manifest_is_refused_with_the_field(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        load_manifest(write(tmp_path, manifest(**changes)))


def test_a_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"absent\.yaml"):
        load_manifest(tmp_path / "absent.yaml")


def test_the_plan_is_empty_when_the_stage_serves_the_version() -> None:
    plan = plan_deployment(DeploymentManifest.model_validate(manifest()), MODEL_NAME, "3")
    assert plan.in_place
    assert plan.as_dict()["differences"] == []


@pytest.mark.parametrize("current", [None, "2", "4"])
def test_the_plan_names_the_difference(current: str | None) -> None:
    plan = plan_deployment(DeploymentManifest.model_validate(manifest()), MODEL_NAME, current)
    assert not plan.in_place
    assert plan.as_dict()["differences"] == [
        {"field": "model_version", "current": current, "desired": "3"}
    ]


def test_a_manifest_for_another_model_is_refused() -> None:
    other = DeploymentManifest.model_validate(manifest(model={"name": "other", "version": "1"}))
    with pytest.raises(ManifestError, match="other"):
        plan_deployment(other, MODEL_NAME, "1")


def test_a_manifest_naming_the_model_file_refuses_another_model_with_its_number(
    tmp_path: Path,
) -> None:
    """The attack review: a release names a version by number, resolved when the job runs; a
    version deleted and its number given again between review and job would be deployed. A
    manifest that names the signed model file refuses any other; one that names none, as before."""
    from mlops_platform.infra.deployment import manifest_model_problem

    reviewed, other = "a" * 64, "b" * 64
    pinned = load_manifest(write(tmp_path, manifest(model={"name": MODEL_NAME, "version": "3",
                                                           "model_sha256": reviewed})))  # fmt: skip
    assert manifest_model_problem(pinned, reviewed) is None
    problem = manifest_model_problem(pinned, other)
    assert problem is not None and "now names another model" in problem
    assert manifest_model_problem(pinned, None) is not None
    unpinned = load_manifest(write(tmp_path, manifest()))
    assert manifest_model_problem(unpinned, other) is None
    with pytest.raises(ManifestError, match="model_sha256"):
        load_manifest(write(tmp_path, manifest(model={"name": MODEL_NAME, "version": "3",
                                                      "model_sha256": "not-a-digest"})))  # fmt: skip

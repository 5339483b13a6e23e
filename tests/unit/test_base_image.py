"""The platform base image: Dockerfile.base is governed, and remote runs build FROM it as non-root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from zenml.config import DockerSettings
from zenml.utils.pipeline_docker_image_builder import PipelineDockerImageBuilder

from mlops_platform.infra.settings import BaseImageError, load_platform_settings
from mlops_platform.runtime.runner import pipeline_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.base"
PINNED = "registry.example.org/readmission/base@sha256:" + "a" * 64
REMOTE = ("staging", "production")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of Dockerfile.base, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


@pytest.fixture
def remote_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    monkeypatch.delenv("MLOPS_BASE_IMAGE", raising=False)


@pytest.mark.usefixtures("remote_env")
@pytest.mark.parametrize("env", REMOTE)
def test_remote_environments_name_the_base_image_and_its_user(env: str) -> None:
    docker = load_platform_settings(env).docker
    assert docker is not None
    assert docker.parent_image_env == "MLOPS_BASE_IMAGE"
    arguments = dict(a.split("=", 1) for kind, a in instructions() if kind == "ARG" and "=" in a)
    assert docker.user == arguments["APP_UID"], "pipeline containers must run as the image's user"


def test_local_runs_build_no_image() -> None:
    assert load_platform_settings("local").docker is None
    assert pipeline_settings(load_platform_settings("local"), builds_images=True) == {}


@pytest.mark.usefixtures("remote_env")
def test_a_stack_that_builds_images_needs_the_base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_platform_settings("production")
    with pytest.raises(BaseImageError, match="MLOPS_BASE_IMAGE is not set"):
        pipeline_settings(settings, builds_images=True)
    assert pipeline_settings(settings, builds_images=False) == {}
    monkeypatch.setenv("MLOPS_BASE_IMAGE", "registry.example.org/readmission/base:latest")
    with pytest.raises(BaseImageError, match="not pinned by digest"):
        pipeline_settings(settings, builds_images=True)


@pytest.mark.usefixtures("remote_env")
def test_remote_runs_build_from_the_pinned_base_image_as_its_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_BASE_IMAGE", PINNED)
    settings = load_platform_settings("staging")
    docker = pipeline_settings(settings, builds_images=True)["docker"]
    assert isinstance(docker, DockerSettings)
    assert (docker.parent_image, docker.skip_build) == (PINNED, False)
    dockerfile = PipelineDockerImageBuilder._generate_zenml_pipeline_dockerfile(
        parent_image=PINNED,
        docker_settings=docker,
        requirements_files=[(".zenml_integration_requirements", "s3fs\n", [])],
    )
    lines = dockerfile.splitlines()
    assert lines[0] == f"FROM {PINNED}"
    users = [line for line in lines if line.startswith("USER ")]
    assert users[-1] == f"USER {settings.docker.user}"  # type: ignore[union-attr]
    assert not any(line.startswith("RUN") for line in lines[lines.index(users[-1]) :])


def test_the_base_image_is_pinned_locked_and_secret_free() -> None:
    steps = instructions()
    froms = [a for kind, a in steps if kind == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", froms[0])
    copies = [a for kind, a in steps if kind == "COPY"]
    assert copies == ["pyproject.toml uv.lock /tmp/lock/"], "only the lock goes in, not the code"
    install = " ".join(a for kind, a in steps if kind == "RUN")
    assert "uv export" in install and "--frozen" in install and "--no-dev" in install
    assert "--require-hashes" in install
    assert re.search(r"useradd --uid \"\$\{APP_UID\}\"", install)
    names = [n for kind, a in steps if kind in ("ARG", "ENV") for n in re.findall(r"(\w+)=", a)]
    assert "PIP_NO_CACHE_DIR" in names
    assert not [n for n in names if re.search(r"TOKEN|SECRET|PASSWORD|KEY", n, re.IGNORECASE)]


def test_local_state_and_patient_data_stay_out_of_images() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in (".git", ".venv", ".mlops", "mlruns", "*.csv", "*.csv.gz", "*.parquet", ".env"):
        assert pattern in ignored, pattern

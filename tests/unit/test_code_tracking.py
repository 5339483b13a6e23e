"""Code tracking: the commit and dirty flag of a checkout, and the GitHub code repository settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_platform.infra.code_repository import (
    TOKEN_SECRET,
    TOKEN_VARIABLE,
    CodeRepositoryError,
    github_repository_from_env,
)
from mlops_platform.runtime.provenance import UNKNOWN, code_version
from tests.git_repo import git


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    git(tmp_path, "init", "--quiet")
    (tmp_path / "train.py").write_text("print('v1')\n")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "--quiet", "-m", "first")
    return tmp_path


def test_a_clean_checkout_records_its_commit(checkout: Path) -> None:
    version = code_version(checkout)
    assert version["git_sha"] == git(checkout, "rev-parse", "HEAD")
    assert version["git_dirty"] is False


def test_a_changed_tracked_file_makes_the_checkout_dirty(checkout: Path) -> None:
    (checkout / "train.py").write_text("print('v2')\n")
    assert code_version(checkout)["git_dirty"] is True


def test_an_untracked_file_does_not_make_it_dirty(checkout: Path) -> None:
    (checkout / "notes.txt").write_text("scratch\n")
    assert code_version(checkout)["git_dirty"] is False


def test_outside_git_the_ci_commit_or_unknown_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    assert code_version(tmp_path)["git_sha"] == UNKNOWN
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    assert code_version(tmp_path)["git_sha"] == "f" * 40


def test_no_code_repository_without_repository_and_token() -> None:
    assert github_repository_from_env({}) is None
    assert github_repository_from_env({"GITHUB_REPOSITORY": "o/r"}) is None
    assert github_repository_from_env({TOKEN_VARIABLE: "t"}) is None


def test_the_code_repository_refers_to_the_token_secret_not_the_token() -> None:
    found = github_repository_from_env(
        {
            "GITHUB_REPOSITORY": "acme/readmission",
            "GITHUB_SERVER_URL": "https://github.acme.example",
            "GITHUB_API_URL": "https://github.acme.example/api/v3",
            TOKEN_VARIABLE: "ghp_secret",
        }
    )
    assert found is not None
    repository, token = found
    assert token == "ghp_secret"
    config = repository.config()
    assert config == {
        "owner": "acme",
        "repository": "readmission",
        "host": "github.acme.example",
        "api_url": "https://github.acme.example/api/v3",
        "token": f"{{{{{TOKEN_SECRET}.token}}}}",
    }
    assert "ghp_secret" not in str(config)


def test_a_malformed_repository_name_is_an_error() -> None:
    with pytest.raises(CodeRepositoryError, match="owner/name"):
        github_repository_from_env({"GITHUB_REPOSITORY": "not-a-slug", TOKEN_VARIABLE: "t"})

"""Register this repository as a ZenML GitHub code repository, so every run records its commit.

With a code repository, ZenML links each pipeline run to the commit it ran (its code reference),
and remote pipeline pods download that exact commit instead of a copy of the working tree. It is
registered when GitHub settings are present: `GITHUB_REPOSITORY` (owner/name, set by GitHub
Actions) and a read-only token in `MLOPS_GITHUB_TOKEN`. The workflow's own `GITHUB_TOKEN` is not
used: it expires with the job, while pods download code later. The token is stored as a ZenML
secret and the code repository refers to it, so it never appears in a configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

CODE_REPOSITORY_NAME = "readmission"
TOKEN_VARIABLE = "MLOPS_GITHUB_TOKEN"
TOKEN_SECRET = "readmission-github"
TOKEN_KEY = "token"
GITHUB_SOURCE = "zenml.integrations.github.code_repositories.GitHubCodeRepository"
DEFAULT_HOST = "github.com"
_REPOSITORY = re.compile(r"^([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)$")


class CodeRepositoryError(RuntimeError):
    """The GitHub code repository could not be registered (settings, PyGithub, token or API)."""


@dataclass(frozen=True)
class GitHubRepository:
    owner: str
    repository: str
    host: str
    api_url: str | None

    def config(self) -> dict[str, Any]:
        """ZenML code-repository configuration; the token is a reference to a ZenML secret."""
        config: dict[str, Any] = {
            "owner": self.owner,
            "repository": self.repository,
            "host": self.host,
            "token": f"{{{{{TOKEN_SECRET}.{TOKEN_KEY}}}}}",
        }
        if self.api_url:
            config["api_url"] = self.api_url
        return config


def github_repository_from_env(environ: Mapping[str, str]) -> tuple[GitHubRepository, str] | None:
    """The repository and its token from GitHub's variables, or None when either is missing."""
    slug = (environ.get("GITHUB_REPOSITORY") or "").strip()
    token = (environ.get(TOKEN_VARIABLE) or "").strip()
    if not slug or not token:
        return None
    match = _REPOSITORY.match(slug)
    if match is None:
        raise CodeRepositoryError(
            f"GITHUB_REPOSITORY={slug!r} is not of the form 'owner/name'; GitHub Actions sets it, "
            "so unset it or fix it when running elsewhere."
        )
    server = environ.get("GITHUB_SERVER_URL") or ""
    host = urlparse(server).hostname or DEFAULT_HOST
    api_url = environ.get("GITHUB_API_URL") or None
    return GitHubRepository(match.group(1), match.group(2), host, api_url), token


def register_github_repository(repository: GitHubRepository, token: str) -> str:
    """Create or update the token secret and the code repository; returns what changed."""
    from zenml.client import Client
    from zenml.config.source import Source

    client = Client()
    secret_changed = _store_token(client, token)
    wanted = repository.config()
    try:
        existing = client.get_code_repository(CODE_REPOSITORY_NAME, allow_name_prefix_match=False)
    except KeyError:
        existing = None
    try:
        if existing is None:
            client.create_code_repository(
                name=CODE_REPOSITORY_NAME,
                config=wanted,
                source=Source.from_import_path(GITHUB_SOURCE),
                description="Source of every governed run (registered by `mlops stack setup`).",
            )
            return "created"
        if existing.config != wanted:
            client.update_code_repository(CODE_REPOSITORY_NAME, config=wanted)
            return "updated"
    except ImportError as error:
        raise CodeRepositoryError(
            "Registering the GitHub code repository needs PyGithub, which is not installed. "
            "Install the stack requirements (`make stack-requirements`) and run again."
        ) from error
    except RuntimeError as error:
        cause = error.__cause__ or error
        raise CodeRepositoryError(
            f"ZenML could not validate the GitHub code repository "
            f"{repository.owner}/{repository.repository} with the token in {TOKEN_VARIABLE}: "
            f"{cause}. Check that the token can read the repository's contents."
        ) from error
    return "updated" if secret_changed else "unchanged"


def _store_token(client: Any, token: str) -> bool:
    """Keep the token in the ZenML secret the code repository refers to; True if it changed."""
    try:
        secret = client.get_secret(TOKEN_SECRET, allow_partial_name_match=False)
    except KeyError:
        client.create_secret(TOKEN_SECRET, values={TOKEN_KEY: token})
        return True
    if secret.secret_values.get(TOKEN_KEY) == token:
        return False
    client.update_secret(TOKEN_SECRET, add_or_update_values={TOKEN_KEY: token})
    return True

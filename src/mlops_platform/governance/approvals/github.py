"""Who approved a GitHub environment deployment, read back from the GitHub REST API.

A job that targets a GitHub environment with required reviewers starts only after a reviewer
approves it. GitHub authenticated that reviewer, so the workflow records their login as an
``Approval`` (source ``github-environment``) instead of trusting a name typed on a command line.
The reviews come from ``GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals``, read with
the workflow's own token, which needs the ``actions: read`` permission.

They count only for a job whose identity is a verified GitHub OIDC token (trust/oidc.py) showing
that the job runs in that environment of the configured repository: the repository and run id of
the API call come from the token, the API URL from the committed config (https only). ``GITHUB_*``
variables are never evidence: anyone can set them, and ``GITHUB_API_URL=file://...`` would turn a
file on disk into "reviews".
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_platform.governance.approvals.policy import Approval, PromotionRequest, normalize_name
from mlops_platform.trust.identity import GITHUB_OIDC, Actor
from mlops_platform.trust.oidc import GithubOidcSettings, OidcError, check_url

API_VERSION = "2022-11-28"
GITHUB_SOURCE = "github-environment"
APPROVED = "approved"
REQUIRED_PERMISSION = "actions: read"
TOKEN_VARIABLE = "GITHUB_TOKEN"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_RUN_ID = re.compile(r"^[0-9]+$")
_PERMISSION_STATUSES = (401, 403, 404)


class GitHubApiError(RuntimeError):
    """The GitHub API could not be reached, refused the token, or answered unexpectedly."""


@dataclass(frozen=True)
class EnvironmentReviewer:
    """One review of a workflow run's deployment, as GitHub reports it."""

    login: str
    state: str
    comment: str
    environments: tuple[str, ...]


def environment_reviewers(
    api_url: str,
    repository: str,
    run_id: str,
    token: str,
    environment: str,
    timeout: float = 10.0,
) -> list[EnvironmentReviewer]:
    """The reviewers who approved ``environment`` for workflow run ``run_id``."""
    try:
        check_url(api_url, "GitHub API URL")
    except OidcError as error:
        raise GitHubApiError(str(error)) from error
    if not _REPOSITORY.match(repository):
        raise GitHubApiError(f"Repository {repository!r} is not of the form 'owner/name'.")
    if not _RUN_ID.match(run_id):
        raise GitHubApiError(f"Workflow run id {run_id!r} is not a number.")
    url = f"{api_url.rstrip('/')}/repos/{repository}/actions/runs/{run_id}/approvals"
    reviews = _get_json(url, token, timeout)
    if not isinstance(reviews, list):
        raise GitHubApiError(
            f"GET {url} returned {type(reviews).__name__}, expected a list of reviews."
        )
    wanted = normalize_name(environment)
    return [
        reviewer
        for reviewer in (_parse_review(url, review) for review in reviews)
        if reviewer.state == APPROVED
        and wanted in {normalize_name(name) for name in reviewer.environments}
    ]


class EnvironmentNotProven(PermissionError):
    """The job's verified identity does not prove it runs in the GitHub environment asked for."""


def reviewers_for_job(
    environment: str,
    job: Actor,
    settings: GithubOidcSettings,
    environ: Mapping[str, str] | None = None,
) -> list[EnvironmentReviewer]:
    """Approved reviewers of ``environment`` for the job's own run, proven by its OIDC token.

    ``job`` is the resolved identity of this process (trust/identity.py); only a ``github-oidc``
    identity whose verified token names ``environment`` and the configured repository counts.
    """
    env = os.environ if environ is None else environ
    evidence = job.evidence
    problems = []
    if job.source != GITHUB_OIDC:
        problems.append(
            f"this process acts as {job.describe()}, not as a GitHub Actions job with a verified "
            "OIDC token (give the job `permissions: id-token: write`)"
        )
    else:
        if normalize_name(evidence.get("environment", "")) != normalize_name(environment):
            problems.append(
                f"the job's verified token says it runs in GitHub environment "
                f"{evidence.get('environment') or 'none'!r}, not {environment!r}"
            )
        if evidence.get("repository") != settings.repository:
            problems.append(
                f"the job's token is for repository {evidence.get('repository')!r}, not "
                f"{settings.repository!r}"
            )
    if problems:
        raise EnvironmentNotProven(
            f"reviews of GitHub environment {environment!r} are not accepted: "
            + "; ".join(problems)
        )
    token = env.get(TOKEN_VARIABLE)
    if not token:
        raise GitHubApiError(
            f"{TOKEN_VARIABLE} is not set; pass it to the step with `env: GITHUB_TOKEN: "
            "${{ github.token }}` and grant the job `permissions: actions: read`."
        )
    return environment_reviewers(
        settings.api_url,
        evidence["repository"],
        evidence["run_id"],
        token,
        environment,
        settings.timeout_seconds,
    )


def approvals_from_reviewers(
    reviewers: Sequence[EnvironmentReviewer],
    request: PromotionRequest,
    recorded_at: datetime | None = None,
) -> tuple[Approval, ...]:
    """Approvals of ``request`` by the environment's reviewers (GitHub reports no review time).

    A review approves the workflow run that carries this request, so it is attributed to the
    request's model version and stage, dated ``recorded_at`` (default: the request's ``now``).
    """
    moment = request.now if recorded_at is None else recorded_at
    return tuple(
        Approval(
            approver=reviewer.login,
            model_name=request.model_name,
            model_version=request.model_version,
            target_stage=request.target_stage,
            reason=reviewer.comment,
            recorded_at=moment,
            source=GITHUB_SOURCE,
        )
        for reviewer in reviewers
    )


def _get_json(url: str, token: str, timeout: float) -> Any:
    request = urllib.request.Request(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "mlops-platform-approvals",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise _http_error(url, error) from error
    except TimeoutError as error:
        raise _timeout_error(url, timeout) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _timeout_error(url, timeout) from error
        raise GitHubApiError(
            f"Cannot reach the GitHub API at {url}: {error.reason}. Check GITHUB_API_URL and "
            "the runner's network access."
        ) from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise GitHubApiError(f"GET {url} did not return JSON: {body[:200]!r}") from error


def _http_error(url: str, error: urllib.error.HTTPError) -> GitHubApiError:
    detail = _github_message(error)
    if error.code in _PERMISSION_STATUSES:
        return GitHubApiError(
            f"GitHub API answered {error.code} for GET {url}{detail}. The token cannot read "
            f"this run's deployment reviews: give the workflow job `permissions: "
            f"{REQUIRED_PERMISSION}` and check that GITHUB_REPOSITORY and GITHUB_RUN_ID "
            "name this run."
        )
    return GitHubApiError(
        f"GitHub API answered {error.code} for GET {url}{detail}; retry later or check "
        "https://www.githubstatus.com."
    )


def _github_message(error: urllib.error.HTTPError) -> str:
    """GitHub's own explanation from an error body, when it sent one."""
    try:
        message = json.loads(error.read()).get("message")
    except (ValueError, AttributeError, OSError):
        return ""
    return f" ({str(message)[:200]})" if message else ""


def _timeout_error(url: str, timeout: float) -> GitHubApiError:
    return GitHubApiError(
        f"GitHub API did not answer GET {url} within the {timeout:g} s timeout; retry the job, "
        "or check the runner's network access and https://www.githubstatus.com."
    )


def _parse_review(url: str, review: Any) -> EnvironmentReviewer:
    try:
        return EnvironmentReviewer(
            login=str(review["user"]["login"]),
            state=str(review["state"]),
            comment=str(review.get("comment") or ""),
            environments=tuple(str(env["name"]) for env in review["environments"]),
        )
    except (KeyError, TypeError) as error:
        raise GitHubApiError(
            f"GET {url} returned a review without user.login, state or environments[].name: "
            f"{str(review)[:200]}"
        ) from error

"""Reading GitHub environment reviewers, against a loopback server that answers like the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.governance.approvals.github import (
    API_VERSION,
    GITHUB_SOURCE,
    REQUIRED_PERMISSION,
    EnvironmentNotProven,
    EnvironmentReviewer,
    GitHubApiError,
    approvals_from_reviewers,
    environment_reviewers,
    reviewers_for_job,
)
from mlops_platform.governance.approvals.policy import (
    PRODUCTION,
    PromotionRequest,
    evaluate_promotion,
    load_approval_policy,
)
from mlops_platform.trust.identity import Actor, oidc_actor
from tests.fake_github import FakeGitHub, approvals_path, serving
from tests.oidc_issuer import AUDIENCE, Issuer, job_environ, running_issuer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REPOSITORY = "acme/readmission"
RUN_ID = "1234"
TOKEN = "test-token-not-a-secret"
APPROVALS_PATH = approvals_path(REPOSITORY, RUN_ID)


def review(login: str, state: str, environments: list[str], comment: str = "") -> dict[str, Any]:
    return {
        "state": state,
        "comment": comment,
        "environments": [{"id": index, "name": name} for index, name in enumerate(environments)],
        "user": {"login": login, "id": 1, "type": "User"},
    }


REVIEWS = [
    review("carol", "approved", ["production"], "validation report reviewed"),
    review("erin", "approved", ["staging"]),
    review("mallory", "rejected", ["production"], "not convinced"),
    review("Frank", "approved", ["staging", "Production"]),
]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serving(FakeGitHub(APPROVALS_PATH, TOKEN, body=REVIEWS)) as fake:
        yield fake


def test_only_approvals_for_the_asked_environment_come_back(github: FakeGitHub) -> None:
    reviewers = environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, "production")
    assert reviewers == [
        EnvironmentReviewer("carol", "approved", "validation report reviewed", ("production",)),
        EnvironmentReviewer("Frank", "approved", "", ("staging", "Production")),
    ]
    (request,) = github.seen
    assert request["path"] == APPROVALS_PATH
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["x-github-api-version"] == API_VERSION
    assert request["accept"] == "application/vnd.github+json"

    staging = environment_reviewers(github.url + "/", REPOSITORY, RUN_ID, TOKEN, "staging")
    assert [r.login for r in staging] == ["erin", "Frank"]


def test_wrong_token_is_refused_by_the_server(github: FakeGitHub) -> None:
    with pytest.raises(GitHubApiError, match="401"):
        environment_reviewers(github.url, REPOSITORY, RUN_ID, "wrong", "production")


def test_forbidden_names_the_permission_and_hides_the_token(github: FakeGitHub) -> None:
    github.status, github.body = 403, {"message": "Resource not accessible by integration"}
    with pytest.raises(GitHubApiError, match=REQUIRED_PERMISSION) as raised:
        environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, "production")
    message = str(raised.value)
    assert "403" in message
    assert "Resource not accessible by integration" in message
    assert TOKEN not in message


def test_unknown_run_names_the_permission(github: FakeGitHub) -> None:
    with pytest.raises(GitHubApiError, match=REQUIRED_PERMISSION):
        environment_reviewers(github.url, REPOSITORY, "999", TOKEN, "production")


def test_slow_server_times_out_with_a_clear_message(github: FakeGitHub) -> None:
    github.delay = 1.0
    started = time.monotonic()
    with pytest.raises(GitHubApiError, match=r"did not answer .* within the 0\.2 s timeout"):
        environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, "production", timeout=0.2)
    assert time.monotonic() - started < github.delay


def test_unreachable_server_is_a_network_error() -> None:
    with pytest.raises(GitHubApiError, match="Cannot reach the GitHub API"):
        environment_reviewers("http://127.0.0.1:9", REPOSITORY, RUN_ID, TOKEN, "production")


def test_unexpected_payload_is_an_error(github: FakeGitHub) -> None:
    github.body = {"total_count": 0}
    with pytest.raises(GitHubApiError, match="expected a list"):
        environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, "production")
    github.body = [{"state": "approved"}]
    with pytest.raises(GitHubApiError, match=r"user\.login"):
        environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, "production")


@pytest.mark.parametrize(("repository", "run_id"), [("acme", RUN_ID), (REPOSITORY, "12/../3")])
def test_malformed_repository_or_run_id_is_refused(repository: str, run_id: str) -> None:
    with pytest.raises(GitHubApiError):
        environment_reviewers("http://127.0.0.1:9", repository, run_id, TOKEN, "production")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def job(issuer: Issuer, github: FakeGitHub, environment: str = "production") -> Actor:
    """This process's identity in a job whose OIDC token GitHub (here: the loopback issuer) signed."""
    settings = issuer.settings(repository=REPOSITORY, environment=environment, api_url=github.url)
    issuer.tokens[AUDIENCE] = issuer.token(
        repository=REPOSITORY, run_id=RUN_ID, environment=environment
    )
    actor = oidc_actor(settings, job_environ(issuer), "runner")
    assert actor is not None
    return actor


def test_a_job_proven_in_the_environment_reads_its_reviewers(
    issuer: Issuer, github: FakeGitHub
) -> None:
    settings = issuer.settings(repository=REPOSITORY, api_url=github.url)
    reviewers = reviewers_for_job(
        "production", job(issuer, github), settings, {"GITHUB_TOKEN": TOKEN}
    )
    assert [r.login for r in reviewers] == ["carol", "Frank"]
    with pytest.raises(GitHubApiError, match="GITHUB_TOKEN"):
        reviewers_for_job("production", job(issuer, github), settings, {})


def test_github_variables_alone_prove_no_environment(github: FakeGitHub, issuer: Issuer) -> None:
    settings = issuer.settings(repository=REPOSITORY, api_url=github.url)
    asserted = Actor("bob", "asserted", {}, "bob")
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_TOKEN": TOKEN,
    }
    with pytest.raises(EnvironmentNotProven, match="not as a GitHub Actions job"):
        reviewers_for_job("production", asserted, settings, environ)
    assert github.seen == []


def test_a_job_in_another_environment_proves_nothing_for_this_one(
    issuer: Issuer, github: FakeGitHub
) -> None:
    settings = issuer.settings(repository=REPOSITORY, api_url=github.url)
    staging_job = job(issuer, github, environment="staging")
    with pytest.raises(EnvironmentNotProven, match="runs in GitHub environment 'staging'"):
        reviewers_for_job("production", staging_job, settings, {"GITHUB_TOKEN": TOKEN})
    other_repo = issuer.settings(repository="acme/other", api_url=github.url)
    with pytest.raises(EnvironmentNotProven, match="not 'acme/other'"):
        reviewers_for_job("production", job(issuer, github), other_repo, {"GITHUB_TOKEN": TOKEN})


def test_reviews_are_never_read_from_files(tmp_path: Path) -> None:
    folder = tmp_path / "repos" / REPOSITORY / "actions" / "runs" / RUN_ID
    folder.mkdir(parents=True)
    (folder / "approvals").write_text(json.dumps(REVIEWS))
    with pytest.raises(GitHubApiError, match="not an https"):
        environment_reviewers(f"file://{tmp_path}", REPOSITORY, RUN_ID, TOKEN, "production")
    with pytest.raises(ValueError, match="not an https"):
        Issuer("https://x", None).settings(api_url=f"file://{tmp_path}")  # type: ignore[arg-type]


def test_reviewers_become_approvals_that_the_policy_counts(github: FakeGitHub) -> None:
    policy = load_approval_policy(PRODUCTION, CONFIGS)
    stage = policy.stages.production
    approver = policy.roles[stage.approvers[0]][0]
    requester = policy.roles[stage.requesters[0]][0]
    github.body = [review(approver, "approved", [PRODUCTION], "looks good")]
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    verified = stage.accepted_identity_sources[0]  # the requester and author are verified here
    request = PromotionRequest(
        "readmission_classifier",
        "4",
        PRODUCTION,
        requester,
        "model-author",
        now,
        verified,
        verified,
    )

    reviewers = environment_reviewers(github.url, REPOSITORY, RUN_ID, TOKEN, PRODUCTION)
    approvals = approvals_from_reviewers(reviewers, request)
    (approval,) = approvals
    assert approval.source == GITHUB_SOURCE
    assert (approval.approver, approval.model_version, approval.recorded_at) == (
        approver,
        "4",
        now,
    )
    assert approval.reason == "looks good"
    assert evaluate_promotion(policy, request, approvals).allowed

"""Production takes only versions trained at a commit on the protected branch (issue 13, item 7).

The git questions run against a real throw-away repository: a commit on the branch, one on a side
branch that was never merged, a remote-tracking copy of the branch, and a commit git never saw.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops_platform.governance.approvals.policy import (
    APPROVALS_CONFIG,
    LOCAL,
    PRODUCTION,
    STAGING,
    ApprovalPolicyError,
    load_approval_policy,
)
from mlops_platform.governance.code_origin import (
    branch_contains,
    commit_origin_problems,
    signed_branch_tip,
)
from mlops_platform.trust.identity import GITHUB_OIDC
from tests.git_repo import git

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SUBJECT = "readmission version 3"


def commit(repo: Path, message: str) -> str:
    git(repo, "commit", "--allow-empty", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q", "-b", "main")
    return tmp_path


def test_a_commit_on_the_branch_is_contained_and_a_side_branch_commit_is_not(repo: Path) -> None:
    reviewed = commit(repo, "reviewed")
    git(repo, "checkout", "-q", "-b", "feature")
    unreviewed = commit(repo, "never merged")
    git(repo, "checkout", "-q", "main")
    commit(repo, "later on main")

    assert branch_contains(reviewed, "main", repo) == (True, "refs/heads/main")
    contained, ref = branch_contains(unreviewed, "main", repo)
    assert contained is False and ref == "refs/heads/main"
    problems = commit_origin_problems(SUBJECT, unreviewed, False, "main", contained, ref)
    assert len(problems) == 1 and "not in the history of the protected branch 'main'" in problems[0]
    assert commit_origin_problems(SUBJECT, reviewed, False, "main", True, ref) == []


def test_the_servers_copy_of_the_branch_wins_over_a_local_branch_of_that_name(repo: Path) -> None:
    reviewed = commit(repo, "reviewed")
    git(repo, "update-ref", "refs/remotes/origin/main", reviewed)
    # Someone moves their local main onto unreviewed work: the server's branch still decides.
    unreviewed = commit(repo, "local only")
    assert branch_contains(unreviewed, "main", repo) == (False, "refs/remotes/origin/main")


def test_a_github_requester_is_judged_on_the_tip_its_signed_token_names(repo: Path) -> None:
    """The attack: code in the job moves the clone's `origin/main` to an unreviewed commit. The
    commit GitHub signed in the job's OIDC token is what the rule compares with."""
    reviewed = commit(repo, "reviewed")
    git(repo, "checkout", "-q", "-b", "feature")
    unreviewed = commit(repo, "never merged")
    git(repo, "checkout", "-q", "main")
    git(repo, "update-ref", "refs/remotes/origin/main", unreviewed)  # the moved ref
    assert branch_contains(unreviewed, "main", repo)[0] is True  # the clone's refs are fooled

    evidence = {"ref": "refs/heads/main", "sha": reviewed}
    tip, problem = signed_branch_tip(GITHUB_OIDC, evidence, "main")
    assert (tip, problem) == (reviewed, None)
    contained, named = branch_contains(unreviewed, "main", repo, tip)
    assert contained is False and reviewed[:12] in named and "GitHub token" in named
    assert branch_contains(reviewed, "main", repo, tip)[0] is True
    # A tip the clone never saw cannot be judged: refused, not trusted.
    assert branch_contains(reviewed, "main", repo, "e" * 40)[0] is None


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        ({"ref": "refs/heads/feature", "sha": "a" * 40}, "not the protected branch"),
        ({"ref": "refs/pull/7/merge", "sha": "a" * 40}, "not the protected branch"),
        ({"sha": "a" * 40}, "ref 'none'"),
        ({"ref": "refs/heads/main", "sha": "HEAD"}, "names no commit"),
        (None, "ref 'none'"),
    ],
)
def test_a_github_job_off_the_protected_branch_is_refused(
    evidence: dict[str, str] | None, message: str
) -> None:
    tip, problem = signed_branch_tip(GITHUB_OIDC, evidence, "main")
    assert tip is None and problem is not None and message in problem


def test_other_requesters_use_the_clones_refs() -> None:
    assert signed_branch_tip("zenml-server", {"ref": "refs/heads/x"}, "main") == (None, None)


def test_a_release_job_checks_against_the_tagged_commit() -> None:
    """`mlops deploy` on a published release runs on the tag: GitHub signs the tagged commit,
    and the version's commit must be in that commit's history."""
    evidence = {"ref": "refs/tags/v1.4.0", "sha": "b" * 40}
    assert signed_branch_tip(GITHUB_OIDC, evidence, "main") == ("b" * 40, None)
    tip, problem = signed_branch_tip(GITHUB_OIDC, {**evidence, "sha": "v1.4.0"}, "main")
    assert tip is None and problem is not None and "names no commit" in problem


@pytest.mark.parametrize(
    ("sha", "why"),
    [
        ("unknown", "is not a commit id"),
        ("HEAD", "is not a commit id"),
        ("main~1", "is not a commit id"),
        ("0123456789abcdef0123456789abcdef01234567", "is not in this clone"),
    ],
)
def test_git_that_cannot_tell_is_a_refusal(repo: Path, sha: str, why: str) -> None:
    commit(repo, "reviewed")
    contained, evidence = branch_contains(sha, "main", repo)
    assert contained is None and why in evidence
    problems = commit_origin_problems(SUBJECT, sha, False, "main", contained, evidence)
    assert len(problems) == 1 and problems[0].startswith("cannot tell")
    assert "fetch-depth: 0" in problems[0]


def test_a_missing_branch_is_a_refusal(repo: Path) -> None:
    head = commit(repo, "reviewed")
    contained, evidence = branch_contains(head, "release", repo)
    assert contained is None and "refs/remotes/origin/release" in evidence
    assert commit_origin_problems(SUBJECT, head, False, "release", contained, evidence)


def test_no_commit_or_a_dirty_tree_is_refused_whatever_git_says() -> None:
    assert "no verified record" in commit_origin_problems(SUBJECT, None, None, "main", True, "")[0]
    dirty = commit_origin_problems(SUBJECT, "a" * 40, True, "main", True, "refs/heads/main")
    assert len(dirty) == 1 and "uncommitted changes" in dirty[0]
    unsaid = commit_origin_problems(SUBJECT, "a" * 40, None, "main", True, "refs/heads/main")
    assert len(unsaid) == 1 and "does not say whether its checkout" in unsaid[0]


def test_production_outside_local_must_name_the_protected_branch(tmp_path: Path) -> None:
    assert load_approval_policy(PRODUCTION, CONFIGS).stages.production.code_from_branch
    assert load_approval_policy(LOCAL, CONFIGS).stages.production.code_from_branch is None
    (tmp_path / "base").mkdir()
    shutil.copy(CONFIGS / "base" / f"{APPROVALS_CONFIG}.yaml", tmp_path / "base")
    unchecked = {"stages": {PRODUCTION: {"code_from_branch": None}}}
    for env in (STAGING, PRODUCTION):
        (tmp_path / env).mkdir()
        (tmp_path / env / f"{APPROVALS_CONFIG}.yaml").write_text(yaml.safe_dump(unchecked))
        with pytest.raises(ApprovalPolicyError, match="code_from_branch is null"):
            load_approval_policy(env, tmp_path)


@pytest.mark.parametrize("branch", ["", "main; rm -rf /", "--upload-pack", "a b", ".hidden"])
def test_a_branch_name_git_could_misread_does_not_load(tmp_path: Path, branch: str) -> None:
    (tmp_path / "base").mkdir()
    shutil.copy(CONFIGS / "base" / f"{APPROVALS_CONFIG}.yaml", tmp_path / "base")
    (tmp_path / PRODUCTION).mkdir()
    bad = {"stages": {PRODUCTION: {"code_from_branch": branch}}}
    (tmp_path / PRODUCTION / f"{APPROVALS_CONFIG}.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ApprovalPolicyError, match="code_from_branch"):
        load_approval_policy(PRODUCTION, tmp_path)

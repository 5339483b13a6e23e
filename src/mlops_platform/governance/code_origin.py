"""Is a model version's code on the protected branch? The production promotion rule.

A version records the commit it was trained at (`training_completed` in the verified audit trail).
Production accepts only versions whose commit is in the history of the protected branch that the
approval policy names (`stages.production.code_from_branch`), so code that never passed review on
that branch cannot reach patients through a model trained from it.

`commit_origin_problems` is the pure decision; `branch_contains` asks git, and says "cannot tell"
(None) when it cannot, which the decision treats as a refusal (fail closed).

Which commit is the branch's tip: when the requester acts through a GitHub Actions OIDC token,
the commit GitHub signed in that token (`signed_branch_tip`; the job must run on the protected
branch, or on a release tag: then the tagged commit), never a ref of the clone, which code in the
job could move. Otherwise the clone's refs. That a release tag's commit is itself on the
protected branch is the repository's tag ruleset's to enforce (docs/SECURITY.md).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_platform.trust.identity import GITHUB_OIDC

# The refs a release job runs on (GitHub's `release: published` event).
RELEASE_TAGS = "refs/tags/"
# A full or abbreviated hexadecimal commit id; anything else ("unknown", a branch name, a range)
# is not a commit the rule can check.
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


def branch_refs(branch: str) -> tuple[str, ...]:
    """The refs that stand for ``branch``, the server's copy first.

    In CI the checkout holds the server's branch as ``origin/<branch>``; a laptop may have only
    the local branch.
    """
    return (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}")


def signed_branch_tip(
    source: str, evidence: Mapping[str, Any] | None, branch: str
) -> tuple[str | None, str | None]:
    """(tip, problem) from a verified GitHub OIDC requester's token evidence (pure).

    (None, None) when the requester is not a GitHub job (the clone's refs are used). A job token
    for another ref than ``branch`` or a release tag is a problem: production promotions run from
    the protected branch, or from a release (`mlops deploy` on a published release), whose
    commit GitHub itself names in the token; the version's commit must be in its history.
    """
    if source != GITHUB_OIDC:
        return None, None
    ref, sha = str((evidence or {}).get("ref") or ""), str((evidence or {}).get("sha") or "")
    if ref != f"refs/heads/{branch}" and not ref.startswith(RELEASE_TAGS):
        return None, (
            f"the promoting job's GitHub token is for ref {ref or 'none'!r}, not the protected "
            f"branch refs/heads/{branch} nor a release tag ({RELEASE_TAGS}*); run the production "
            f"promotion from {branch!r} or from a published release"
        )
    if not _COMMIT.match(sha):
        return None, f"the promoting job's GitHub token names no commit of {branch!r} (sha {sha!r})"
    return sha, None


def _git(args: list[str], repo: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def branch_contains(
    commit: str, branch: str, repo: Path, tip: str | None = None
) -> tuple[bool | None, str]:
    """Whether ``commit`` is an ancestor of (or is) the tip of ``branch`` in ``repo``'s git.

    ``tip``: the branch's commit as a signed token names it (`signed_branch_tip`); then no ref
    of the clone is read. Returns (answer, the ref or commit used or why there is no answer).
    None means git could not tell: no git, no such ref, or a commit is not in this clone (a
    shallow checkout).
    """
    if not _COMMIT.match(commit):
        return None, f"{commit!r} is not a commit id"
    if tip is not None:
        return _contains(
            commit, tip, f"{branch} at {tip[:12]}, as the job's GitHub token names it", repo
        )
    for ref in branch_refs(branch):
        found = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo)
        if found is None:
            return None, "git is not available"
        if found.returncode != 0:
            continue
        return _contains(commit, ref, ref, repo)
    return None, f"neither {' nor '.join(branch_refs(branch))} exists in this clone"


def _contains(commit: str, tip: str, named: str, repo: Path) -> tuple[bool | None, str]:
    for wanted in (commit, tip):
        known = _git(["cat-file", "-e", f"{wanted}^{{commit}}"], repo)
        if known is None or known.returncode != 0:
            return None, f"commit {wanted[:12]} is not in this clone (fetch its history)"
    ancestor = _git(["merge-base", "--is-ancestor", commit, tip], repo)
    if ancestor is None or ancestor.returncode not in (0, 1):
        return None, f"git could not compare {commit[:12]} with {named}"
    return ancestor.returncode == 0, named


def commit_origin_problems(
    subject: str,
    commit: str | None,
    dirty: bool | None,
    branch: str,
    contained: bool | None,
    evidence: str,
) -> list[str]:
    """Why ``subject`` (trained at ``commit``) may not go to production under the branch rule.

    ``contained`` and ``evidence`` are `branch_contains`'s answer for ``commit``.
    """
    if not commit:
        return [
            f"{subject} has no verified record of the commit it was trained at, so nothing shows "
            f"its code is on the protected branch {branch!r}; retrain it through the platform"
        ]
    if dirty is None:
        return [
            f"{subject}'s training record does not say whether its checkout at {commit[:12]} was "
            "clean, so its code cannot be tied to a reviewed commit; retrain it through the "
            "platform"
        ]
    if dirty:
        return [
            f"{subject} was trained from a checkout with uncommitted changes at {commit[:12]}; "
            f"production takes only code committed on {branch!r}; retrain from a clean checkout"
        ]
    if contained is None:
        return [
            f"cannot tell whether {subject}'s commit {commit[:12]} is on the protected branch "
            f"{branch!r}: {evidence}. Run the promotion from a full clone "
            f"(`git fetch origin {branch}`; in GitHub Actions, checkout with fetch-depth: 0)"
        ]
    if not contained:
        return [
            f"{subject} was trained at commit {commit[:12]}, which is not in the history of the "
            f"protected branch {branch!r} ({evidence}); merge the code through review and "
            "retrain from that branch"
        ]
    return []

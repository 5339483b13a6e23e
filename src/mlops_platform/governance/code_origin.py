"""Is a model version's code on the protected branch? The production promotion rule.

A version records the commit it was trained at (`training_completed` in the verified audit trail).
Production accepts only versions whose commit is in the history of the protected branch that the
approval policy names (`stages.production.code_from_branch`), so code that never passed review on
that branch cannot reach patients through a model trained from it.

`commit_origin_problems` is the pure decision; `branch_contains` asks git, and says "cannot tell"
(None) when it cannot, which the decision treats as a refusal (fail closed).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

# A full or abbreviated hexadecimal commit id; anything else ("unknown", a branch name, a range)
# is not a commit the rule can check.
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


def branch_refs(branch: str) -> tuple[str, ...]:
    """The refs that stand for ``branch``, the server's copy first.

    In CI the checkout holds the server's branch as ``origin/<branch>``; a laptop may have only
    the local branch.
    """
    return (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}")


def _git(args: list[str], repo: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def branch_contains(commit: str, branch: str, repo: Path) -> tuple[bool | None, str]:
    """Whether ``commit`` is an ancestor of (or is) the tip of ``branch`` in ``repo``'s git.

    Returns (answer, the ref used or why there is no answer). None means git could not tell: no
    git, no such ref, or the commit is not in this clone (a shallow checkout).
    """
    if not _COMMIT.match(commit):
        return None, f"{commit!r} is not a commit id"
    for ref in branch_refs(branch):
        found = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo)
        if found is None:
            return None, "git is not available"
        if found.returncode != 0:
            continue
        known = _git(["cat-file", "-e", f"{commit}^{{commit}}"], repo)
        if known is None or known.returncode != 0:
            return None, f"commit {commit[:12]} is not in this clone (fetch its history)"
        ancestor = _git(["merge-base", "--is-ancestor", commit, ref], repo)
        if ancestor is None or ancestor.returncode not in (0, 1):
            return None, f"git could not compare {commit[:12]} with {ref}"
        return ancestor.returncode == 0, ref
    return None, f"neither {' nor '.join(branch_refs(branch))} exists in this clone"


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

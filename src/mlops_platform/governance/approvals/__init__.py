"""Promotion approvals: who may request and approve, separation of duties, overrides.

Pure decisions live in ``policy``; ``github`` reads the reviewers of a GitHub environment.
"""

from mlops_platform.governance.approvals.github import (
    EnvironmentNotProven,
    EnvironmentReviewer,
    GitHubApiError,
    approvals_from_reviewers,
    environment_reviewers,
    reviewers_for_job,
)
from mlops_platform.governance.approvals.policy import (
    APPROVAL_SOURCES,
    STAGES,
    WILDCARD,
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalPolicyError,
    OverridePolicy,
    PromotionRequest,
    StagePolicy,
    evaluate_override,
    evaluate_promotion,
    load_approval_policy,
    may_approve,
    may_request,
    normalize_name,
)

__all__ = [
    "APPROVAL_SOURCES",
    "STAGES",
    "WILDCARD",
    "Approval",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalPolicyError",
    "EnvironmentNotProven",
    "EnvironmentReviewer",
    "GitHubApiError",
    "OverridePolicy",
    "PromotionRequest",
    "StagePolicy",
    "approvals_from_reviewers",
    "environment_reviewers",
    "evaluate_override",
    "evaluate_promotion",
    "load_approval_policy",
    "may_approve",
    "may_request",
    "normalize_name",
    "reviewers_for_job",
]

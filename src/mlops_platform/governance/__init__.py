"""Policies, approvals, promotion, stage moves and the governance check."""

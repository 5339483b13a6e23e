"""Stacks, settings, code repository, dashboards and deployment targets."""

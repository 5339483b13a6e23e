"""Who acted, the audit trail and its events."""

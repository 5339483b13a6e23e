"""Real-time scoring: the production model served by a ZenML pipeline deployment."""

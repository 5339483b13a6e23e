"""The governed launcher, its run context, hooks and tracking."""

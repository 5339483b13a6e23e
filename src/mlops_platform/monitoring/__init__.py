"""Outcome monitoring: join the true outcomes back to the served predictions and judge each model
version's realised performance (pure core: `labels`, `join`, `performance`, `verdict`; I/O in
`predictions` and the `check_outcomes` step)."""

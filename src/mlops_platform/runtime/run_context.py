"""What the platform runner hands to every step and hook of a governed run (via step environment)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "MLOPS_RUN_"


class UngovernedRunError(RuntimeError):
    """A pipeline was started without the platform runner, so its hooks and policy are missing."""


@dataclass(frozen=True)
class GovernedContext:
    env: str
    actor: str
    git_sha: str
    git_dirty: bool
    mlflow_uri: str = ""
    mlflow_run_id: str = ""
    # How the actor was identified (trust.identity); a run that does not say was asserted.
    actor_source: str = "asserted"
    # The actor's identity as JSON (trust/identity.Actor.as_dict): source and evidence.
    identity: str = ""

    def identity_record(self) -> dict[str, object]:
        """The launcher's identity record; a run without one says so rather than guessing."""
        try:
            record = json.loads(self.identity) if self.identity else None
        except ValueError:
            record = None
        return record if isinstance(record, dict) else {"name": self.actor, "source": "unknown"}

    def to_environment(self) -> dict[str, str]:
        return {
            f"{PREFIX}ENV": self.env,
            f"{PREFIX}ACTOR": self.actor,
            f"{PREFIX}GIT_SHA": self.git_sha,
            f"{PREFIX}GIT_DIRTY": "1" if self.git_dirty else "0",
            f"{PREFIX}MLFLOW_URI": self.mlflow_uri,
            f"{PREFIX}MLFLOW_RUN_ID": self.mlflow_run_id,
            f"{PREFIX}ACTOR_SOURCE": self.actor_source,
            f"{PREFIX}IDENTITY": self.identity,
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> GovernedContext:
        values = os.environ if environ is None else environ
        if not values.get(f"{PREFIX}ENV"):
            raise UngovernedRunError(
                "This pipeline run was not started through the platform, so governance (policy, "
                "audit, tracking) is not attached. Start it with `mlops train` or "
                "`mlops_platform.runtime.runner.run_governed(...)`."
            )
        return cls(
            env=values[f"{PREFIX}ENV"],
            actor=values.get(f"{PREFIX}ACTOR", "unknown"),
            git_sha=values.get(f"{PREFIX}GIT_SHA", "unknown"),
            git_dirty=values.get(f"{PREFIX}GIT_DIRTY") == "1",
            mlflow_uri=values.get(f"{PREFIX}MLFLOW_URI", ""),
            mlflow_run_id=values.get(f"{PREFIX}MLFLOW_RUN_ID", ""),
            actor_source=values.get(f"{PREFIX}ACTOR_SOURCE") or "asserted",
            identity=values.get(f"{PREFIX}IDENTITY", ""),
        )

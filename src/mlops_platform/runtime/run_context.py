"""What the platform runner hands to every step and hook of a governed run: a signed run token.

`run_governed` describes the run (environment, actor, code version, MLflow run, the hash of the
effective configuration and the run's own name), signs that description with the environment's
writer key (`mlops_platform.trust.keys.signer_for`) and stores it in the pipeline run's own
configuration (`extra["governed_token"]`). Platform steps and hooks read the token back from the
pipeline run they are part of, verify the signature with the environment's trusted keys and check
that it names this very run. Nothing is read from environment variables (the `MLOPS_RUN_*`
variables of earlier versions are neither set nor trusted: anyone can set them), and a token
copied from another run names another run. A run's environment variables are also part of
ZenML's cache keys, so a governed run sets none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlops_platform.config import ENVIRONMENTS

TOKEN_KEY = "governed_token"


class UngovernedRunError(RuntimeError):
    """A pipeline was started without the platform runner, so its hooks and policy are missing."""


class ExistingVersionRefused(RuntimeError):
    """A training run names an existing model version (or a stage) instead of creating one."""


_NOT_GOVERNED = (
    "This pipeline run was not started through the platform, so governance (policy, audit, "
    "tracking) is not attached. Start it with `mlops train` or "
    "`mlops_platform.runtime.runner.run_governed(...)`."
)


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
    run_name: str = ""
    config_sha256: str = ""
    # SHA-256 of the data file the run was given, hashed by the platform ("" without a file).
    data_file_sha256: str = ""
    # The actor's identity as JSON (trust/identity.Actor.as_dict): source and evidence. Signed
    # with the rest of the token, so a step reads what the launcher verified.
    identity: str = ""
    # `caching.LaunchContent.digest()` of the launch ("" when nothing may be reused): a reused
    # output is read only if the run that made it signed the same launch (`trust.outputs`).
    launch_sha256: str = ""
    # Where the platform's hashed copy of the data file is (`provenance.snapshot_data_file`), as
    # the steps read it; the gate derives its holdout's rows and outcomes from it.
    data_file_path: str = ""
    # The run registers a model (training): it creates its model version, and a step finding
    # the version already registered refuses (`runner.refuse_existing_versions` comes first).
    creates_version: bool = False

    def identity_record(self) -> dict[str, object]:
        """The launcher's identity record; a run without one says so rather than guessing."""
        try:
            record = json.loads(self.identity) if self.identity else None
        except ValueError:
            record = None
        return record if isinstance(record, dict) else {"name": self.actor, "source": "unknown"}

    def identity_details(self) -> dict[str, object]:
        """Who launched the run as audit records store it, with the evidence the launcher's
        identity provider gave (server account, job token), read from the signed token."""
        from mlops_platform.trust.identity import identity_details

        record = self.identity_record()
        evidence = record.get("evidence") if record.get("source") == self.actor_source else None
        return identity_details(
            self.actor, self.actor_source, evidence if isinstance(evidence, dict) else None
        )

    def payload(self) -> bytes:
        """The canonical bytes the token signs."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_token(self, signer: Any) -> dict[str, Any]:
        """The signed token `run_governed` stores in the pipeline run's configuration."""
        signature = signer.sign(self.payload())
        return {"context": asdict(self), **signature.as_dict()}

    @classmethod
    def from_token(
        cls, token: object, run_name: str, verifier_for: Callable[[str], Any]
    ) -> GovernedContext:
        """Verify `token` (signature by a key `env` trusts, naming run `run_name`) and read it."""
        from mlops_platform.trust.signing import Signature, SigningError

        if not isinstance(token, Mapping) or not isinstance(token.get("context"), Mapping):
            raise UngovernedRunError(_NOT_GOVERNED)
        raw = dict(token["context"])
        names = {f.name for f in fields(cls)}
        if set(raw) != names:
            raise UngovernedRunError(
                f"The governed-run token of run {run_name} is malformed (fields "
                f"{sorted(raw)}); start the run with run_governed."
            )
        context = cls(**raw)
        if context.env not in ENVIRONMENTS:
            raise UngovernedRunError(
                f"The governed-run token names unknown environment {context.env!r}."
            )
        try:
            verifier_for(context.env).verify(
                context.payload(),
                Signature(str(token.get("key_id", "")), str(token.get("signature", ""))),
            )
        except SigningError as error:
            raise UngovernedRunError(
                f"The governed-run token of run {run_name} does not verify for environment "
                f"{context.env!r}: {error}. Only run_governed, holding the environment's signing "
                "key, can start a governed run."
            ) from error
        if context.run_name != run_name:
            raise UngovernedRunError(
                f"The governed-run token names run {context.run_name!r}, but this is run "
                f"{run_name!r}: a token copied from another run does not govern this one."
            )
        return context

    @classmethod
    def current(cls) -> GovernedContext:
        """The verified context of the pipeline run the calling step or hook belongs to."""
        from zenml import get_step_context

        from mlops_platform.trust.keys import verifier_for

        try:
            run = get_step_context().pipeline_run
        except RuntimeError as error:
            raise UngovernedRunError(_NOT_GOVERNED) from error
        cached = _VERIFIED.get(str(run.id))
        if cached is not None:
            return cached
        token = (run.config.extra or {}).get(TOKEN_KEY)
        if token is None:
            raise UngovernedRunError(_NOT_GOVERNED)
        context = cls.from_token(token, run.name, verifier_for)
        _VERIFIED[str(run.id)] = context
        return context


# Verified contexts by pipeline run id: a run's configuration cannot change once it started.
_VERIFIED: dict[str, GovernedContext] = {}


def current_environment(default: str = "local") -> str:
    """The environment of the verified governed run the caller is a step of, else `default`.

    For choices that have a safe default outside a governed run (the model allow-list when a
    notebook loads an artifact); decisions call `GovernedContext.current()` and fail closed.
    """
    try:
        return GovernedContext.current().env
    except UngovernedRunError:
        return default

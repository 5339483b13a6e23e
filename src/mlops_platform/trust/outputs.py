"""Signed digests of what a governed run's steps stored, checked wherever another run reads them.

A step's output is a file (or folder) in the artifact store, and ZenML hands the same stored
artifact to every later run that reuses the step (`caching.reusable_steps`) or reads it from a
model version (the holdout, the baseline, the patient history, the golden sample). Whoever can
write to the artifact store could otherwise change what a later gate judges or what a served
model binds, without touching a model file (those have their own pin, `trust.artifacts`).

So after every governed run (passed or failed), the launcher hashes the stored files of every
output its steps produced (not the outputs it reused: those belong to their own run) and signs
one statement, {run id, {artifact id: SHA-256}}, with the environment's key; it is kept as the
run's `output_pins` metadata. A consumer that reads an artifact made by another run calls
`check_output` first: the statement must verify with a key the consumer's environment trusts,
name the artifact's own producing run and list the artifact, and the stored files must hash to the
listed digest. Anything else (no statement, a broken signature, another digest) refuses: the
artifact is not read.

Two bindings close the rest (statement v2):

- **Launch.** The statement names the run's launch content (`caching.LaunchContent.digest`:
  commit, data file SHA-256, holdout key digest and fraction). A run reads a reused output only if
  the run that made it signed the same launch (`check_reused_outputs`), so a cache entry copied
  onto other work (a step run of another data file) is refused, whatever ZenML's cache key says.
- **Version.** The statement also lists, with their signed digests, the outputs the run *used*
  from earlier runs (its reused steps'). A model version's own artifacts (its holdout, baseline,
  patient history, drift reference) are read only from its training run, found through the
  version's signed model-file pin, and only if that run's statement lists them
  (`version_artifact`), so relinking a version to another run's signed output is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mlops_platform.trust.artifacts import integrity_alert
from mlops_platform.trust.signing import Signature, SigningError, Verifier

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse

logger = logging.getLogger(__name__)

OUTPUTS_KEY: Final = "output_pins"  # run metadata key of the signed statement
PURPOSE: Final = "mlops-platform/run-outputs/v2"
PURPOSE_V1: Final = "mlops-platform/run-outputs/v1"  # outputs only: read, never written
_CHUNK: Final = 1 << 20


class OutputIntegrityError(RuntimeError):
    """An artifact read across runs has no valid signed digest, or its stored files changed."""


# --- pure core -----------------------------------------------------------------------------------


def combine_digests(file_digests: Mapping[str, str]) -> str:
    """SHA-256 over the files of one artifact: each relative path and its content's SHA-256, in
    path order (so a renamed, added or removed file changes it too)."""
    total = hashlib.sha256()
    for name in sorted(file_digests):
        total.update(name.encode("utf-8") + b"\0")
        total.update(file_digests[name].encode("ascii") + b"\n")
    return total.hexdigest()


def digest_files(files: Mapping[str, bytes]) -> str:
    """`combine_digests` of files held in memory."""
    return combine_digests({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def statement(
    run_id: str,
    digests: Mapping[str, str],
    used: Mapping[str, str] | None = None,
    launch: str | None = None,
) -> bytes:
    """The bytes signed: v2 with `used` and `launch`, v1 (older runs) without."""
    body: dict[str, Any] = {"run_id": run_id, "outputs": dict(sorted(digests.items()))}
    if used is None and launch is None:
        body["purpose"] = PURPOSE_V1
    else:
        body.update(purpose=PURPOSE, used=dict(sorted((used or {}).items())), launch=launch or "")
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


@dataclass(frozen=True)
class OutputPins:
    """The signed statement "run R, launched on content L, stored these artifacts and used
    these earlier ones, with these digests". `used` and `launch` are None in v1 statements."""

    run_id: str
    outputs: dict[str, str]
    key_id: str
    signature: str
    used: dict[str, str] | None = None
    launch: str | None = None

    def statement(self) -> bytes:
        return statement(self.run_id, self.outputs, self.used, self.launch)

    def listed(self, artifact_id: str) -> str | None:
        """The digest this run signed for an artifact it made or used, else None."""
        return self.outputs.get(artifact_id) or (self.used or {}).get(artifact_id)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "outputs": self.outputs,
            "key_id": self.key_id,
            "signature": self.signature,
        }
        if self.used is not None or self.launch is not None:
            record.update(used=self.used or {}, launch=self.launch or "")
        return record

    @classmethod
    def from_metadata(cls, value: Any, run_id: str) -> OutputPins:
        v2 = isinstance(value, dict) and ("used" in value or "launch" in value)
        if (
            not isinstance(value, dict)
            or not all(isinstance(value.get(k), str) for k in ("run_id", "key_id", "signature"))
            or not _digest_map(value.get("outputs"))
            or (
                v2 and not (_digest_map(value.get("used")) and isinstance(value.get("launch"), str))
            )
        ):
            raise OutputIntegrityError(
                f"pipeline run {run_id} records no complete signed list of its outputs "
                f"('{OUTPUTS_KEY}'): the run was made before outputs were signed, its launch was "
                "interrupted before the platform signed them, or the record was edited"
            )
        return cls(
            value["run_id"],
            dict(value["outputs"]),
            value["key_id"],
            value["signature"],
            dict(value["used"]) if v2 else None,
            value["launch"] if v2 else None,
        )


def sign_outputs(
    run_id: str,
    digests: Mapping[str, str],
    signer: Any,
    used: Mapping[str, str] | None = None,
    launch: str = "",
) -> OutputPins:
    """Sign a v2 statement (`used` and `launch` default to none)."""
    pins = OutputPins(run_id, dict(digests), "", "", dict(used or {}), launch)
    signature = signer.sign(pins.statement())
    return OutputPins(
        run_id, pins.outputs, signature.key_id, signature.value, pins.used, pins.launch
    )


def check_pins(pins: OutputPins, run_id: str, verifier: Verifier) -> None:
    """Raise unless `pins` is a statement about run `run_id` signed by a trusted key."""
    if pins.run_id != run_id:
        raise OutputIntegrityError(
            f"the output list recorded on pipeline run {run_id} was signed for run "
            f"{pins.run_id}: a record of another run was copied there"
        )
    try:
        verifier.verify(pins.statement(), Signature(pins.key_id, pins.signature))
    except SigningError as error:
        raise OutputIntegrityError(
            f"the signed output list of pipeline run {run_id} does not verify: {error}"
        ) from error


def check_digest(
    pins: OutputPins, artifact_id: str, actual: str, what: str, *, used: bool = False
) -> None:
    """Raise unless the artifact is listed in `pins` (among its outputs, or also among the
    outputs it used when `used`) with digest `actual`."""
    expected = pins.listed(artifact_id) if used else pins.outputs.get(artifact_id)
    if expected is None:
        listed = "made or used" if used else "made"
        raise OutputIntegrityError(
            f"{what} is not among the artifacts run {pins.run_id} signed as {listed}"
        )
    if expected != actual:
        raise OutputIntegrityError(
            f"{what} has SHA-256 {actual} in the artifact store, but its run signed {expected}: "
            "the stored files were changed after the run"
        )


def launch_problem(pins: OutputPins, launch: str, what: str) -> str | None:
    """Why a run launched on content `launch` may not reuse `what` made by `pins`' run, or None.

    Reuse is only ever the same work: the making run must have signed the same, reusable launch.
    """
    if not launch:
        return (
            f"{what} was reused by a launch that may reuse nothing (its code is not a clean "
            "commit, or it was not started by the platform)"
        )
    if pins.launch != launch:
        made = f"launch {pins.launch}" if pins.launch else "no launch (an older or partial record)"
        return (
            f"{what} was made by run {pins.run_id}, which signed {made}, not this run's launch "
            f"{launch} (commit, data file, holdout key and fraction): a cache entry of other work "
            "was served to this run"
        )
    return None


# --- ZenML edges ---------------------------------------------------------------------------------


def _file_digest(path: str) -> str:
    from zenml.io import fileio

    digest = hashlib.sha256()
    with fileio.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_digest(uri: str) -> str:
    """`combine_digests` of what the artifact store holds at `uri`, read in blocks."""
    from zenml.io import fileio

    if not fileio.isdir(uri):
        return combine_digests({"": _file_digest(uri)})
    digests: dict[str, str] = {}
    for folder, _, names in fileio.walk(uri):
        base = folder.decode() if isinstance(folder, bytes) else str(folder)
        for name in names:
            name = name.decode() if isinstance(name, bytes) else str(name)
            path = posixpath.join(base, name)
            digests[posixpath.relpath(path, uri)] = _file_digest(path)
    return combine_digests(digests)


def pin_run_outputs(run_name_or_id: Any, env: str, launch: str = "") -> int:
    """Sign the digests of the outputs the run's own steps stored, with those of the outputs it
    reused and its launch content (`launch`); returns how many it made (0 when the run never
    started).

    A reused output is listed with the digest its making run signed, and only if that run's
    statement verifies and names the same launch: a run never vouches for what it did not check.
    """
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    from mlops_platform.trust.keys import signer_for

    try:
        run = Client().get_pipeline_run(run_name_or_id)
    except KeyError:
        return 0  # the run never started: nothing was stored
    digests: dict[str, str] = {}
    used: dict[str, str] = {}
    for step_run in run.steps.values():
        if step_run.status not in (ExecutionStatus.COMPLETED, ExecutionStatus.CACHED):
            continue  # failed or never ran: no outputs
        for versions in step_run.outputs.values():
            for version in versions:
                producer = str(version.producer_pipeline_run_id or "")
                if producer == str(run.id):
                    digests[str(version.id)] = stored_digest(version.uri)
                elif step_run.status == ExecutionStatus.CACHED and producer:
                    listed = _reusable_digest(producer, str(version.id), env, launch)
                    if listed is not None:
                        used[str(version.id)] = listed
    if not digests and not used:
        return 0
    pins = sign_outputs(str(run.id), digests, signer_for(env), used, launch)
    log_metadata(metadata={OUTPUTS_KEY: pins.as_dict()}, run_id_name_or_prefix=run.id)
    return len(digests)


def _reusable_digest(producer: str, artifact_id: str, env: str, launch: str) -> str | None:
    """The digest `producer` signed for the artifact, if its statement verifies and names
    `launch`; else None (the output is then not listed, and readers refuse it)."""
    try:
        pins = _pins_of(producer, env)
    except (OutputIntegrityError, SigningError):
        return None
    if launch_problem(pins, launch, "") is not None:
        return None
    return pins.outputs.get(artifact_id)


# Verified statements by run id (this process): a run's statement is read and verified once.
_VERIFIED: dict[tuple[str, str], OutputPins] = {}


def _pins_of(run_id: str, env: str) -> OutputPins:
    from zenml.client import Client

    from mlops_platform.trust.keys import verifier_for

    cached = _VERIFIED.get((run_id, env))
    if cached is not None:
        return cached
    try:
        run = Client().get_pipeline_run(run_id)
    except KeyError as error:
        raise OutputIntegrityError(f"pipeline run {run_id} is not in the ZenML store") from error
    pins = OutputPins.from_metadata(run.run_metadata.get(OUTPUTS_KEY), run_id)
    check_pins(pins, run_id, verifier_for(env))
    _VERIFIED[(run_id, env)] = pins
    return pins


def check_output(artifact: ArtifactVersionResponse, env: str, current_run_id: Any = None) -> None:
    """Raise `OutputIntegrityError` unless `artifact`'s stored files are what its run signed.

    An artifact made by `current_run_id` (the reading run itself, not yet signed) is not checked.
    """
    producer = artifact.producer_pipeline_run_id
    what = f"artifact {artifact.name} version {artifact.version} ({artifact.id})"
    if producer is not None and current_run_id is not None and str(producer) == str(current_run_id):
        return
    try:
        if producer is None:
            raise OutputIntegrityError(f"{what} was not made by a pipeline run")
        pins = _pins_of(str(producer), env)
        check_digest(pins, str(artifact.id), stored_digest(artifact.uri), what)
    except (OutputIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {what} in {env}: {error}. A platform check reads an artifact of "
            "another run only when its stored files are what that run signed. Restore the "
            "artifact store from backup, or run again from a new commit so that nothing is "
            "reused, and find out who wrote to the store."
        )
        integrity_alert(env, message)
        raise OutputIntegrityError(message) from error


def load_checked(artifact: ArtifactVersionResponse, env: str, current_run_id: Any = None) -> Any:
    """`artifact.load()` after `check_output`."""
    check_output(artifact, env, current_run_id)
    return artifact.load()


def check_reused_outputs(run_id: Any, env: str, launch: str) -> int:
    """`check_output` on every output of every step run `run_id` reused, and the launch check:
    each was made by a run that signed `launch` (this run's). Returns how many were checked."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    run = Client().get_pipeline_run(run_id)
    checked = 0
    for step_run in run.steps.values():
        if step_run.status != ExecutionStatus.CACHED:
            continue
        for versions in step_run.outputs.values():
            for version in versions:
                check_output(version, env, run_id)
                what = f"the output {version.name} of reused step {step_run.name}"
                producer = version.producer_pipeline_run_id
                problem = launch_problem(_pins_of(str(producer), env), launch, what)
                if problem:
                    message = (
                        f"Refused to judge pipeline run {run_id} in {env}: {problem}. Nothing "
                        "was judged. Find out who changed ZenML's step runs, then run again "
                        "from a new commit so that nothing is reused."
                    )
                    integrity_alert(env, message)
                    raise OutputIntegrityError(message)
                checked += 1
    return checked


def _outputs_by_name(run_id: Any) -> dict[str, list[Any]]:
    """A run's step outputs (made or reused) by artifact name, each artifact once."""
    from zenml.client import Client

    by_name: dict[str, dict[str, Any]] = {}
    for step_run in Client().get_pipeline_run(run_id).steps.values():
        for versions in step_run.outputs.values():
            for artifact in versions:
                by_name.setdefault(artifact.name, {})[str(artifact.id)] = artifact
    return {name: list(found.values()) for name, found in by_name.items()}


def run_artifact(run_id: Any, name: str | None) -> ArtifactVersionResponse | None:
    """The output called `name` of run `run_id`'s steps (made or reused), or None if none.

    Read from the run's steps, never from a model version's links, which anyone who can write
    ZenML's store can point elsewhere."""
    if not name:
        return None
    found = _outputs_by_name(run_id).get(name) or []
    if len(found) > 1:
        raise OutputIntegrityError(
            f"pipeline run {run_id} has {len(found)} outputs called {name!r}; one is expected"
        )
    return found[0] if found else None


# The verified training run of a model version and its outputs by name, by version id.
_TRAINING: dict[tuple[str, str], tuple[OutputPins, dict[str, list[Any]]]] = {}


def forget_verified() -> None:
    """Drop this process's verified statements and training runs (a new process knows none)."""
    _VERIFIED.clear()
    _TRAINING.clear()


def _training_run(version: Any, env: str) -> tuple[OutputPins, dict[str, list[Any]]]:
    """The signed statement of the run that trained `version`, and that run's step outputs
    (made or reused) by artifact name.

    The training run is the run that made the version's model artifact, named by the version's
    signed model-file pin; its statement must list that artifact as made by it.
    """
    from zenml.client import Client

    from mlops_platform.trust.artifacts import registered_pin
    from mlops_platform.trust.keys import verifier_for

    cached = _TRAINING.get((str(version.id), env))
    if cached is not None:
        return cached
    pin = registered_pin(version)
    if (pin.model_name, pin.model_version) != (version.model.name, str(version.name)):
        raise OutputIntegrityError(
            f"the model-file pin of version {version.name} signs model {pin.model_name} version "
            f"{pin.model_version}: a record of another version was copied there"
        )
    verifier_for(env).verify(pin.statement(), Signature(pin.key_id, pin.signature))
    try:
        model_artifact = Client().get_artifact_version(pin.artifact_id)
    except KeyError as error:
        raise OutputIntegrityError(
            f"the signed model artifact {pin.artifact_id} is not in the ZenML store"
        ) from error
    producer = model_artifact.producer_pipeline_run_id
    if producer is None:
        raise OutputIntegrityError(f"the model artifact {pin.artifact_id} has no producing run")
    pins = _pins_of(str(producer), env)
    if pin.artifact_id not in pins.outputs:
        raise OutputIntegrityError(
            f"run {producer}, recorded as the maker of the version's model artifact "
            f"{pin.artifact_id}, did not sign it among its outputs: the artifact's producer was "
            "changed"
        )
    by_name = _outputs_by_name(producer)
    _TRAINING[(str(version.id), env)] = (pins, by_name)
    return pins, by_name


def version_artifact(version: Any, name: str, env: str) -> ArtifactVersionResponse | None:
    """Artifact `name` of model version `version`, as its training run made or reused it.

    Read from the training run (found through the version's signed model-file pin), never from
    the version's links; refused unless that run's signed statement lists it with the digest of
    its stored files. None when the training run has no output called `name`.
    """
    subject = f"artifact {name!r} of model {version.model.name} version {version.name}"
    try:
        pins, by_name = _training_run(version, env)
        found = by_name.get(name) or []
        if not found:
            return None
        signed = [a for a in found if pins.listed(str(a.id)) is not None]
        if not signed and pins.used is None:
            raise OutputIntegrityError(
                f"its training run {pins.run_id} signed its outputs in the older format, which "
                f"lists only what the run made, and {name!r} is not among them (the run reused "
                "it); train the version again so that its run signs what it reused"
            )
        if len(signed) != 1:
            raise OutputIntegrityError(
                f"its training run {pins.run_id} has {len(found)} outputs called {name!r}, of "
                f"which {len(signed)} are in its signed list (one is required)"
            )
        (artifact,) = signed
        check_digest(pins, str(artifact.id), stored_digest(artifact.uri), subject, used=True)
    except (OutputIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {subject} in {env}: {error}. A version's own artifacts are read "
            "only as its training run signed them (the run that made its signed model file). "
            "Find out who changed ZenML's records or the artifact store; restore them from "
            "backup, or train and promote a new version."
        )
        integrity_alert(env, message)
        raise OutputIntegrityError(message) from error
    return artifact


def check_in_run(artifact: ArtifactVersionResponse, run_id: str, env: str) -> None:
    """Raise unless `artifact` is among what run `run_id` signed as made or used, with the digest
    of its stored files: an input of a step of that run that was relinked is refused."""
    what = f"artifact {artifact.name} version {artifact.version} ({artifact.id})"
    try:
        pins = _pins_of(run_id, env)
        check_digest(pins, str(artifact.id), stored_digest(artifact.uri), what, used=True)
    except (OutputIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {what} in {env} as an input of run {run_id}: {error}. Find out "
            "who changed ZenML's records or the artifact store."
        )
        integrity_alert(env, message)
        raise OutputIntegrityError(message) from error

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
PURPOSE: Final = "mlops-platform/run-outputs/v1"
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


def statement(run_id: str, digests: Mapping[str, str]) -> bytes:
    body = {"purpose": PURPOSE, "run_id": run_id, "outputs": dict(sorted(digests.items()))}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class OutputPins:
    """The signed statement "run R stored these artifacts with these digests"."""

    run_id: str
    outputs: dict[str, str]
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outputs": self.outputs,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_metadata(cls, value: Any, run_id: str) -> OutputPins:
        outputs = value.get("outputs") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or not all(isinstance(value.get(k), str) for k in ("run_id", "key_id", "signature"))
            or not isinstance(outputs, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in outputs.items())
        ):
            raise OutputIntegrityError(
                f"pipeline run {run_id} records no complete signed list of its outputs "
                f"('{OUTPUTS_KEY}'): the run was made before outputs were signed, its launch was "
                "interrupted before the platform signed them, or the record was edited"
            )
        return cls(value["run_id"], dict(outputs), value["key_id"], value["signature"])


def sign_outputs(run_id: str, digests: Mapping[str, str], signer: Any) -> OutputPins:
    signature = signer.sign(statement(run_id, digests))
    return OutputPins(run_id, dict(digests), signature.key_id, signature.value)


def check_pins(pins: OutputPins, run_id: str, verifier: Verifier) -> None:
    """Raise unless `pins` is a statement about run `run_id` signed by a trusted key."""
    if pins.run_id != run_id:
        raise OutputIntegrityError(
            f"the output list recorded on pipeline run {run_id} was signed for run "
            f"{pins.run_id}: a record of another run was copied there"
        )
    try:
        verifier.verify(
            statement(pins.run_id, pins.outputs), Signature(pins.key_id, pins.signature)
        )
    except SigningError as error:
        raise OutputIntegrityError(
            f"the signed output list of pipeline run {run_id} does not verify: {error}"
        ) from error


def check_digest(pins: OutputPins, artifact_id: str, actual: str, what: str) -> None:
    """Raise unless the artifact is listed in `pins` with digest `actual`."""
    expected = pins.outputs.get(artifact_id)
    if expected is None:
        raise OutputIntegrityError(f"{what} is not among the outputs its run {pins.run_id} signed")
    if expected != actual:
        raise OutputIntegrityError(
            f"{what} has SHA-256 {actual} in the artifact store, but its run signed {expected}: "
            "the stored files were changed after the run"
        )


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


def pin_run_outputs(run_name_or_id: Any, env: str) -> int:
    """Sign the digests of the outputs the run's own steps stored; returns how many (0 when the
    run never started)."""
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    from mlops_platform.trust.keys import signer_for

    try:
        run = Client().get_pipeline_run(run_name_or_id)
    except KeyError:
        return 0  # the run never started: nothing was stored
    digests: dict[str, str] = {}
    for step_run in run.steps.values():
        if step_run.status != ExecutionStatus.COMPLETED:
            continue  # reused (its outputs are another run's) or failed (none)
        for versions in step_run.outputs.values():
            for version in versions:
                if str(version.producer_pipeline_run_id or "") == str(run.id):
                    digests[str(version.id)] = stored_digest(version.uri)
    if not digests:
        return 0
    pins = sign_outputs(str(run.id), digests, signer_for(env))
    log_metadata(metadata={OUTPUTS_KEY: pins.as_dict()}, run_id_name_or_prefix=run.id)
    return len(digests)


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


def check_reused_outputs(run_id: Any, env: str) -> int:
    """`check_output` on every output of every step run `run_id` reused; returns how many."""
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
                checked += 1
    return checked

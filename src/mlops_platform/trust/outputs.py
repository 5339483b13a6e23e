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
artifact is not read. What passes is loaded from the bytes that were hashed (`trust.stored`),
never by a second read of the store.

Two bindings close the rest (statement v2):

- **Reuse.** The statement names the run's launch content (`caching.LaunchContent.digest`:
  commit, data file SHA-256, holdout key digest and fraction) and, for each output, the cache key
  of the step that made it. A run reads a reused output only if the run that made it signed the
  same launch and the cache key the reusing step has (`check_reused_outputs`), so a cache key
  copied onto a step run of other work (another file, other parameters) is refused.
- **Version.** The statement also lists the outputs the run *used* from earlier runs (its reused
  steps'), with the digests their own run signed, and names every listed artifact with the
  materializer that reads it. A model version's own artifacts (its holdout, baseline, patient
  history, drift reference) are found by that signed name in the statement of its training run,
  the run that made the file the version's signed model-file pin names (`version_artifact`):
  never through the version's links or ZenML's step records, so relinking or renaming changes
  nothing, and an artifact read with another materializer is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from mlops_platform.trust.artifacts import ModelFileIntegrityError, integrity_alert
from mlops_platform.trust.signing import Signature, SigningError, Verifier
from mlops_platform.trust.stored import (
    CheckedArtifact,
    StoredFiles,
    StoredFilesError,
    combine_digests,
    load_or_refuse,
    materializer_of,
    read_stored,
    stored_paths,
)

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


META_FIELDS: Final = ("name", "materializer", "cache_key")


def statement(
    run_id: str,
    digests: Mapping[str, str],
    used: Mapping[str, str] | None = None,
    launch: str | None = None,
    meta: Mapping[str, Mapping[str, str]] | None = None,
) -> bytes:
    """The bytes signed: v2 with `used`, `launch` and `meta`, v1 (older runs) without."""
    body: dict[str, Any] = {"run_id": run_id, "outputs": dict(sorted(digests.items()))}
    if used is None and launch is None and meta is None:
        body["purpose"] = PURPOSE_V1
    else:
        body.update(
            purpose=PURPOSE,
            used=dict(sorted((used or {}).items())),
            launch=launch or "",
            meta={k: dict(v) for k, v in sorted((meta or {}).items())},
        )
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _meta_map(value: Any, listed: set[str]) -> bool:
    """Each listed artifact has its name, materializer and step cache key, all strings."""
    return (
        isinstance(value, dict)
        and set(value) == listed
        and all(
            isinstance(v, dict)
            and set(v) == set(META_FIELDS)
            and all(isinstance(v[f], str) for f in META_FIELDS)
            for v in value.values()
        )
    )


@dataclass(frozen=True)
class OutputPins:
    """The signed statement "run R, launched on content L, stored these artifacts and used
    these earlier ones, with these digests; each is called N, is read by materializer M and came
    from a step with cache key K". `used`, `launch` and `meta` are None in v1 statements."""

    run_id: str
    outputs: dict[str, str]
    key_id: str
    signature: str
    used: dict[str, str] | None = None
    launch: str | None = None
    meta: dict[str, dict[str, str]] | None = None

    def statement(self) -> bytes:
        return statement(self.run_id, self.outputs, self.used, self.launch, self.meta)

    def listed(self, artifact_id: str) -> str | None:
        """The digest this run signed for an artifact it made or used, else None."""
        return self.outputs.get(artifact_id) or (self.used or {}).get(artifact_id)

    def named(self, name: str) -> list[str]:
        """Ids of the artifacts this run signed under the name `name` (v2 only)."""
        return sorted(k for k, v in (self.meta or {}).items() if v["name"] == name)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "outputs": self.outputs,
            "key_id": self.key_id,
            "signature": self.signature,
        }
        if self.used is not None or self.launch is not None or self.meta is not None:
            record.update(used=self.used or {}, launch=self.launch or "", meta=self.meta or {})
        return record

    @classmethod
    def from_metadata(cls, value: Any, run_id: str) -> OutputPins:
        v2 = isinstance(value, dict) and any(k in value for k in ("used", "launch", "meta"))
        if (
            not isinstance(value, dict)
            or not all(isinstance(value.get(k), str) for k in ("run_id", "key_id", "signature"))
            or not _digest_map(value.get("outputs"))
            or (
                v2
                and not (
                    _digest_map(value.get("used"))
                    and isinstance(value.get("launch"), str)
                    and _meta_map(value.get("meta"), set(value["outputs"]) | set(value["used"]))
                )
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
            {k: dict(v) for k, v in value["meta"].items()} if v2 else None,
        )


def sign_outputs(
    run_id: str,
    digests: Mapping[str, str],
    signer: Any,
    used: Mapping[str, str] | None = None,
    launch: str = "",
    meta: Mapping[str, Mapping[str, str]] | None = None,
) -> OutputPins:
    """Sign a v2 statement. `meta` must describe every artifact in `digests` and `used`."""
    listed = set(digests) | set(used or {})
    described = {k: dict(v) for k, v in (meta or {}).items()}
    if not _meta_map(described, listed):
        raise ValueError("every signed artifact needs its name, materializer and cache key")
    pins = OutputPins(run_id, dict(digests), "", "", dict(used or {}), launch, described)
    signature = signer.sign(pins.statement())
    return replace(pins, key_id=signature.key_id, signature=signature.value)


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

    The making run must have signed the same, reusable launch content.
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


def reuse_problem(
    pins: OutputPins, launch: str, artifact_id: str, cache_key: str | None, what: str
) -> str | None:
    """Why a reused output may not be read, or None: the making run must have signed the same
    launch content, and the output as made by a step with the cache key the reusing step has
    (ZenML's key covers the step's code, parameters and inputs, so a key copied onto a step
    run of other work, even of the same launch, no longer matches what that run signed)."""
    problem = launch_problem(pins, launch, what)
    if problem:
        return problem
    signed = (pins.meta or {}).get(artifact_id, {}).get("cache_key")
    if not cache_key:
        return f"{what} was served to a step of this run that records no cache key"
    if signed != cache_key:
        return (
            f"{what} was made by run {pins.run_id} by a step whose cache key it signed as "
            f"{signed or '(none)'}, but it was served to this run for cache key "
            f"{cache_key or '(none)'}: a cache key was copied onto a step run of other work"
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
    return combine_digests({relative: _file_digest(path) for relative, path in stored_paths(uri)})


def _materializer(artifact: Any) -> str:
    source = getattr(artifact, "materializer", None)
    return str(getattr(source, "import_path", "") or "")


@dataclass(frozen=True)
class Written:
    """An artifact as its step stored it in this process: its files' digest, materializer, name
    and pipeline run."""

    digest: str
    materializer: str
    name: str
    run_id: str


# Each artifact a step stored in this process, by URI, until its run is signed; and the runs whose
# steps stored them here.
_WRITTEN: dict[str, Written] = {}
_RUNS_HERE: set[str] = set()
# The runs this process signed (`pin_run_outputs`): their outputs are read as signed from then on.
_SIGNED_HERE: set[str] = set()


def _running_step_run_id() -> str:
    from zenml import get_step_context

    try:
        return str(get_step_context().pipeline_run.id)
    except RuntimeError:
        return ""  # stored outside a step (`save_artifact` in a notebook)


_STORE_FUNCTION = "_store_artifact_data_and_prepare_request"


def record_writes() -> bool:
    """Hash every artifact right after ZenML stores it in this process (a step's outputs, with
    the local orchestrator: the launcher's process), so that an edit of the artifact store
    between a step and the end of its run is caught: the gate refuses an input of its own run
    that no longer hashes as written, and the run's statement signs the written digest. False if
    it was already on, or ZenML's storing function was not found (then nothing changes: outputs
    are hashed when the run is signed, as on a remote orchestrator)."""
    from zenml.artifacts import utils as artifact_utils

    original = getattr(artifact_utils, _STORE_FUNCTION, None)
    if original is None or getattr(original, "_mlops_records_writes", False):
        return False

    def storing(*args: Any, **kwargs: Any) -> Any:
        request = original(*args, **kwargs)
        uri = str(getattr(request, "uri", "") or "")
        if uri and not uri.startswith(
            getattr(artifact_utils, "IN_MEMORY_ARTIFACT_URI_PREFIX", "memory://")
        ):
            source = getattr(request, "materializer", None)
            run_id = _running_step_run_id()
            _WRITTEN[uri] = Written(
                stored_digest(uri),
                str(getattr(source, "import_path", "")),
                str(getattr(request, "artifact_name", "") or ""),
                run_id,
            )
            if run_id:
                _RUNS_HERE.add(run_id)
        return request

    storing._mlops_records_writes = True  # type: ignore[attr-defined]
    storing.__wrapped__ = original  # type: ignore[attr-defined]
    for module in _storing_modules():
        if getattr(module, _STORE_FUNCTION, None) is original:
            setattr(module, _STORE_FUNCTION, storing)
    return True


def _forget_written(run_id: str) -> None:
    """Drop what this process recorded of the files `run_id`'s steps stored, once its statement is
    made: from then on its outputs are read as its statement signed them (`check_output`), also
    by a reader that names the run as its own (a promotion judged again after its run ended)."""
    _SIGNED_HERE.add(run_id)
    for uri in [uri for uri, written in _WRITTEN.items() if written.run_id == run_id]:
        del _WRITTEN[uri]


def _storing_modules() -> list[Any]:
    """ZenML's modules that hold the storing function by name (each imported it itself)."""
    from zenml.artifacts import utils as artifact_utils
    from zenml.hooks import recording
    from zenml.orchestrators import step_runner

    return [artifact_utils, step_runner, recording]


def _as_written(artifact: Any, what: str) -> StoredFiles:
    """The files of an artifact of the reading run, read once; raise unless, when this process
    wrote it, they still hash as written (written elsewhere: unknown, no check)."""
    stored = read_stored(str(artifact.uri))
    run_id = str(artifact.producer_pipeline_run_id or "")
    written = _WRITTEN.get(str(artifact.uri))
    if written is None:
        if run_id in _RUNS_HERE:  # this process stored the run's outputs: all of them
            raise OutputIntegrityError(
                f"{what} is recorded at {artifact.uri}, where no step of its run stored anything "
                "in this process: the record was pointed at other files"
            )
        return stored  # written by another process (a remote orchestrator): unknown
    if (written.run_id, written.name) != (run_id, str(artifact.name)):
        raise OutputIntegrityError(
            f"{what} is recorded at {artifact.uri}, where its run stored {written.name!r} of run "
            f"{written.run_id or '(none)'}: the record was pointed at another output's files"
        )
    if stored.digest != written.digest:
        raise OutputIntegrityError(
            f"{what} was changed in the artifact store after its step wrote it (SHA-256 "
            f"{written.digest} when written)"
        )
    return replace(stored, materializer=written.materializer)


def pin_run_outputs(run_name_or_id: Any, env: str, launch: str = "") -> int:
    """Sign the digests of the outputs the run's own steps stored, with those of the outputs it
    reused, each one's name, materializer and step cache key, and the run's launch content
    (`launch`); returns how many it made (0 when the run never started).

    A reused output is listed as the run that made it signed it (digest, name, materializer),
    and only if that statement verifies, names the same launch and the same step cache key.
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
    meta: dict[str, dict[str, str]] = {}
    changed: list[str] = []
    for step_run in run.steps.values():
        if step_run.status not in (ExecutionStatus.COMPLETED, ExecutionStatus.CACHED):
            continue  # failed or never ran: no outputs
        for versions in step_run.outputs.values():
            for version in versions:
                key = str(version.id)
                producer = str(version.producer_pipeline_run_id or "")
                if producer == str(run.id):
                    now, written = stored_digest(version.uri), _WRITTEN.get(str(version.uri))
                    if str(run.id) in _RUNS_HERE and (
                        written is None
                        or (written.run_id, written.name) != (str(run.id), str(version.name))
                    ):
                        # Its record names files no step of this run stored as it: not signed,
                        # so every later read refuses it.
                        changed.append(f"{version.name} ({key}, recorded at other files)")
                        continue
                    if written is not None and written.digest != now:
                        changed.append(f"{version.name} ({key})")
                    # As written: an edited file stays refused.
                    digests[key] = written.digest if written is not None else now
                    meta[key] = {
                        "name": str(version.name),
                        "materializer": _materializer(version),
                        "cache_key": str(step_run.cache_key or ""),
                    }
                elif producer:  # reused, whatever status ZenML records for the step
                    listed = _reusable(producer, key, env, launch, step_run.cache_key)
                    if listed is not None:
                        used[key], meta[key] = listed
    _forget_written(str(run.id))  # read for the last time: the statement vouches from now on
    if not digests and not used:
        return 0
    pins = sign_outputs(str(run.id), digests, signer_for(env), used, launch, meta)
    log_metadata(metadata={OUTPUTS_KEY: pins.as_dict()}, run_id_name_or_prefix=run.id)
    if changed:
        integrity_alert(
            env,
            f"Outputs of pipeline run {run.name} were changed in the artifact store after their "
            f"steps wrote them: {', '.join(changed)}. The run signed them as written, so every "
            "later read refuses them; find out who wrote to the store.",
        )
    return len(digests)


def _reusable(
    producer: str, artifact_id: str, env: str, launch: str, cache_key: str | None
) -> tuple[str, dict[str, str]] | None:
    """The digest and description `producer` signed for the artifact, if its statement verifies,
    lists it as made, and passes `reuse_problem` (same launch, same step cache key); else None
    (the output is then not listed, and readers refuse it). The files are not hashed again: the
    listed digest is the maker's, which every reader compares with the stored files."""
    try:
        pins = _pins_of(producer, env)
    except (OutputIntegrityError, SigningError):
        return None
    if pins.outputs.get(artifact_id) is None or pins.meta is None:
        return None
    problem = reuse_problem(pins, launch, artifact_id, cache_key, f"artifact {artifact_id}")
    if problem is not None:
        logger.warning("Not signed as used by this run: %s.", problem)
        return None
    return pins.outputs[artifact_id], dict(pins.meta[artifact_id])


# Statements read from ZenML by run id (this process): read once, verified on every use.
_STATEMENTS: dict[str, OutputPins] = {}


def _pins_of(run_id: str, env: str) -> OutputPins:
    """Run `run_id`'s signed statement, verified now with the keys `env` trusts now: a key
    withdrawn from the environment's trusted keys stops vouching at once, also in a process that
    read the statement earlier (a server)."""
    from zenml.client import Client

    from mlops_platform.trust.keys import verifier_for

    pins = _STATEMENTS.get(run_id)
    if pins is None:
        try:
            run = Client().get_pipeline_run(run_id)
        except KeyError as error:
            raise OutputIntegrityError(
                f"pipeline run {run_id} is not in the ZenML store"
            ) from error
        pins = OutputPins.from_metadata(run.run_metadata.get(OUTPUTS_KEY), run_id)
    check_pins(pins, run_id, verifier_for(env))
    _STATEMENTS[run_id] = pins
    return pins


def _check_files(pins: OutputPins, artifact: Any, what: str, *, used: bool) -> StoredFiles:
    """The artifact's stored files, read once: they hash to what `pins` lists for it, and (v2)
    it is read with the materializer the run signed (not one a database writer chose)."""
    stored = read_stored(str(artifact.uri))
    check_digest(pins, str(artifact.id), stored.digest, what, used=used)
    if pins.meta is None:
        return stored  # v1: no materializer signed; only a safe one loads it
    signed = pins.meta[str(artifact.id)]["materializer"]
    if _materializer(artifact) != signed:
        raise OutputIntegrityError(
            f"{what} is recorded with materializer {_materializer(artifact) or '(none)'}, "
            f"but its run signed {signed}: the record was changed"
        )
    return replace(stored, materializer=signed)


def _refuse(env: str, message: str) -> OutputIntegrityError:
    """Alert `env`'s channel and return the refusal to raise."""
    integrity_alert(env, message)
    return OutputIntegrityError(message)


def check_output(
    artifact: ArtifactVersionResponse, env: str, current_run_id: Any = None
) -> StoredFiles:
    """`artifact`'s stored files, read once; `OutputIntegrityError` unless they are what its run
    signed.

    An artifact made by `current_run_id` (the reading run itself, not yet signed) must still hash
    as its step wrote it, when this process wrote it (`record_writes`).
    """
    producer = artifact.producer_pipeline_run_id
    what = f"artifact {artifact.name} version {artifact.version} ({artifact.id})"
    own = (
        producer is not None
        and current_run_id is not None
        and str(producer) == str(current_run_id)
        and str(producer) not in _SIGNED_HERE  # signed since: read as signed
    )
    try:
        if own:
            return _as_written(artifact, what)
        if producer is None:
            raise OutputIntegrityError(f"{what} was not made by a pipeline run")
        return _check_files(_pins_of(str(producer), env), artifact, what, used=False)
    except (OutputIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {what} in {env}: {error}. A platform check reads an artifact of "
            "another run only when its stored files are what that run signed. Restore the "
            "artifact store from backup, or run again from a new commit so that nothing is "
            "reused, and find out who wrote to the store."
        )
        raise _refuse(env, message) from error


def checked(
    artifact: ArtifactVersionResponse, env: str, current_run_id: Any = None
) -> CheckedArtifact:
    """`artifact` after `check_output`, to be loaded from the bytes that were checked."""
    return CheckedArtifact(artifact, check_output(artifact, env, current_run_id), env)


def load_checked(artifact: ArtifactVersionResponse, env: str, current_run_id: Any = None) -> Any:
    """The value of `artifact`, loaded from the bytes `check_output` checked."""
    return load_or_refuse(artifact, check_output(artifact, env, current_run_id), env)


_LOAD_INPUT: Final = "_load_input_artifact"
# Refusals while a step loaded its inputs, by step run id (this process), for the run's report.
_REFUSALS: dict[str, BaseException] = {}


def note_refusal(error: BaseException) -> None:
    """Keep why the running step was refused while ZenML loads its inputs or stores its outputs:
    ZenML records no error for a step that fails there, so the launcher reports this one."""
    from zenml import get_step_context

    with contextlib.suppress(RuntimeError):  # not in a step: the caller raises it itself
        _REFUSALS[str(get_step_context().step_run.id)] = error


def step_refusal(step_run_id: Any) -> BaseException | None:
    """Why the step run was refused in this process while loading inputs or storing outputs."""
    return _REFUSALS.pop(str(step_run_id), None)


def check_step_inputs() -> bool:
    """Load every input of a governed run's steps run in this process (the local orchestrator)
    from checked bytes, instead of ZenML's loader: made by the run, as its step wrote it; made
    by another, as that run signed it (`check_output`), with the materializer written or signed
    (or a safe one). An input edited after it was written, or recorded with a materializer that
    would run code from the files, refuses the step (exit 8). False if already on, or ZenML's
    loading method was not found (then ZenML loads inputs itself)."""
    from zenml.artifacts.unmaterialized_artifact import UnmaterializedArtifact
    from zenml.orchestrators.step_runner import StepRunner

    original = getattr(StepRunner, _LOAD_INPUT, None)
    if original is None or getattr(original, "_mlops_checks_inputs", False):
        return False

    def loading(runner: Any, artifact: Any, data_type: Any) -> Any:
        from zenml import get_step_context

        from mlops_platform.runtime.run_context import GovernedContext, UngovernedRunError

        if data_type == UnmaterializedArtifact:
            return original(runner, artifact, data_type)  # nothing is loaded
        if artifact.chunk_index is not None:  # one item of a mapped input: ZenML loads it,
            materializer_of(str(artifact.materializer.import_path))  # with a safe materializer
            return original(runner, artifact, data_type)
        try:
            env = GovernedContext.current().env
        except UngovernedRunError:
            return original(runner, artifact, data_type)
        context = get_step_context()
        wanted = data_type if isinstance(data_type, type) and data_type is not object else None
        try:
            stored = check_output(artifact, env, context.pipeline_run.id)
            return load_or_refuse(artifact, stored, env, wanted)
        except (OutputIntegrityError, StoredFilesError) as error:
            note_refusal(error)  # ZenML records no error for a failure loading inputs
            raise

    loading._mlops_checks_inputs = True  # type: ignore[attr-defined]
    loading.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(StepRunner, _LOAD_INPUT, loading)
    return True


def check_reused_outputs(run_id: Any, env: str, launch: str) -> int:
    """For every output of every step of run `run_id` that another run made (whatever ZenML
    records as the step's status): `check_output`, and `reuse_problem` (made by a run that signed
    this run's `launch`, by a step with the cache key of this run's step). Returns how many were
    checked."""
    from zenml.client import Client

    run = Client().get_pipeline_run(run_id)
    checked = 0
    for step_run in run.steps.values():
        for versions in step_run.outputs.values():
            for version in versions:
                producer = str(version.producer_pipeline_run_id or "")
                if producer == str(run_id):
                    continue  # made by this run: signed when it ends
                what = f"the output {version.name} of reused step {step_run.name}"
                try:
                    if not producer:
                        raise OutputIntegrityError(f"{what} is recorded as made by no run")
                    check_output(version, env, run_id)
                    pins = _pins_of(producer, env)
                    problem = reuse_problem(pins, launch, str(version.id), step_run.cache_key, what)
                    if problem:
                        raise OutputIntegrityError(problem)
                except (OutputIntegrityError, SigningError) as error:
                    message = (
                        f"Refused to judge pipeline run {run_id} in {env}: {error}. Nothing "
                        "was judged. Find out who changed ZenML's step runs or the artifact "
                        "store, then run again from a new commit so that nothing is reused."
                    )
                    raise _refuse(env, message) from error
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
    ZenML's store can point elsewhere (the run's own outputs are signed only after it ends)."""
    if not name:
        return None
    found = _outputs_by_name(run_id).get(str(name)) or []
    if len(found) > 1:
        raise OutputIntegrityError(
            f"pipeline run {run_id} has {len(found)} outputs called '{name}'; one is expected"
        )
    return found[0] if found else None


class OutputsPredateBinding(OutputIntegrityError):
    """A version's training run signed its outputs before they were bound by name (v1)."""


def forget_statements() -> None:
    """Drop the statements this process read (a new process knows none)."""
    _STATEMENTS.clear()


def _training_run(version: Any, env: str) -> OutputPins:
    """The signed statement of the run that trained `version`.

    The training run is the run that made the version's model artifact, named by the version's
    signed model-file pin; its statement must list that artifact as made by it.
    """
    from zenml.client import Client

    from mlops_platform.trust.artifacts import registered_pin
    from mlops_platform.trust.keys import verifier_for

    pin = registered_pin(version)  # read and verified on every call: nothing stale is kept
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
    return pins


def version_artifact(version: Any, name: str, env: str) -> CheckedArtifact | None:
    """Artifact `name` of model version `version`, as its training run made or reused it.

    Found in the training run's signed statement (found through the version's signed model-file
    pin) by the name the run signed for it, never through the version's links or ZenML's step
    records; refused unless its stored files hash to the signed digest and it is read with the
    signed materializer; its `load` reads the bytes that were checked. None when the training
    run signed no artifact called `name`.
    """
    from zenml.client import Client

    name = str(name)
    subject = f"artifact '{name}' of model {version.model.name} version {version.name}"
    try:
        pins = _training_run(version, env)
        if pins.meta is None:
            raise OutputsPredateBinding(
                f"Refused to read {subject} in {env}: its training run {pins.run_id} signed its "
                "outputs in the older format, which does not name them, so the version's own "
                "artifact cannot be told from another run's. Train the version again (and "
                "promote the new one) so that its run signs them by name."
            )
        ids = pins.named(name)
        if not ids:
            return None
        if len(ids) > 1:
            raise OutputIntegrityError(
                f"its training run {pins.run_id} signed {len(ids)} artifacts called '{name}'"
            )
        try:
            artifact = Client().get_artifact_version(ids[0])
        except KeyError as error:
            raise OutputIntegrityError(
                f"artifact {ids[0]}, signed by its training run {pins.run_id}, is not in the "
                "ZenML store"
            ) from error
        stored = _check_files(pins, artifact, subject, used=True)
    except OutputsPredateBinding:
        raise
    except (OutputIntegrityError, ModelFileIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {subject} in {env}: {error}. A version's own artifacts are read "
            "only as its training run signed them (the run that made its signed model file). "
            "Find out who changed ZenML's records or the artifact store; restore them from "
            "backup, or train and promote a new version."
        )
        raise _refuse(env, message) from error
    return CheckedArtifact(artifact, stored, env)


def check_in_run(artifact: ArtifactVersionResponse, run_id: str, env: str) -> CheckedArtifact:
    """`artifact`, refused unless it is among what run `run_id` signed as made or used, with the
    digest of its stored files: an input of a step of that run that was relinked is refused."""
    what = f"artifact {artifact.name} version {artifact.version} ({artifact.id})"
    try:
        stored = _check_files(_pins_of(run_id, env), artifact, what, used=True)
    except (OutputIntegrityError, SigningError, OSError) as error:
        message = (
            f"Refused to read {what} in {env} as an input of run {run_id}: {error}. Find out "
            "who changed ZenML's records or the artifact store."
        )
        raise _refuse(env, message) from error
    return CheckedArtifact(artifact, stored, env)

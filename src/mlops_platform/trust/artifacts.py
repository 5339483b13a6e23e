"""Model files that cannot run code or be swapped: exact-type allow-list, pinned digest, signature.

Three checks stand between a stored ``model.skops`` and the Python objects it becomes:

1. **Exact types.** Every class and function the file names (read from its skops schema, not from
   skops' own default trust) must be on ``serialization.allowed_types`` in platform.yaml. A
   function reference inside a ``FunctionTransformer`` or a ``functools.partial`` is a name like
   any other, so an unlisted one is refused before anything is built.
2. **Pinned digest.** At registration the platform hashes the stored file (SHA-256) and records
   the digest with the model version (registration metadata, the artifact's metadata, an MLflow
   tag and the audit record).
3. **Signature.** The digest is signed, together with the model name, version and artifact id,
   with the environment's key (``trust.keys.signer_for``). Before a registered model is loaded,
   the file's digest must match the signed one and the signature must verify with a key the
   loading environment trusts (``trust.keys.verifier_for``). The signature is what makes the
   recorded digest trustworthy: whoever can rewrite the file or the ZenML metadata still cannot
   produce a signature without the environment's private key.

``load_verified_model`` is the one function every platform load goes through (batch scoring,
promotion gates, rollback; real-time serving later): it reads the bytes once, verifies those
bytes and deserialises the same bytes, so nothing can change the file between check and load.
The skops materializer also verifies registered artifacts it loads (``verify_pinned_uri``), so a
plain ``artifact.load()`` in data-science code meets the same checks.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import io
import json
import logging
import os
import threading
import time
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from mlops_platform.trust.signing import Signature, SigningError, Verifier

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse, ModelVersionResponse

logger = logging.getLogger(__name__)

MODEL_FILENAME: Final = "model.skops"
MODEL_FILE_KEY: Final = "model_file"  # metadata key of the pin (registration, artifact version)
PIN_PURPOSE: Final = "mlops-platform/model-file/v1"
SKOPS_SCHEMA: Final = "schema.json"
_METHOD_LOADER: Final = "MethodNode"


class UntrustedModelError(RuntimeError):
    """A model (to store or to load) names a class or function outside the allow-list."""


class ModelFileIntegrityError(RuntimeError):
    """A registered model file does not match its signed digest, or its pin is missing or forged."""


class ModelCodeMissing(RuntimeError):
    """A stored model names a module, class or function this code no longer has (moved or
    renamed): it cannot be built, so it is refused (exit 8) rather than crashing."""


# --- exact types -------------------------------------------------------------------------------


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every skops node of a schema: each dict naming a ``__module__`` and a ``__class__``."""
    if isinstance(node, dict):
        if "__module__" in node or "__class__" in node:
            yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def model_types(data: bytes) -> list[str]:
    """Fully qualified names of every class and function a skops file names, sorted.

    Read from the file's schema without building anything. Unlike ``skops.io.get_untrusted_types``
    this also lists what skops trusts by default (NumPy ufuncs, scikit-learn estimators), so the
    platform's allow-list, not skops' defaults, decides.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read(SKOPS_SCHEMA))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UntrustedModelError(
            f"the model file is not a skops archive with a readable {SKOPS_SCHEMA} ({error}); "
            "models are stored only in the skops format"
        ) from error
    names: set[str] = set()
    for node in _nodes(schema):
        module, name = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(name, str):
            raise UntrustedModelError(
                f"the model file has a malformed node (module {module!r}, class {name!r}); "
                "it was not written by skops"
            )
        names.add(f"{module}.{name}")
        if node.get("__loader__") == _METHOD_LOADER:
            content = node.get("content")
            method = content.get("func") if isinstance(content, dict) else None
            names.add(f"{module}.{name}.{method}")
    return sorted(names)


def refused_types(data: bytes, allowed: Iterable[str]) -> list[str]:
    """Names in the file that are not on the allow-list (empty: every name is allowed)."""
    permitted = frozenset(allowed)
    return [name for name in model_types(data) if name not in permitted]


def _refusal(refused: list[str], doing: str) -> UntrustedModelError:
    # A model refused while saving was never stored: there is no version to inspect.
    review = "" if doing == _SAVING else "review it with `mlops model types --version N` and "
    return UntrustedModelError(
        f"{doing} refused: the model contains {len(refused)} type(s) outside "
        f"serialization.allowed_types: {', '.join(refused)}. Only listed classes and functions "
        "may be stored or loaded, so a model cannot carry code. If the type is meant to be in "
        f"the model, {review}add its full name to serialization.allowed_types in "
        "configs/base/platform.yaml (docs/PLATFORM_GUIDE.md)."
    )


_SAVING = "Saving the model"


class _CompactJson:
    """The ``json`` module as skops' writer sees it inside `compact_skops_schema`: the same
    functions, except that ``dumps`` writes without indentation."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def dumps(obj: Any, **options: Any) -> str:
        options.pop("indent", None)
        options.setdefault("separators", (",", ":"))
        return json.dumps(obj, **options)


_SKOPS_WRITER = threading.RLock()


@contextlib.contextmanager
def compact_skops_schema() -> Iterator[None]:
    """skops writes a model's schema (``schema.json`` in the zip) with ``indent=2``, which makes
    Python's json fall back from its C encoder to the pure-Python one. For the readmission model
    (300 trees) a dump took 0.34 s against 0.21 s without indentation, the file was 5.0 MB
    against 2.3 MB, and a load (which parses that schema) 0.33 s against 0.25 s. Inside this
    context skops writes the same schema without the whitespace; skops reads either, so files
    written before load as they did. If skops no longer writes through its module's ``json``,
    it writes as it does.
    """
    try:
        from skops.io import _persist
    except ImportError:  # pragma: no cover - skops is a dependency
        yield
        return
    with _SKOPS_WRITER:
        if getattr(_persist, "json", None) is not json:
            yield  # inside another use of this context, or skops changed
            return
        _persist.json = _CompactJson()  # type: ignore[assignment]
        try:
            yield
        finally:
            _persist.json = json


def dumps_model(model: Any, allowed: Iterable[str]) -> bytes:
    """The skops bytes of ``model``; refuses a model naming any type outside ``allowed``."""
    import skops.io

    with compact_skops_schema():
        data = skops.io.dumps(model)
    refused = refused_types(data, allowed)
    if refused:
        raise _refusal(refused, _SAVING)
    return data


def loads_model(data: bytes, allowed: Iterable[str]) -> Any:
    """The model in ``data``; checks every name against ``allowed`` before skops builds anything.

    The same bytes under the same allow-list give an equal model, so a process that loads a file
    again (the steps of one local run, the champion of successive gates) gets a deep copy of the
    model it built before, keyed by the bytes' SHA-256: the checks ran on those exact bytes.
    """
    import skops.io

    permitted = frozenset(allowed)
    key = (hashlib.sha256(data).hexdigest(), permitted)
    built = _LOADED.get(key)
    if built is not None:
        _LOADED.move_to_end(key)
        return _remember_digest(copy.deepcopy(built), key[0])
    found = model_types(data)
    refused = [name for name in found if name not in permitted]
    if refused:
        raise _refusal(refused, "Loading the model")
    # skops audits the file again against exactly the names found (all allowed): a node our
    # reading of the schema missed would still be refused by skops' own audit.
    try:
        model = skops.io.loads(data, trusted=found)
    except (ImportError, AttributeError) as error:
        missing = [name for name in found if not _importable(name)]
        raise ModelCodeMissing(
            "Loading the model refused: it was stored with "
            + (", ".join(missing) if missing else "code")
            + f", which this code no longer has ({type(error).__name__}: {error}); a module, "
            "class or function it refers to was moved or renamed. Keep the old import path "
            "working (a module at the old path importing the name from its new place) until no "
            "stored version that may be scored or rolled back to needs it (docs/DEVELOPER_GUIDE.md, "
            "'Moving code a stored model refers to'), or retrain the version with this code."
        ) from error
    _LOADED[key] = copy.deepcopy(model)
    while len(_LOADED) > _LOADED_LIMIT:
        _LOADED.popitem(last=False)
    return _remember_digest(model, key[0])


def _importable(name: str) -> bool:
    """Whether the dotted ``name`` (module, then attributes) resolves under this code."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                found = getattr(found, attribute)
        except AttributeError:
            return False
        return True
    return False


GATE_MODEL_SHA256 = "model_sha256"  # in the gate decision: the file the gate scored


def judged_file_problem(judged: str | None, actual: str, action: str) -> str | None:
    """Why ``action`` may not use a model file whose SHA-256 is ``actual`` after the gate scored
    the file ``judged`` (pure); None when they are the same bytes."""
    if not judged:
        return (
            f"{action} refused: the gate decision does not name the model file it scored, so the "
            f"file {actual[:16]}… cannot be shown to be the one judged; run the pipeline again"
        )
    if judged != actual:
        return (
            f"{action} refused: the gate scored model file {judged[:16]}…, but the stored file is "
            f"now {actual[:16]}…: it was replaced after the gate judged it. Investigate who can "
            "write the artifact store, then run the pipeline again"
        )
    return None


def loaded_digest(model: Any) -> str | None:
    """SHA-256 of the file `model` was built from by `loads_model` in this process, else None.

    Lets the platform key work on a model by its content (the gate's holdout scores)."""
    entry = _DIGESTS.get(id(model))
    return entry[1] if entry is not None and entry[0]() is model else None


def _remember_digest(model: Any, digest: str) -> Any:
    key = id(model)

    def forget(reference: weakref.ref[Any]) -> None:
        entry = _DIGESTS.get(key)
        if entry is not None and entry[0] is reference:
            del _DIGESTS[key]

    try:
        reference = weakref.ref(model, forget)
    except TypeError:  # an object without weak references is simply not remembered
        return model
    _DIGESTS[key] = (reference, digest)
    return model


# Models built in this process, by (SHA-256 of the file, allow-list); copies are handed out.
_LOADED: OrderedDict[tuple[str, frozenset[str]], Any] = OrderedDict()
_LOADED_LIMIT = 8
# id(model handed out) -> (weak reference to it, SHA-256 of its file).
_DIGESTS: dict[int, tuple[weakref.ref[Any], str]] = {}


@dataclass(frozen=True)
class TypeReview:
    """A model file's names against an allow-list, for a platform engineer to review."""

    types: tuple[str, ...]  # every name the file holds
    not_allowed: tuple[str, ...]  # would be refused: add on purpose, or change the model
    allowed_unused: tuple[str, ...]  # listed but not in this file (other models may need them)
    allow_list_length: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "types": list(self.types),
            "not_allowed": list(self.not_allowed),
            "allowed_unused": list(self.allowed_unused),
            "allow_list_length": self.allow_list_length,
        }


def review_types(data: bytes, allowed: Iterable[str]) -> TypeReview:
    """Compare a file's names with the allow-list without building anything from the file."""
    permitted = frozenset(allowed)
    found = model_types(data)
    return TypeReview(
        types=tuple(found),
        not_allowed=tuple(name for name in found if name not in permitted),
        allowed_unused=tuple(sorted(permitted - set(found))),
        allow_list_length=len(permitted),
    )


# --- pinned digest and signature ---------------------------------------------------------------


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelFilePin:
    """The signed statement "artifact A of model M version V (ZenML id I) is the file with this
    SHA-256". Pins signed before the id was part of the statement have none (``""``)."""

    model_name: str
    model_version: str
    artifact_id: str
    sha256: str
    key_id: str
    signature: str
    # The ZenML version's id: a version given a deleted one's number never carries its pin.
    model_version_id: str = ""

    def statement(self) -> bytes:
        return _statement(
            self.model_name, self.model_version, self.artifact_id, self.sha256,
            self.model_version_id,
        )  # fmt: skip

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, value: Any, where: str) -> ModelFilePin:
        fields = [f for f in cls.__dataclass_fields__ if f != "model_version_id"]
        if not isinstance(value, dict) or not all(isinstance(value.get(f), str) for f in fields):
            raise ModelFileIntegrityError(
                f"{where} has no complete signed model-file pin (fields {', '.join(fields)}); "
                "the model was registered before model files were signed, or the record was "
                "edited. Train and register the model again."
            )
        version_id = value.get("model_version_id", "")
        if not isinstance(version_id, str):
            raise ModelFileIntegrityError(f"{where} has a model-file pin with an unreadable id")
        return cls(**{name: value[name] for name in fields}, model_version_id=version_id)


def _statement(
    model_name: str, model_version: str, artifact_id: str, sha256: str, model_version_id: str = ""
) -> bytes:
    body = {
        "purpose": PIN_PURPOSE,
        "model_name": model_name,
        "model_version": model_version,
        "artifact_id": artifact_id,
        "sha256": sha256,
    }
    if model_version_id:  # pins signed before it was part of the statement verify as they were
        body["model_version_id"] = model_version_id
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_model_file(
    env: str,
    model_name: str,
    model_version: str,
    artifact_id: str,
    data: bytes,
    model_version_id: str = "",
) -> ModelFilePin:
    """Pin and sign the stored file with ``env``'s key (fails closed when there is no key)."""
    from mlops_platform.trust.keys import signer_for

    digest = file_digest(data)
    statement = _statement(model_name, model_version, artifact_id, digest, model_version_id)
    signature = signer_for(env).sign(statement)
    return ModelFilePin(
        model_name, model_version, artifact_id, digest, signature.key_id, signature.value,
        model_version_id,
    )  # fmt: skip


def check_model_file(
    data: bytes,
    pin: ModelFilePin,
    verifier: Verifier,
    *,
    model_name: str,
    model_version: str,
    artifact_id: str,
    model_version_id: str = "",
) -> None:
    """Raise ``ModelFileIntegrityError`` unless ``data`` is the file the pin signs for this model
    (and, given ``model_version_id``, for this very ZenML version: a pin that names another id
    belongs to a deleted version that had the same number)."""
    subject = f"model {model_name} version {model_version}"
    expected = (model_name, model_version, artifact_id)
    if (pin.model_name, pin.model_version, pin.artifact_id) != expected:
        raise ModelFileIntegrityError(
            f"the pin recorded for {subject} (artifact {artifact_id}) signs model "
            f"{pin.model_name} version {pin.model_version} artifact {pin.artifact_id} instead: "
            "a record of another model was copied here. Refusing to load; investigate who "
            "changed the model version's metadata."
        )
    if model_version_id and pin.model_version_id and pin.model_version_id != model_version_id:
        raise ModelFileIntegrityError(
            f"the pin recorded for {subject} signs ZenML version {pin.model_version_id}, not "
            f"this one ({model_version_id}): the pin of a deleted version that had the same "
            "number was copied here. Refusing to load; investigate who changed the model "
            "version's metadata."
        )
    actual = file_digest(data)
    if actual != pin.sha256:
        raise ModelFileIntegrityError(
            f"the stored file of {subject} (artifact {artifact_id}) has SHA-256 {actual}, but "
            f"{pin.sha256} was signed at registration: the file in the artifact store was "
            "replaced or altered. Refusing to load it; restore the artifact store from backup "
            "or train and register a new version, and find out who wrote to the store."
        )
    try:
        verifier.verify(pin.statement(), Signature(pin.key_id, pin.signature))
    except SigningError as error:
        raise ModelFileIntegrityError(
            f"the model-file signature of {subject} does not verify: {error}. Refusing to load."
        ) from error


def read_artifact_file(artifact: ArtifactVersionResponse) -> bytes:
    """The stored ``model.skops`` of a model artifact, read once."""
    from zenml.io import fileio

    path = os.path.join(artifact.uri, MODEL_FILENAME)
    try:
        with fileio.open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ModelFileIntegrityError(
            f"cannot read the model file {path} of artifact {artifact.id}: {error}"
        ) from error


def registered_pin(version: ModelVersionResponse) -> ModelFilePin:
    """The signed pin in the version's registration record (fails closed when absent)."""
    registration = version.run_metadata.get("registration")
    found = registration.get(MODEL_FILE_KEY) if isinstance(registration, dict) else None
    where = f"the registration record of model {version.model.name} version {version.name}"
    return ModelFilePin.from_metadata(found, where)


def integrity_alert(env: str, message: str) -> None:
    """Send an integrity refusal to `env`'s alert channel (by log when the channel is unknown)."""
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.runtime.alerting import send_alert

    try:
        webhook_env = load_platform_settings(env).alerting.webhook_env
    except Exception as error:  # the refusal stands; only the channel lookup failed
        logger.warning("Alerting settings of %s unreadable (%s); alerting by log only.", env, error)
        webhook_env = None
    send_alert(message, webhook_env)


@dataclass(frozen=True)
class VerifiedModelFile:
    """A registered model's file bytes, checked against its signed pin."""

    artifact: ArtifactVersionResponse
    pin: ModelFilePin
    data: bytes
    seconds: float  # time spent reading, hashing and verifying


def verify_registered_model(
    version: ModelVersionResponse, env: str, artifact_name: str | None = None
) -> VerifiedModelFile:
    """Read a registered version's model file and check it against its signed pin.

    ``env`` is the environment whose trusted keys verify the signature (the stage's environment
    for stage holders). On any failure an alert is sent and ``ModelFileIntegrityError`` raised.
    """
    from zenml.client import Client

    from mlops_platform.trust.keys import verifier_for

    started = time.perf_counter()
    try:
        pin = registered_pin(version)
        # The signed pin names the file, never ZenML's links: any run whose Model names this
        # version links its outputs to it, and an output named like the model must not stop
        # the version from loading (`mlops check` reports such a link: `pinned_link_problem`).
        artifact = Client().get_artifact_version(pin.artifact_id)
        if artifact_name is not None and artifact.artifact.name != artifact_name:
            raise ModelFileIntegrityError(
                f"model {version.model.name} version {version.name}'s signed artifact "
                f"{pin.artifact_id} is {artifact.artifact.name!r}, not {artifact_name!r}"
            )
        _check_materializer(artifact)
        data = read_artifact_file(artifact)
        check_model_file(
            data,
            pin,
            verifier_for(env),
            model_name=version.model.name,
            model_version=version.name,
            artifact_id=str(artifact.id),
            model_version_id=str(version.id),
        )
    except (ModelFileIntegrityError, SigningError, KeyError) as error:
        message = f"Model file check failed in {env}: {error}"
        integrity_alert(env, message)
        if isinstance(error, ModelFileIntegrityError):
            raise
        raise ModelFileIntegrityError(message) from error
    return VerifiedModelFile(artifact, pin, data, time.perf_counter() - started)


def reviewed_model_file(
    version: ModelVersionResponse, artifact_name: str, env: str
) -> tuple[ArtifactVersionResponse, bytes, bool]:
    """The model file of ``version`` to review: (artifact, bytes, whether they are the signed file).

    A registered version's is the file its signed pin names, checked against the pin (a replaced
    file refuses, `verify_registered_model`), whatever ZenML links; a version never registered
    (rejected, or refused before registration) has no pin, so its newest link is read."""
    registration = version.run_metadata.get("registration")
    if isinstance(registration, dict) and registration.get(MODEL_FILE_KEY) is not None:
        verified = verify_registered_model(version, env, artifact_name)
        return verified.artifact, verified.data, True
    artifact = version.get_model_artifact(artifact_name)
    if artifact is None:
        raise ModelFileIntegrityError(
            f"model {version.model.name} version {version.name} has no {artifact_name!r} "
            "artifact and no signed pin"
        )
    return artifact, read_artifact_file(artifact), False


def pinned_link_problem(version: ModelVersionResponse) -> str | None:
    """Why ZenML's link of a registered version's model artifact is not its signed file (None:
    it is, or the version has no pin). Loading follows the pin, so such a link moves nothing;
    it shows that another file was linked to the version (by a run whose Model named the
    version, or a ZenML client call). Only the newest link of the pinned artifact's name is
    looked at."""
    from zenml.client import Client

    try:
        pin = registered_pin(version)
        name = Client().get_artifact_version(pin.artifact_id).artifact.name
    except (ModelFileIntegrityError, SigningError, KeyError):
        return None  # no readable pin: the load itself refuses and says why
    linked = version.get_model_artifact(name)
    if linked is None or str(linked.id) == pin.artifact_id:
        return None
    return (
        f"ZenML links artifact {linked.id} as its {name!r}, not the signed file "
        f"{pin.artifact_id} (linked by a run whose Model named this version, or a ZenML client); "
        "the version still loads its signed file. Find out which run did it"
        + (f" (run {linked.producer_pipeline_run_id})" if linked.producer_pipeline_run_id else "")
    )


def _check_materializer(artifact: ArtifactVersionResponse) -> None:
    from mlops_platform.materializers.skops_model import SkopsModelMaterializer

    expected = f"{SkopsModelMaterializer.__module__}.{SkopsModelMaterializer.__name__}"
    found = artifact.materializer.import_path
    if found != expected:
        raise ModelFileIntegrityError(
            f"artifact {artifact.id} is stored with {found}, not {expected}; only skops model "
            "files are loaded"
        )


def load_verified_model(version: ModelVersionResponse, artifact_name: str, env: str) -> Any:
    """The registered model of ``version``, loaded only after its file passed every check.

    One function for every load of a registered model (batch scoring, promotion gates, rollback,
    serving): digest and signature (``verify_registered_model``), then the exact-type allow-list
    of ``env`` on the same bytes.
    """
    return load_verified(version, artifact_name, env)[1]


def load_verified(
    version: ModelVersionResponse, artifact_name: str, env: str
) -> tuple[ArtifactVersionResponse, Any]:
    """`load_verified_model`, with the artifact its signed pin names: what the model was trained
    from is that artifact's run, never the one ZenML's newest link names."""
    from mlops_platform.infra.settings import allowed_model_types

    verified = verify_registered_model(version, env, artifact_name)
    try:
        return verified.artifact, loads_model(verified.data, allowed_model_types(env))
    except UntrustedModelError as error:
        integrity_alert(
            env, f"Model {version.model.name} version {version.name} refused in {env}: {error}"
        )
        raise
    except ModelCodeMissing as error:
        raise ModelCodeMissing(
            f"version {version.name} of {version.model.name}: {error}"
        ) from error


def model_file_status(version: ModelVersionResponse, env: str) -> dict[str, Any]:
    """Lineage's view of a version's model file: recorded digest, key id and check status."""
    registration = version.run_metadata.get("registration")
    raw = registration.get(MODEL_FILE_KEY) if isinstance(registration, dict) else None
    status: dict[str, Any] = {
        "sha256": raw.get("sha256") if isinstance(raw, dict) else None,
        "key_id": raw.get("key_id") if isinstance(raw, dict) else None,
        "verified_in": env,
    }
    try:
        verify_registered_model(version, env)
    except ModelFileIntegrityError as error:
        return {**status, "status": "refused", "problem": str(error)}
    return {**status, "status": "verified"}


def verify_pinned_uri(uri: str, data: bytes, env: str) -> None:
    """Materializer check: if the artifact stored at ``uri`` was registered, ``data`` must match.

    An artifact not yet registered (a model passed between the steps of its own training run)
    has no pin and only meets the type allow-list; a registered one must match its signed pin.
    """
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    from mlops_platform.trust.keys import verifier_for

    try:
        for artifact in depaginate(Client().list_artifact_versions, uri=uri):
            pinned = artifact.run_metadata.get(MODEL_FILE_KEY)
            if pinned is None:
                continue
            pin = ModelFilePin.from_metadata(pinned, f"the metadata of artifact {artifact.id}")
            check_model_file(
                data,
                pin,
                verifier_for(env),
                model_name=pin.model_name,
                model_version=pin.model_version,
                artifact_id=str(artifact.id),
            )
    except (ModelFileIntegrityError, SigningError) as error:
        message = f"Model file check failed in {env}: {error}"
        integrity_alert(env, message)
        if isinstance(error, ModelFileIntegrityError):
            raise
        raise ModelFileIntegrityError(message) from error

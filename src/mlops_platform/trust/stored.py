"""An artifact's stored files read once, checked, and loaded from those same bytes.

A check that hashes an artifact's files and a load that reads them again leave a window: whoever
can write the artifact store at that moment swaps the files, and the digest vouches for one set of
bytes while the consumer reads another. Here the files are read into memory once
(`read_stored`); the digest is taken of those bytes, and the artifact's materializer is handed a
read-only view of them in place of the artifact store (`load_stored`). What was checked is what is
loaded, and a materializer that tried to read anything else, or to write, fails.

The data type a materializer is asked for is not taken on trust either: ZenML records it as an
import path in its database, and loading it would import whatever module a database writer named.
Only the types the materializer declares it reads are used, or a subclass of one whose module is
already imported (`data_type_of`).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse

_SINGLE_FILE: Final = ""  # the key of an artifact stored as one file, not a folder


class StoredFilesError(RuntimeError):
    """An artifact's files cannot be read or loaded as they were checked."""


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


@dataclass(frozen=True)
class StoredFiles:
    """The files of the artifact at `uri`, by path relative to it ("" for a single file), as read
    once from the store, and `digest_files` of exactly those bytes."""

    uri: str
    files: Mapping[str, bytes]
    digest: str
    # The materializer something trustworthy names for these files (the run's signature, or this
    # process when it wrote them); "" when nothing does.
    materializer: str = ""

    @classmethod
    def of(cls, uri: str, files: Mapping[str, bytes]) -> StoredFiles:
        return cls(uri=uri, files=dict(files), digest=digest_files(files))


class ReadOnlyFiles:
    """Stands in for the artifact store while a materializer loads: it serves the bytes of one
    `StoredFiles` and nothing else (no other path, no write)."""

    def __init__(self, stored: StoredFiles) -> None:
        self._stored = stored
        self._root = stored.uri.rstrip("/")

    def _key(self, path: Any) -> str:
        text = path.decode() if isinstance(path, bytes) else str(path)
        if text.rstrip("/") == self._root:
            return _SINGLE_FILE
        prefix = self._root + "/"
        if not text.startswith(prefix):
            raise StoredFilesError(
                f"a materializer asked for {text}, outside the artifact it is loading "
                f"({self._root}); it reads only the files that were checked"
            )
        key = posixpath.normpath(text[len(prefix) :].lstrip("/"))
        return _SINGLE_FILE if key == "." else key

    def _folders(self) -> set[str]:
        found = {_SINGLE_FILE} if _SINGLE_FILE not in self._stored.files else set()
        for name in self._stored.files:
            parent = posixpath.dirname(name)
            while parent:
                found.add(parent)
                parent = posixpath.dirname(parent)
        return found

    def open(self, path: Any, mode: str = "r") -> IO[Any]:
        if set(mode) - {"r", "b", "t"}:
            raise StoredFilesError(
                f"a materializer tried to open {path} with mode {mode!r} while loading; checked "
                "files are read-only"
            )
        key = self._key(path)
        if key not in self._stored.files:
            raise FileNotFoundError(f"{path} is not among the checked files of {self._root}")
        data = io.BytesIO(self._stored.files[key])
        return data if "b" in mode else io.TextIOWrapper(data, encoding="utf-8")

    def exists(self, path: Any) -> bool:
        key = self._key(path)
        return key in self._stored.files or key in self._folders()

    def isdir(self, path: Any) -> bool:
        return self._key(path) in self._folders()

    def listdir(self, path: Any) -> list[str]:
        key = self._key(path)
        if key not in self._folders():
            raise FileNotFoundError(f"{path} is not a folder of the checked files of {self._root}")
        names = {
            name[len(key) + 1 :].split("/", 1)[0] if key else name.split("/", 1)[0]
            for name in self._stored.files
            if (name.startswith(key + "/") if key else name)
        }
        return sorted(names)


def stored_paths(uri: str) -> Iterator[tuple[str, str]]:
    """(path relative to `uri`, full path) of every file of the artifact at `uri` ("" for an
    artifact stored as one file)."""
    from zenml.io import fileio

    if not fileio.isdir(uri):
        yield _SINGLE_FILE, uri
        return
    for folder, _, names in fileio.walk(uri):
        base = folder.decode() if isinstance(folder, bytes) else str(folder)
        for name in names:
            name = name.decode() if isinstance(name, bytes) else str(name)
            path = posixpath.join(base, name)
            yield posixpath.relpath(path, uri), path


def read_stored(uri: str) -> StoredFiles:
    """Every file of the artifact at `uri`, read from the artifact store once."""
    from zenml.io import fileio

    def read(path: str) -> bytes:
        with fileio.open(path, "rb") as handle:
            return bytes(handle.read())

    return StoredFiles.of(uri, {relative: read(path) for relative, path in stored_paths(uri)})


def data_type_of(recorded: str, materializer: type[Any]) -> type[Any]:
    """The type to load an artifact recorded with data type `recorded` (an import path) as.

    One of the types `materializer` declares it reads, matched by import path; or a subclass of
    one whose module is already imported. A materializer whose files name their own types
    (`LOADS_TYPES_FROM_FILE`, the platform's skops materializer, which checks them against the
    allow-list) is given its declared type whatever was recorded, so that a model class not yet
    imported still loads. A module is never imported because ZenML's record names it."""
    declared = tuple(getattr(materializer, "ASSOCIATED_TYPES", ()))
    for kind in declared:
        if recorded == f"{kind.__module__}.{kind.__qualname__}":
            return kind
    if declared and getattr(materializer, "LOADS_TYPES_FROM_FILE", False):
        return declared[0]
    module_name, _, attribute = recorded.rpartition(".")
    module = sys.modules.get(module_name)
    found = getattr(module, attribute, None) if module is not None else None
    if isinstance(found, type) and declared and issubclass(found, declared):
        return found
    raise StoredFilesError(
        f"the recorded data type {recorded or '(none)'} is not one that "
        f"{materializer.__qualname__} reads ({', '.join(k.__qualname__ for k in declared)})"
    )


# Modules a materializer is imported from when ZenML's record names one not imported yet.
MATERIALIZER_MODULES: Final = ("zenml.", "mlops_platform.materializers.")
# Materializers whose load runs no code from the files: Parquet, JSON primitives, text, bytes, or
# a skops file under the type allow-list (and ZenML's container materializer in its JSON form
# only, `_json_container`). An artifact whose materializer nobody vouches for (no signature, not
# recorded as it was written) is loaded only with one of these; a pickle-based one (cloudpickle)
# would run whatever the files hold.
SAFE_MATERIALIZERS: Final = frozenset(
    {
        "zenml.integrations.pandas.materializers.pandas_materializer.PandasMaterializer",
        "zenml.materializers.built_in_materializer.BuiltInMaterializer",
        "zenml.materializers.built_in_materializer.BytesMaterializer",
        "zenml.materializers.structured_string_materializer.StructuredStringMaterializer",
        "mlops_platform.materializers.skops_model.SkopsModelMaterializer",
    }
)
CONTAINER_MATERIALIZER: Final = (
    "zenml.materializers.built_in_materializer.BuiltInContainerMaterializer"
)


def materializer_of(recorded: str, *, vouched: bool = False) -> type[Any]:
    """The materializer class at import path `recorded`: imported only from ZenML's or the
    platform's modules (or already imported), and only if it is a materializer. Unless `vouched`
    (the run signed it, or this process recorded it as the artifact was written), only one of
    `SAFE_MATERIALIZERS`."""
    from zenml.materializers.base_materializer import BaseMaterializer
    from zenml.utils import source_utils

    if not vouched and recorded == CONTAINER_MATERIALIZER:
        # Its files may name a materializer per element (metadata.json): only its JSON form.
        return _json_container()
    if not vouched and recorded not in SAFE_MATERIALIZERS:
        raise StoredFilesError(
            f"the recorded materializer {recorded or '(none)'} is not one that loads without "
            "running code from the files, and nothing vouches for the record (no signature, not "
            "seen when the artifact was written)"
        )
    module_name = recorded.rpartition(".")[0]
    if module_name not in sys.modules and not module_name.startswith(MATERIALIZER_MODULES):
        raise StoredFilesError(
            f"the recorded materializer {recorded or '(none)'} is in a module that is neither "
            "ZenML's nor the platform's, and is not loaded"
        )
    try:
        found = source_utils.load(recorded)
    except (ImportError, AttributeError, ValueError) as error:
        raise StoredFilesError(f"the recorded materializer {recorded} cannot be found") from error
    if not (isinstance(found, type) and issubclass(found, BaseMaterializer)):
        raise StoredFilesError(f"the recorded materializer {recorded} is not a materializer")
    return found


_JSON_CONTAINER: list[type[Any]] = []


def _json_container() -> type[Any]:
    """`JsonContainerMaterializer`, built once on first use (it subclasses ZenML's)."""
    if _JSON_CONTAINER:
        return _JSON_CONTAINER[0]
    from zenml.materializers.built_in_materializer import BuiltInContainerMaterializer

    class JsonContainerMaterializer(BuiltInContainerMaterializer):  # type: ignore[misc]
        """ZenML's container materializer, for its JSON form only (`data.json`): the other form
        names a materializer per element in its own files, which could be a pickle-based one."""

        def load(self, data_type: type[Any]) -> Any:
            if not self.artifact_store.exists(self.data_path):
                raise StoredFilesError(
                    f"the container at {self.uri} is not stored as JSON, and its other form names "
                    "the materializers of its elements in its own files, which nothing vouches for"
                )
            return super().load(data_type)

        def save(self, data: Any) -> None:
            raise StoredFilesError("JsonContainerMaterializer only loads")

    _JSON_CONTAINER.append(JsonContainerMaterializer)
    return JsonContainerMaterializer


def load_stored(
    artifact: ArtifactVersionResponse, stored: StoredFiles, data_type: type[Any] | None = None
) -> Any:
    """Load `artifact` with its materializer from the checked bytes in `stored`, never from the
    artifact store (which may have changed since they were read). `data_type`: the type the
    caller's code asks for (a step's annotation), else the recorded one (`data_type_of`). The
    materializer must be the one `stored.materializer` vouches for, or safe (`materializer_of`)."""
    if stored.uri != str(artifact.uri):
        raise StoredFilesError(
            f"the checked files are those of {stored.uri}, not of artifact {artifact.id} "
            f"({artifact.uri})"
        )
    recorded = str(artifact.materializer.import_path)
    if stored.materializer and stored.materializer != recorded:
        raise StoredFilesError(
            f"it is recorded with materializer {recorded}, but was written with "
            f"{stored.materializer}: the record was changed"
        )
    materializer_class = materializer_of(recorded, vouched=bool(stored.materializer))
    if data_type is None:
        data_type = data_type_of(str(artifact.data_type.import_path), materializer_class)
    materializer = materializer_class(str(artifact.uri), ReadOnlyFiles(stored))
    try:
        return materializer.load(data_type)
    except (StoredFilesError, FileNotFoundError) as error:
        raise StoredFilesError(f"its checked files do not load as recorded: {error}") from error
    except Exception as error:  # a materializer's own failure on files that were checked
        raise StoredFilesError(
            f"its checked files do not load as {getattr(data_type, '__qualname__', data_type)} "
            f"with {materializer_class.__qualname__}: {type(error).__name__}: {error}"
        ) from error


@dataclass(frozen=True)
class CheckedArtifact:
    """An artifact version whose stored files were read once and found as signed (for `env`);
    `load` reads those same bytes, never the artifact store again."""

    artifact: ArtifactVersionResponse
    stored: StoredFiles
    env: str

    @property
    def id(self) -> Any:
        return self.artifact.id

    @property
    def name(self) -> str:
        return str(self.artifact.name)

    @property
    def version(self) -> str:
        return str(self.artifact.version)

    @property
    def uri(self) -> str:
        return str(self.artifact.uri)

    @property
    def producer_pipeline_run_id(self) -> Any:
        return self.artifact.producer_pipeline_run_id

    def load(self) -> Any:
        """The artifact's value, loaded from the checked bytes; a refusal alerts `env`."""
        return load_or_refuse(self.artifact, self.stored, self.env)


def load_or_refuse(
    artifact: ArtifactVersionResponse,
    stored: StoredFiles,
    env: str,
    data_type: type[Any] | None = None,
) -> Any:
    """`load_stored`, a refusal alerting `env`'s channel with what failed and what to do."""
    from mlops_platform.trust.artifacts import integrity_alert

    try:
        return load_stored(artifact, stored, data_type)
    except StoredFilesError as error:
        message = (
            f"Refused to load artifact {artifact.name} version {artifact.version} "
            f"({artifact.id}) in {env}: {error}. Its files are what was checked, but ZenML's "
            "record of how to read them does not fit them; find out who wrote to ZenML's "
            "database, and restore it from backup."
        )
        integrity_alert(env, message)
        raise StoredFilesError(message) from error


_ZENML_LOAD: Final = "_load_artifact_from_uri"


def guard_artifact_loads() -> bool:
    """Make ZenML's own artifact loading (`artifact.load()`) in this process refuse what a
    database record alone could make it run: a materializer outside `SAFE_MATERIALIZERS` (a
    pickle-based one runs code from the files), and a data type that would import a module
    (`data_type_of`). Loads the platform checks go through `load_stored` instead. False if already
    on, or ZenML's function was not found (then nothing changes)."""
    from zenml.artifacts import utils as artifact_utils

    original = getattr(artifact_utils, _ZENML_LOAD, None)
    if original is None or getattr(original, "_mlops_guarded", False):
        return False

    def loading(
        materializer: Any, data_type: Any, uri: str, artifact_store: Any = None, **kwargs: Any
    ) -> Any:
        recorded = materializer if isinstance(materializer, str) else materializer.import_path
        found = materializer_of(str(recorded))
        kind_path = data_type if isinstance(data_type, str) else data_type.import_path
        kind = data_type_of(str(kind_path), found)
        if found is _json_container():  # not ZenML's class: ZenML would load its own
            return found(uri, artifact_store).load(kind)
        kind_source = f"{kind.__module__}.{kind.__qualname__}"
        return original(materializer, kind_source, uri, artifact_store, **kwargs)

    loading._mlops_guarded = True  # type: ignore[attr-defined]
    loading.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(artifact_utils, _ZENML_LOAD, loading)
    return True

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
from collections.abc import Mapping
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
        return posixpath.normpath(text[len(prefix) :])

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


def read_stored(uri: str) -> StoredFiles:
    """Every file of the artifact at `uri`, read from the artifact store once."""
    from zenml.io import fileio

    def read(path: str) -> bytes:
        with fileio.open(path, "rb") as handle:
            return bytes(handle.read())

    if not fileio.isdir(uri):
        return StoredFiles.of(uri, {_SINGLE_FILE: read(uri)})
    files: dict[str, bytes] = {}
    for folder, _, names in fileio.walk(uri):
        base = folder.decode() if isinstance(folder, bytes) else str(folder)
        for name in names:
            name = name.decode() if isinstance(name, bytes) else str(name)
            path = posixpath.join(base, name)
            files[posixpath.relpath(path, uri)] = read(path)
    return StoredFiles.of(uri, files)


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


def materializer_of(recorded: str) -> type[Any]:
    """The materializer class at import path `recorded`: imported only from ZenML's or the
    platform's modules (or already imported), and only if it is a materializer."""
    from zenml.materializers.base_materializer import BaseMaterializer
    from zenml.utils import source_utils

    module_name = recorded.rpartition(".")[0]
    if module_name not in sys.modules and not module_name.startswith(MATERIALIZER_MODULES):
        raise StoredFilesError(
            f"the recorded materializer {recorded or '(none)'} is in a module that is neither "
            "ZenML's nor the platform's, and is not loaded"
        )
    found = source_utils.load(recorded)
    if not (isinstance(found, type) and issubclass(found, BaseMaterializer)):
        raise StoredFilesError(f"the recorded materializer {recorded} is not a materializer")
    return found


def load_stored(artifact: ArtifactVersionResponse, stored: StoredFiles) -> Any:
    """Load `artifact` with its materializer from the checked bytes in `stored`, never from the
    artifact store (which may have changed since they were read)."""
    if stored.uri != str(artifact.uri):
        raise StoredFilesError(
            f"the checked files are those of {stored.uri}, not of artifact {artifact.id} "
            f"({artifact.uri})"
        )
    materializer_class = materializer_of(str(artifact.materializer.import_path))
    data_type = data_type_of(str(artifact.data_type.import_path), materializer_class)
    materializer = materializer_class(str(artifact.uri), ReadOnlyFiles(stored))
    return materializer.load(data_type)


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
        from mlops_platform.trust.artifacts import integrity_alert

        try:
            return load_stored(self.artifact, self.stored)
        except StoredFilesError as error:
            message = (
                f"Refused to load artifact {self.name} version {self.version} ({self.id}) in "
                f"{self.env}: {error}. Its files were checked, but ZenML's record of how to read "
                "them was changed; find out who wrote to ZenML's database and restore it."
            )
            integrity_alert(self.env, message)
            raise StoredFilesError(message) from error

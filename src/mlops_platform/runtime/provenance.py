"""Which code produced a run: git commit, dirty flag and branch, recorded on every run and model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_platform.workspace import PROJECT_ROOT, state_dir

UNKNOWN = "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version(root: Path = PROJECT_ROOT) -> dict[str, str | bool]:
    """Git commit of the checkout; CI may pin it with GITHUB_SHA when the checkout is shallow."""
    sha = _git(["rev-parse", "HEAD"], root) or os.environ.get("GITHUB_SHA") or UNKNOWN
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], root) or UNKNOWN
    return {"git_sha": sha, "git_dirty": bool(status), "git_branch": branch}


def source_tree_clean(root: Path = PROJECT_ROOT) -> bool:
    """True when git knows the checkout's code and configuration exactly: no change to a tracked
    file and no untracked file under src/ or configs/ (one could be imported or read)."""
    status = _git(["status", "--porcelain", "--untracked-files=all", "--", "src", "configs"], root)
    tracked = _git(["status", "--porcelain", "--untracked-files=no"], root)
    head = _git(["rev-parse", "HEAD"], root)
    return bool(head) and status == "" and tracked == ""


def _data_path(parameters: Mapping[str, Any]) -> str | None:
    data = parameters.get("data")
    path = data.get("path") if isinstance(data, Mapping) else getattr(data, "path", None)
    return str(path) if path else None


@dataclass(frozen=True)
class DataSnapshot:
    """The run's parameters pointing at the platform's copy of the data file, and its hash."""

    parameters: dict[str, Any]
    sha256: str  # "" when the run reads no local file
    origin: str | None  # the path the requester gave, for people; the run never reads it

    @property
    def path(self) -> str:
        """The hashed copy the run reads ("" when the run reads no local file)."""
        if not self.sha256:
            return ""
        data = self.parameters["data"]
        return str(data["path"] if isinstance(data, Mapping) else data.path)


def snapshot_data_file(parameters: Mapping[str, Any], into: Path) -> DataSnapshot:
    """Copy the run's data file into `into/<sha256>/` while hashing it, and point the run there.

    The platform hashes the bytes it writes, so the file the loader reads is the one that was
    hashed: replacing or editing the requester's file after the launch changes nothing in the
    run. The copy is content-addressed (the same bytes give the same path, which ZenML's cache
    key includes) and read-only; a leftover copy under the same name is replaced, never trusted.
    """
    path = _data_path(parameters)
    if not path or not Path(path).is_file():
        return DataSnapshot(dict(parameters), "", path)
    source = Path(path).expanduser()
    into.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    descriptor, partial = tempfile.mkstemp(dir=into, prefix=".partial-")
    try:
        with source.open("rb") as reader, os.fdopen(descriptor, "wb") as writer:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        sha256 = digest.hexdigest()
        folder = into / sha256
        folder.mkdir(exist_ok=True)
        os.chmod(partial, 0o444)
        target = folder / source.name
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    data = parameters["data"]
    moved = (
        {**data, "path": str(target)}
        if isinstance(data, Mapping)
        else data.model_copy(update={"path": str(target)})
    )
    return DataSnapshot({**parameters, "data": moved}, sha256, str(source.resolve()))


class SnapshotError(RuntimeError):
    """The run's pinned data file is missing, changed, or cannot be read as CSV."""


_SNAPSHOT_COLUMNS: dict[tuple[str, tuple[str, ...] | None, str | None], Any] = {}
_SNAPSHOT_CHUNK_ROWS = 1 << 17


def snapshot_copies(sha256: str) -> list[Path]:
    """The platform's copies of a run's data file with this SHA-256 (`snapshot_data_file`) in
    this checkout's state: one, or none where it was never copied here."""
    folder = state_dir() / "inputs" / sha256
    return [p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")]


def read_snapshot_columns(
    sha256: str, path: str, columns: Sequence[str] | None, zip_member: str | None = None
) -> Any:
    """``columns`` (as text; None: every column) of the run's data file, read by the platform
    from its hashed copy
    (`snapshot_data_file`) with the platform's own reader (`batch.reader.BatchInput`: a CSV, a
    gzip'd CSV or a zip holding ``zip_member``), refused unless the bytes read hash to ``sha256``.
    Remembered per process (a promotion judges the same file)."""
    import pyarrow as pa

    from mlops_platform.batch.reader import BatchInput, BatchInputError

    key = (sha256, tuple(columns) if columns is not None else None, zip_member)
    if key in _SNAPSHOT_COLUMNS:
        return _SNAPSHOT_COLUMNS[key]
    found = [Path(path)] if path and Path(path).is_file() else snapshot_copies(sha256)
    if len(found) != 1:
        raise SnapshotError(
            f"the run's data file (SHA-256 {sha256[:16]}…) is not at "
            f"{path or state_dir() / 'inputs' / sha256}: the platform copies it there when the "
            "run starts; run the command again"
        )
    try:
        with BatchInput(
            found[0], _SNAPSHOT_CHUNK_ROWS, zip_csv=True, zip_member=zip_member, columns=columns
        ) as source:
            tables = [
                chunk.table.select(list(columns)) if columns is not None else chunk.table
                for chunk in source.chunks()
            ]
            digest = source.sha256
    except BatchInputError as error:
        raise SnapshotError(
            f"the run's data file cannot be read for the holdout's rows (holdout.rows in "
            f"platform.yaml names the columns): {error}"
        ) from error
    if digest != sha256:
        raise SnapshotError(
            f"the run's copy of its data file {found[0]} no longer has SHA-256 {sha256[:16]}…: "
            "it changed after the run started; run the command again and find out who changed it"
        )
    frame = pa.concat_tables(tables).to_pandas()
    if len(_SNAPSHOT_COLUMNS) >= 4:
        _SNAPSHOT_COLUMNS.clear()
    _SNAPSHOT_COLUMNS[key] = frame
    return frame

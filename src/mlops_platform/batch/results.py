"""Versioned result directories: written under a hidden temporary name, published by one rename.

A run writes everything into `<output>/.incomplete-<run id>/` and, once the manifest is written
last, renames it to `<output>/<run id>/` (atomic on one filesystem). A reader trusts only a
directory whose name does not start with a dot and that holds a manifest, so a crash or a kill
leaves at most an `.incomplete-...` directory that nothing mistakes for a result. A result is
never overwritten: a run id that was already published is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Final

MANIFEST_FILE: Final = "manifest.json"
PREDICTIONS_FILE: Final = "predictions.parquet"
QUARANTINE_FILE: Final = "quarantine.parquet"
DRIFT_REPORT_FILE: Final = "drift_report.html"
INCOMPLETE_PREFIX: Final = ".incomplete-"
MANIFEST_FORMAT: Final = 1
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ResultLocationError(ValueError):
    """The output location cannot take a new result (not a directory, not writable, or taken)."""


class ResultNotFoundError(LookupError):
    """No complete result where one was expected."""


class ResultManifestError(ValueError):
    """A folder that looks like a published result holds a manifest that is no result's: not
    JSON, or without the fields every reader needs (exit 3). Readers stop rather than skip it:
    a real result whose manifest was damaged would otherwise drop out of lineage and of the
    outcome verdict unseen."""


class ResultDirectory:
    """The staging directory of one run and its publication."""

    def __init__(self, output_dir: Path, run_id: str) -> None:
        if not _RUN_ID.match(run_id):
            raise ResultLocationError(
                f"Run id {run_id!r} cannot name a result directory; use letters, digits, '.', "
                "'_' and '-' (not starting with a dot)."
            )
        self.output_dir = Path(output_dir)
        self.final = self.output_dir / run_id
        self.staging = self.output_dir / f"{INCOMPLETE_PREFIX}{run_id}"
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ResultLocationError(
                f"Output {self.output_dir} is a file; --output must name a directory."
            )
        if self.final.exists():
            raise ResultLocationError(
                f"Result {self.final} already exists; results are never overwritten."
            )
        self._created_output = not self.output_dir.exists()
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir()
        except OSError as error:
            raise ResultLocationError(
                f"Cannot create the result directory under {self.output_dir}: {error}. "
                "Choose a writable --output directory."
            ) from error

    def path(self, name: str) -> Path:
        """Where a file of the result is written before publication."""
        return self.staging / name

    def publish(self, manifest: dict[str, Any]) -> Path:
        """Write the manifest last, then rename the staging directory to the final name."""
        _write_json(self.staging / MANIFEST_FILE, manifest)
        if self.final.exists():
            raise ResultLocationError(
                f"Result {self.final} appeared while this run was writing; it is left as is."
            )
        os.rename(self.staging, self.final)
        _fsync_directory(self.output_dir)
        return self.final

    def discard(self) -> None:
        """Remove the staging directory, and the output directory if this run created it."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._created_output:
            with contextlib.suppress(OSError):
                self.output_dir.rmdir()  # only if empty: another run may have published here


def is_result(directory: Path) -> bool:
    """A published result: a visible directory holding a manifest."""
    return (
        directory.is_dir()
        and not directory.name.startswith(".")
        and (directory / MANIFEST_FILE).is_file()
    )


def read_manifest(directory: Path) -> dict[str, Any]:
    if not is_result(directory):
        raise ResultNotFoundError(
            f"{directory} is not a complete batch result (a directory named by run id holding "
            f"{MANIFEST_FILE}); an '{INCOMPLETE_PREFIX}...' directory is a run that never finished."
        )
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        problem = f"not readable JSON: {error}"
    else:
        problem = manifest_problem(manifest)
        if problem is None:
            return manifest
    raise ResultManifestError(
        f"{directory} holds a {MANIFEST_FILE} that is not a batch result's manifest ({problem}). "
        f"Every visible folder with a {MANIFEST_FILE} in {directory.parent} is read as a result, "
        "so nothing was read: move that folder out of it, or restore the manifest from the run "
        "that wrote it (ZenML keeps it as the run's "
        f"'{_MANIFEST_ARTIFACT}' output; its folder name is the run id)."
    )


# What every reader of a manifest takes from it: field -> (type, its fields that must be there).
_REQUIRED: Final[dict[str, tuple[type, tuple[str, ...]]]] = {
    "inference_run_id": (str, ()),
    "model": (dict, ("name", "version")),
    "contract": (dict, ("id_columns", "score_column")),
    "timings": (dict, ("finished_at",)),
}
_MANIFEST_ARTIFACT: Final = "batch_manifest"  # BatchArtifact.MANIFEST (not imported: no pydantic)


def manifest_problem(manifest: Any) -> str | None:
    """What makes ``manifest`` (parsed JSON) no result manifest, or None."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    for name, (kind, fields) in _REQUIRED.items():
        value = manifest.get(name)
        if not isinstance(value, kind):
            return f"no {name!r} {'object' if kind is dict else 'text'}"
        missing = [f for f in fields if f not in value]
        if missing:
            return f"{name!r} lacks {', '.join(map(repr, missing))}"
    ids = manifest["contract"]["id_columns"]
    if not isinstance(ids, list) or not ids or not all(isinstance(c, str) for c in ids):
        return "'contract' names no id columns"
    return None


def list_results(output_dir: Path) -> list[Path]:
    """Published results under `output_dir`, ordered by the finishing time their manifests state.

    That order is only for display: a manifest on disk is editable, so a reader that decides by
    order (lineage's "newest") orders by the runs' verified `batch_inference` records instead.
    A folder whose manifest is no result's, or that holds predictions without a manifest (a
    result whose manifest was removed would drop out unseen), raises `ResultManifestError`."""
    if not Path(output_dir).is_dir():
        return []
    folders = [d for d in Path(output_dir).iterdir() if d.is_dir() and not d.name.startswith(".")]
    headless = sorted(d for d in folders if not is_result(d) and (d / PREDICTIONS_FILE).is_file())
    if headless:
        raise ResultManifestError(
            f"{headless[0]} holds {PREDICTIONS_FILE} but no {MANIFEST_FILE}"
            + (f" (and {len(headless) - 1} other folder(s) too)" if len(headless) > 1 else "")
            + f": a result whose manifest was removed would drop out unseen, so nothing in "
            f"{output_dir} was read. Restore the manifest from the run that wrote it (ZenML keeps "
            f"it as the run's '{_MANIFEST_ARTIFACT}' output; the folder name is the run id), or "
            "move the folder out."
        )
    found = {d: read_manifest(d) for d in folders if is_result(d)}
    return sorted(found, key=lambda d: (str(found[d]["timings"]["finished_at"]), d.name))


def check_results(path: Path) -> None:
    """Read the manifest of `path` when it is a result, else of every result under it, so that a
    folder that is no result stops a command before any pipeline starts (`ResultManifestError`);
    whoever reads the results later still verifies each against its run's record."""
    path = Path(path)
    if is_result(path):
        read_manifest(path)
    else:
        list_results(path)


def result_directories(path: Path) -> list[Path]:
    """`path` itself when it is a result, else the results under it, newest first."""
    path = Path(path)
    if is_result(path):
        return [path]
    results = list_results(path)
    if not results:
        raise ResultNotFoundError(
            f"No batch result at {path}: pass a result directory (<output>/<run id>) or the "
            "--output directory of `mlops infer`."
        )
    return results[::-1]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    """Make the rename durable: a crash right after publishing cannot undo it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

"""Whose code failed: an unexpected exception raised in the project's data-science code.

An exception no table maps (a `KeyError` from a typo in a feature function, say) is a bug; the
CLI says whose. When the innermost frame of its traceback that belongs to the project (the
platform's packages or the data-science package) is in the data-science package, the error is in
that code, not in mlops: the message names the exception and the file and line (and the callers
in the same package), so a data scientist fixes it there. Frames of libraries below it (pandas
raising the `KeyError` of `frame["missing"]`) do not change whose code it is.

Nothing here imports ZenML or pandas: the CLI reports errors before either is loaded.
"""

from __future__ import annotations

import importlib.util
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# The project's data-science package (a fork renaming it changes this line) and the platform's.
DATA_SCIENCE_PACKAGE = "readmission"
PLATFORM_PACKAGES = ("mlops_platform", "mlops_cli")
# How many frames of the data-science package a message names (the innermost and its callers).
NAMED_FRAMES = 3

_TEXT_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$')


@dataclass(frozen=True)
class CodeFrame:
    path: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{_shown(self.path)}:{self.line} in {self.function}"


@dataclass(frozen=True)
class DataScienceError:
    """An exception whose innermost project frame is in the data-science package."""

    error: str  # "KeyError: 'time_in_hospitl'"
    frames: tuple[CodeFrame, ...]  # innermost first, all in the data-science package

    def message(self) -> str:
        where, callers = self.frames[0], self.frames[1:]
        called = f" (called from {'; '.join(map(str, callers))})" if callers else ""
        folder = _package_dir(DATA_SCIENCE_PACKAGE)
        package = f"{_shown(str(folder))}/" if folder else DATA_SCIENCE_PACKAGE
        return (
            f"the project's data-science code ({package}) raised {self.error} at {where}"
            f"{called}: an error in that code, not in mlops. Fix it there and run again "
            "(--verbose shows the traceback)."
        )


@cache
def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return path


def _owner(path: str) -> str | None:
    """The project package ``path`` belongs to, or None (a library, the standard library).

    A path of another machine (a traceback recorded by a remote step) is matched by its
    package folder, never under site-packages."""
    for name in (DATA_SCIENCE_PACKAGE, *PLATFORM_PACKAGES):
        folder = _package_dir(name)
        if folder is not None and Path(path).resolve().is_relative_to(folder):
            return name
    if "site-packages" in path or "dist-packages" in path:
        return None
    parts = Path(path).parts
    return next(
        (p for p in reversed(parts[:-1]) if p in (DATA_SCIENCE_PACKAGE, *PLATFORM_PACKAGES)), None
    )


def frames_of(error: BaseException) -> list[CodeFrame]:
    """The frames of ``error``'s own traceback, outermost first."""
    return [
        CodeFrame(f.filename, f.lineno or 0, f.name)
        for f in traceback.extract_tb(error.__traceback__)
    ]


def frames_in_text(text: str) -> list[CodeFrame]:
    """The frames of a formatted traceback (ZenML's record of a step's exception), outermost
    first; of a chained traceback, only the last exception's."""
    frames: list[CodeFrame] = []
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            frames = []
        matched = _TEXT_FRAME.match(line)
        if matched:
            frames.append(CodeFrame(matched["file"], int(matched["line"]), matched["name"]))
    return frames


def data_science_frames(frames: Sequence[CodeFrame]) -> tuple[CodeFrame, ...] | None:
    """The innermost frames (innermost first, at most `NAMED_FRAMES`) when the innermost frame of
    the project's own is in the data-science package; None when it is the platform's or no
    frame is the project's."""
    owned = [(frame, _owner(frame.path)) for frame in frames]
    owned = [(frame, owner) for frame, owner in owned if owner is not None]
    if not owned or owned[-1][1] != DATA_SCIENCE_PACKAGE:
        return None
    chain: list[CodeFrame] = []
    for frame, owner in reversed(owned):
        if owner != DATA_SCIENCE_PACKAGE or len(chain) == NAMED_FRAMES:
            break
        chain.append(frame)
    return tuple(chain)


def _described(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def data_science_error(error: BaseException) -> DataScienceError | None:
    """``error`` as an error of the data-science code, or None. An error raised in a library
    (no project frame in its own traceback) is judged by the exception it was raised from."""
    seen: BaseException | None = error
    while seen is not None:
        frames = frames_of(seen)
        if any(_owner(f.path) for f in frames):
            chain = data_science_frames(frames)
            return DataScienceError(_described(seen), chain) if chain else None
        seen = seen.__cause__
    return None


def step_data_science_error(
    cause: BaseException | None, recorded_traceback: str, error_text: str
) -> DataScienceError | None:
    """A failed step's exception as an error of the data-science code, or None: judged by the
    exception ZenML re-raised in this process (``cause``), else by the traceback ZenML recorded
    (a step that ran elsewhere)."""
    if cause is not None:
        found = data_science_error(cause)
        if found is not None or any(_owner(f.path) for f in frames_of(cause)):
            return found
    chain = data_science_frames(frames_in_text(recorded_traceback))
    return DataScienceError(error_text, chain) if chain else None

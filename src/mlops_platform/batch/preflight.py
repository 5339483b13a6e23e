"""Checks of a command's input and output before any pipeline starts, so bad input costs seconds.

`check_input` opens the file the way batch scoring reads it (`BatchInput`: exists, not empty,
decodes as plain, gzip or Parquet, has a header, fields within the limit) and runs the team's own
reader and validator, named by import path as in `BatchContract`, on its first chunk. It catches
what is wrong with the whole file and with its first rows; rows further on are still checked by
the pipeline, which refuses them with the same messages. `check_output_dir` refuses results
aimed into the platform's own state or artifact store, and outputs that cannot be a directory.

Nothing here imports ZenML: the CLI calls it before ZenML is imported.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mlops_platform.batch.contract import (
    Shard,
    failure_message,
    load_callable,
    public_failures,
)
from mlops_platform.batch.reader import BatchInput, BatchInputError

# Rows of the first chunk checked before a run starts: enough for a rule over a whole column
# (an all-empty column) to be judged, small enough to cost well under a second.
PREFLIGHT_ROWS: Final = 5_000
_ZIP_MAGIC: Final = b"PK\x03\x04"
_SHARD: Final = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,9})\s*$")


class InputLimitError(BatchInputError):
    """An argument or the input is over a documented limit (shard, chunk size, output place)."""


@dataclass(frozen=True)
class InputRules:
    """The team's conversion and validation of its input, as import paths (see `BatchContract`).

    `reader(table, *, source, first_row)` turns a text table into the team's frame and
    `validator(frame)` raises `ValueError` for a frame that breaks the schema.
    """

    reader: str
    validator: str


def check_input(
    path: Path,
    rules: InputRules,
    *,
    rows: int = PREFLIGHT_ROWS,
    allow_zip: bool = False,
    load: Callable[[str], Callable[..., Any]] | None = None,
) -> None:
    """Raise `BatchInputError` (one message: what, where, the rule, what to do) for a bad input.

    `allow_zip` accepts a zip archive after checking that it is intact; what it holds is left
    to the pipeline's reader (the training pipeline reads the UCI zip).
    """
    path = Path(path).expanduser()
    if allow_zip and path.is_file() and _starts_with(path, _ZIP_MAGIC):
        _check_zip(path)
        return
    loader = load or load_callable
    reader, validator = loader(rules.reader), loader(rules.validator)
    with BatchInput(path, rows) as source:
        chunk = next(iter(source.chunks()))
        name = str(source.path)
        try:
            frame = reader(chunk.table, source=name, first_row=chunk.first_row)
        except ValueError as error:
            raise BatchInputError(str(error), getattr(error, "failures", None)) from error
        frame.index = range(chunk.first_row, chunk.first_row + len(frame))
        try:
            validator(frame)
        except ValueError as error:
            failures = getattr(error, "failures", None) or []
            # "Never entirely missing" is a property of the whole column: a first chunk may hold
            # only '?' where later rows have values (the real UCI file's payer_code does). The
            # pipeline judges the whole file, so it is never reported from the first rows.
            kept = [f for f in failures if not _whole_file_rule(f)]
            if failures and not kept:
                return
            detail = str(error) if len(kept) == len(failures) else failure_message(kept, len(frame))
            last = chunk.first_row + len(frame) - 1
            raise BatchInputError(
                f"Input {name} breaks the schema in data rows {chunk.first_row:,}-{last:,} "
                f"(checked before the run started):\n{detail}",
                public_failures(kept),
            ) from error


# Files this process has pre-checked and passed, by where they are and what they look like on
# disk (path, device, inode, size, modification and change times in ns) and the rules they
# passed under.
_PASSED: set[tuple[Any, ...]] = set()


def check_input_once(path: Path, rules: InputRules, *, allow_zip: bool = False) -> None:
    """`check_input`, skipped when this process passed the same unchanged file under the same
    rules before (one process runs several commands on one file: the demo, a notebook).

    It only spares the repeated pre-check, which decides nothing: the pipeline validates the
    whole file itself. A file that was rewritten (even with its modification time put back),
    replaced or touched is checked again."""
    resolved = Path(path).expanduser().resolve()
    try:
        seen = resolved.stat()
    except OSError:
        check_input(resolved, rules, allow_zip=allow_zip)  # says what is wrong with the path
        return
    # The change time too: a rewrite that restores the modification time (`cp -p`, `rsync -t`)
    # still moves it, and nothing can set it back.
    identity = (seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns)
    key = (str(resolved), *identity, rules, allow_zip)
    if key in _PASSED:
        return
    check_input(resolved, rules, allow_zip=allow_zip)
    _PASSED.add(key)


def _whole_file_rule(failure: dict[str, object]) -> bool:
    return str(failure.get("check", "")).startswith("not_all_missing")


def parse_shard(text: str | None) -> Shard:
    """`--shard i/n`: shard i of n, numbered from 0, so n >= 1 and 0 <= i <= n-1."""
    if text is None:
        return Shard()
    match = _SHARD.match(text)
    if not match:
        raise InputLimitError(
            f"--shard must look like i/n (e.g. 0/4, the first of four shards); got {text!r}."
        )
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        allowed = f"0/{count} to {count - 1}/{count}" if count >= 1 else "n of at least 1"
        raise InputLimitError(
            f"--shard {text}: shards are numbered from 0, so i must be 0 to n-1 and n at least "
            f"1 ({allowed}); got i={index}, n={count}. --shard 0/4 to --shard 3/4 split a file "
            "in four."
        )
    return Shard(index=index, count=count)


def check_output_dir(
    output: Path, forbidden: Mapping[str, Path], allowed: Path, option: str = "--output"
) -> Path:
    """The resolved `output` directory, or `InputLimitError` if results cannot go there.

    `forbidden` names places results must never be written into (the state directory, the
    artifact store), except below `allowed` (the default results directory in the state).
    """
    resolved = Path(os.path.abspath(output.expanduser()))
    real = resolved.resolve()
    allowed = allowed.expanduser().resolve()
    if not _inside(real, allowed):
        for what, place in forbidden.items():
            place = place.expanduser().resolve()
            if _inside(real, place):
                raise InputLimitError(
                    f"{option} {output} is inside the {what} ({place}); results are never "
                    f"written among the platform's own files. Choose a directory outside it, "
                    f"or one inside {allowed}, which is meant for them."
                )
    if real.exists() and not real.is_dir():
        raise InputLimitError(
            f"{option} {output} is an existing file; {option} names a directory. Choose a "
            "directory, or remove the file."
        )
    return real


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise BatchInputError(
            f"Input {path} is not a valid zip archive: {error}. Pass the UCI zip as downloaded, "
            "or the CSV (plain or .gz) inside it."
        ) from error
    if broken is not None:
        raise BatchInputError(
            f"Input {path} is a damaged zip archive: member {broken!r} fails its checksum. "
            "Download the file again."
        )

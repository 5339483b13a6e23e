"""Progress of a long scoring run: a rich bar on a terminal, plain log lines anywhere else."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

from mlops_platform.batch.scoring import Progress

LOG_EVERY_SECONDS: Final = 15.0


@contextmanager
def report_progress(label: str) -> Iterator[Progress]:
    """Yield a callback taking (rows read, fraction of the input read).

    Plain lines go to stderr (not a logger: ZenML's log level hides INFO records), one every
    LOG_EVERY_SECONDS, so stdout stays free for `--json`. The fraction counts bytes pyarrow has
    read, which runs a few megabytes ahead of the rows scored.
    """
    if sys.stderr.isatty():
        with _rich_bar(label) as update:
            yield update
        return
    started = time.monotonic()
    last = started

    def log_line(rows: int, fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LOG_EVERY_SECONDS:
            last = now
            rate = rows / (now - started) if now > started else 0.0
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            print(
                f"{stamp} {label}: {fraction:.0%} read, {rows:,} rows, {rate:,.0f} rows/s",
                file=sys.stderr,
                flush=True,
            )

    yield log_line


@contextmanager
def _rich_bar(label: str) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task(label, total=1.0, rows="0")

        def update(rows: int, fraction: float) -> None:
            bar.update(task, completed=fraction, rows=f"{rows:,}")

        yield update

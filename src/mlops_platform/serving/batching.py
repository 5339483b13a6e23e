"""Micro-batching: requests that arrive while a batch is being scored are scored together.

Pure of ZenML and HTTP. Each caller's thread calls `MicroBatcher.submit(item)` and gets back its
own result. A lone caller waits for nothing: when nothing is being scored and the last batch had
no company, the caller scores its own item at once; while a batch is being scored, newly arriving
items queue, and the next free caller takes everything queued (up to `max_rows` rows) and scores
it in one call. One batch is scored at a time: on a few cores under one interpreter lock, a
second concurrent batch would only compete for the same core.

When the last batch had company (callers that queued while it was scored), the next batch waits
up to `linger_seconds` for as many callers (`_linger`): callers just answered come back a few
milliseconds later, and without the wait steady callers split into two half-full batches that
alternate, each paying the model call's fixed cost.

Other work that competes for the interpreter (the service's shadow scoring) takes a turn between
batches (`turn()`) instead of running beside one: two threads scoring at once hand the interpreter
lock back and forth at every pandas and NumPy call, and both get slower than one after the other.
Requests that arrive during a turn queue and are scored together after it.

`run(items)` returns one result per item, in order; a result that is an exception is raised to
that item's caller alone (a request that breaks a rule gets its own refusal, the others their
answers). When `run` itself raises for a batch of several items, each item is scored again
alone, so one item that breaks the scorer fails only its own caller.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH_ROWS: Final = 256


@dataclass(eq=False)
class _Entry(Generic[T, R]):
    item: T
    rows: int
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """Counters for the service's status: batches scored, items in them, largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    retried_alone: int = 0


class MicroBatcher(Generic[T, R]):
    """Score concurrent submissions in batches; `run(items) -> results` (one per item, in order)."""

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_rows: int = DEFAULT_MAX_BATCH_ROWS,
        linger_seconds: float = 0.0,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1; got {max_rows}")
        if linger_seconds < 0:
            raise ValueError(f"linger_seconds must be at least 0; got {linger_seconds}")
        self._run = run
        self.max_rows = max_rows
        self.linger_seconds = linger_seconds
        # Callers around the last batch (its items and those that queued while it was scored):
        # how many the next batch may wait for. 1 after a lone request, which never waits.
        self._company = 1
        self._pending: list[_Entry[T, R]] = []
        self._busy = False
        self._turns_waiting = 0
        # True when the last thing to hold the scorer was a turn: then pending requests go
        # before the next turn, so turns and batches alternate and neither can starve.
        self._turn_ran = False
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._arrivals = threading.Condition(lock)  # wakes only a batch waiting for company
        self._lingering = False
        self.stats = BatchStats()

    def submit(self, item: T, *, rows: int = 1) -> R:
        """Score `item` (alone or with others queued beside it) and return its own result.

        `rows` counts towards `max_rows` (an item above it is scored alone). Raises the exception
        `run` gave for this item, or what scoring it alone raised.
        """
        entry: _Entry[T, R] = _Entry(item, rows)
        with self._cond:
            self._pending.append(entry)
            if self._lingering:
                self._arrivals.notify()  # the batch waiting for company
            while not entry.done:
                if self._busy or (self._turns_waiting and not self._turn_ran):
                    self._cond.wait()
                    continue
                self._busy, self._turn_ran = True, False
                self._linger()
                batch = self._take()
                self._cond.release()
                try:
                    self._score(batch)
                finally:
                    for other in batch:  # interrupted (not an Exception): nobody waits forever
                        if not other.done:
                            other.error, other.done = RuntimeError("scoring was interrupted"), True
                    self._cond.acquire()
                    # The callers around this batch: its own and those that queued meanwhile.
                    self._company = len(batch) + len(self._pending)
                    self._busy = False
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the scorer's turn: waits for the batch being scored, then no batch starts until
        the block ends. Turns and batches alternate: a waiting turn goes before the next batch,
        and requests pending after a turn go before the next turn (neither can starve)."""
        with self._cond:
            self._turns_waiting += 1
            try:
                while self._busy or (self._pending and self._turn_ran):
                    self._cond.wait()
            finally:
                self._turns_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy, self._turn_ran = False, True
                self._cond.notify_all()

    def _linger(self) -> None:
        """Before a batch (holding the scorer): when the last batch had company, wait up to
        `linger_seconds` until as many callers are pending (or `max_rows` rows are).

        A model call costs mostly the same for 1 row as for 8, and callers answered by the last
        batch come back a few milliseconds later: without the wait, 8 steady callers split into
        two half batches that alternate. A caller that came alone (the last batch had no
        company) is scored at once."""
        if self.linger_seconds <= 0 or len(self._pending) >= self._company:
            return
        deadline = time.monotonic() + self.linger_seconds
        self._lingering = True
        try:
            while len(self._pending) < self._company and self._pending_rows() < self.max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._arrivals.wait(remaining)
        finally:
            self._lingering = False

    def _pending_rows(self) -> int:
        return sum(entry.rows for entry in self._pending)

    def _take(self) -> list[_Entry[T, R]]:
        """The oldest pending entry, then each later one while the rows fit, in arrival order."""
        batch, rows = [self._pending[0]], self._pending[0].rows
        for entry in self._pending[1:]:
            if rows + entry.rows > self.max_rows:
                break
            batch.append(entry)
            rows += entry.rows
        del self._pending[: len(batch)]
        return batch

    def _score(self, batch: list[_Entry[T, R]]) -> None:
        try:
            results = list(self._run([e.item for e in batch]))
            if len(results) != len(batch):
                raise RuntimeError(
                    f"the batch scorer returned {len(results)} results for {len(batch)} items"
                )
        except Exception as error:
            if len(batch) == 1:
                batch[0].error, batch[0].done = error, True
                return
            self.stats.retried_alone += len(batch)
            for entry in batch:  # find whose item broke the batch: each is scored alone
                self._score([entry])
            return
        self._count(len(batch))
        for entry, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                entry.error = result
            else:
                entry.result = result
            entry.done = True

    def _count(self, size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items += size
        stats.largest = max(stats.largest, size)


def describe(stats: BatchStats) -> dict[str, Any]:
    return {
        "batches": stats.batches,
        "requests": stats.items,
        "largest_batch": stats.largest,
        "requests_retried_alone": stats.retried_alone,
    }

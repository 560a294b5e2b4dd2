"""Work spread over forked worker processes, one per CPU core, while the build goes on.

A first build of a large ledger is mostly drawing team plots and rendering
evaluation pages, each independent of the others. :class:`Workers` collects
such tasks, then :meth:`Workers.start` forks one worker per core and hands
them the tasks in chunks, plots first; the build renders its other pages
meanwhile and collects each task's results, in order, when it needs them.

A task is a function of an index. Workers are forked after every task is
registered, so they inherit the tasks (and the records they read) instead of
receiving them pickled; only indices go out and results come back. A task
catches its own errors and returns something that says so (None here). With
no ``fork``, with one core, with few items, or when a worker breaks, the
items are done in this process when their results are asked for, so the
site is the same bytes either way.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Fewer items than this are done in this process: starting workers costs more.
PARALLEL_MIN = 16

# token -> task, set before the workers are forked (they inherit it)
_TASKS: dict[int, Callable[[int], Any]] = {}


def _run(token: int, start: int, end: int) -> list[Any]:
    task = _TASKS[token]
    return [task(n) for n in range(start, end)]


class Results(Generic[T]):
    """The results of one task over ``count`` items; :meth:`get` waits for them."""

    def __init__(self, task: Callable[[int], T], count: int, chunk: int) -> None:
        self.task = task
        self.count = count
        self.chunk = max(1, chunk)
        self.futures: list[tuple[range, Future[list[T]]]] | None = None
        self.value: list[T] | None = None

    def get(self) -> list[T]:
        """Every result, in order. Chunks no worker has started yet are done here, last first,
        while the workers go on from the front: the build's process does not sit idle."""
        if self.value is None:
            found: list[T] | None = None
            if self.futures is not None:
                try:
                    chunks: dict[int, list[T]] = {}
                    for n, (items, future) in reversed(list(enumerate(self.futures))):
                        if future.cancel():
                            chunks[n] = [self.task(i) for i in items]
                    found = [r for n, (_, future) in enumerate(self.futures)
                             for r in (chunks[n] if n in chunks else future.result())]
                except Exception:  # noqa: BLE001 - a broken worker: done here instead
                    found = None
            self.value = found if found is not None else [self.task(n) for n in range(self.count)]
        return self.value


class Workers:
    """Tasks to spread over forked workers; :meth:`start` once all are added, :meth:`close` at the end."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size if size is not None else (os.cpu_count() or 1)
        self.pending: list[tuple[int, Results[Any]]] = []
        self.pool: ProcessPoolExecutor | None = None

    def add(self, task: Callable[[int], T], count: int, *, chunk: int | None = None) -> Results[T]:
        """``task(0)``, ..., ``task(count - 1)``, in chunks of ``chunk`` (default: a quarter of a worker's share)."""
        results = Results(task, count, chunk or count // (4 * max(1, self.size)))
        if count >= PARALLEL_MIN:
            token = len(_TASKS) + 1
            while token in _TASKS:
                token += 1
            _TASKS[token] = task
            self.pending.append((token, results))
        return results

    def start(self) -> None:
        """Fork the workers and hand out every chunk, tasks in the order they were added."""
        if self.size < 2 or not self.pending or "fork" not in multiprocessing.get_all_start_methods():
            return
        try:
            self.pool = ProcessPoolExecutor(self.size, mp_context=multiprocessing.get_context("fork"))
            for token, results in self.pending:
                results.futures = [(range(n, end), self.pool.submit(_run, token, n, end))
                                   for n in range(0, results.count, results.chunk)
                                   if (end := min(n + results.chunk, results.count))]
        except OSError:  # no processes to be had: everything is done here
            for _, results in self.pending:
                results.futures = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        for token, _ in self.pending:
            _TASKS.pop(token, None)
        self.pending = []


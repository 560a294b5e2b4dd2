"""site_generator.workers: tasks over forked workers, results in order, done here when a worker fails."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from site_generator import workers

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")


def test_results_come_in_order_from_workers() -> None:
    pool = workers.Workers(size=2)
    here = os.getpid()
    squares = pool.add(lambda n: (n * n, os.getpid() != here), 400, chunk=10)
    names = pool.add(lambda n: f"item-{n}", 50, chunk=7)
    pool.start()
    try:
        assert squares.futures is not None
        squares.futures[0][1].result()  # the first chunk is a worker's (get may take the rest here)
        done = squares.get()
        assert [value for value, _ in done] == [n * n for n in range(400)]
        assert any(elsewhere for _, elsewhere in done)  # a worker did some of them
        assert names.get() == [f"item-{n}" for n in range(50)]
    finally:
        pool.close()
    assert workers._TASKS == {}


def test_a_broken_worker_leaves_the_work_to_this_process() -> None:
    here = os.getpid()

    def task(n: int) -> int:
        if os.getpid() != here:
            os._exit(3)  # a worker dies
        return n + 1

    pool = workers.Workers(size=2)
    results = pool.add(task, 40, chunk=5)
    pool.start()
    try:
        assert results.futures is not None
        with pytest.raises(BrokenProcessPool):
            results.futures[0][1].result()
        assert results.get() == list(range(1, 41))
    finally:
        pool.close()


def test_few_items_or_one_core_stay_in_this_process() -> None:
    here = os.getpid()
    for size, count in ((2, workers.PARALLEL_MIN - 1), (1, 100)):
        pool = workers.Workers(size=size)
        results = pool.add(lambda n: os.getpid(), count)
        pool.start()
        try:
            assert results.get() == [here] * count and pool.pool is None
        finally:
            pool.close()

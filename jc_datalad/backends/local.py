"""The local backend: this pass's evaluations in a pool of threads on the runner's machine.

Each worker drives git and a sandboxed process for one task and writes the finished
record into the task's ``.incoming/<id>/`` folder at once, so a crash before the runner
saves it keeps it (:func:`jc_datalad.ledger.recover`). Nothing outlives the pass:
:meth:`LocalBackend.pending` is always empty.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from jc_datalad import ledger
from jc_datalad.backends import Finished, Say, Task
from jc_datalad.config import RunnerConfig
from jc_datalad.evaluate import Context, prepare


class LocalBackend:
    name = "local"

    def __init__(self, config: RunnerConfig, workers: int, say: Say) -> None:
        self.config = config
        self.workers = workers
        self.say = say
        self.prepare_s = 0.0
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[Finished]] = []

    def pending(self) -> dict[str, Task]:
        return {}

    def submit(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        t0 = time.perf_counter()
        ctx = prepare(self.config, sorted({t.split for t in tasks}))
        self.prepare_s = time.perf_counter() - t0
        self.say(f"prepared the pass in {self.prepare_s:.2f} s (image {ctx.image_key[:24]}..., hidden "
                 + ", ".join(f"{s}: {len(h.items)} items" for s, h in ctx.hidden.items()) + ")")
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._futures += [self._pool.submit(self._run, ctx, task) for task in tasks]

    def _run(self, ctx: Context, task: Task) -> Finished:
        from jc_datalad.runner import run_task

        out = ledger.incoming_dir(self.config.results, task.eval_id)
        return run_task(self.config, ctx, task, out)

    def collect(self) -> Iterator[list[Finished]]:
        try:
            for future in as_completed(self._futures):
                yield [future.result()]
        finally:
            self._futures = []
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def forget(self, eval_id: str) -> None:
        return None

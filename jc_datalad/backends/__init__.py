"""Where and when evaluations run: one small interface, two backends.

A runner pass admits submission heads, turns each into a :class:`Task`, and hands
them to the backend that ``runner.yaml`` names (``backend: local`` or ``slurm``;
:func:`choose`). The backend runs each task with the one evaluation code path,
:func:`jc_datalad.runner.run_task`, and gives back finished evaluation folders
(:class:`Finished`), which the runner records in the ledger, in one place.

- ``local`` (:mod:`.local`): a pool of threads on this machine; :meth:`Backend.collect`
  returns when all of this pass's tasks are done.
- ``slurm`` (:mod:`.slurm`): one ``sbatch --array`` per pass; each array task runs
  ``jc runner task`` on a compute node and publishes its folder to an output store.
  Submitted jobs are kept in the ledger's incoming state, so a later pass (or
  ``jc runner collect``) collects them, exactly once, even after the runner died.

The contract:

``pending()``
    tasks submitted by earlier passes and not collected yet (admission neither decides
    nor resubmits them, and counts them toward quotas);
``submit(tasks)``
    start running them (returns at once);
``collect()``
    the finished ones, in batches as they finish (local: one at a time; slurm: all that one
    look at the jobs found), each a folder with ``record.json`` under the ledger's ``.incoming/``
    (or a platform-fault record to retry); the runner records a batch with one
    :func:`jc_datalad.ledger.commit_many`;
``forget(eval_id)``
    called once the ledger has the evaluation (or it will be retried): drop what the
    backend kept about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jc_datalad.config import RunnerConfig, Team
from jc_datalad.records import Evaluation

Say = Callable[[str], None]


@dataclass(frozen=True)
class Task:
    """One admitted evaluation: everything needed to run it on any machine that sees the datasets."""

    eval_id: str
    team: Team  #: the team the evaluation counts for, with the repository it was submitted to
    commit: str
    phase: str
    split: str
    submission: dict[str, Any] = field(default_factory=dict)  #: branches, first_seen, repository_team

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["team"] = {**asdict(self.team), "members": list(self.team.members), "keys": list(self.team.keys)}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        t = data["team"]
        team = Team(name=str(t["name"]), repository=str(t["repository"]), members=tuple(t.get("members", ())),
                    keys=tuple(t.get("keys", ())), merged_into=t.get("merged_into"))
        return cls(eval_id=str(data["eval_id"]), team=team, commit=str(data["commit"]), phase=str(data["phase"]),
                   split=str(data["split"]), submission=dict(data.get("submission") or {}))


@dataclass(frozen=True)
class Finished:
    """A task that ended: its folder in the ledger's ``.incoming/``, its record and the command that redoes it."""

    task: Task
    folder: Path
    evaluation: Evaluation
    command: list[str]


class Backend(Protocol):
    name: str

    def pending(self) -> dict[str, Task]: ...

    def submit(self, tasks: Sequence[Task]) -> None: ...

    def collect(self) -> Iterator[list[Finished]]: ...

    def forget(self, eval_id: str) -> None: ...


def choose(config: RunnerConfig, *, workers: int | None = None, say: Say | None = None) -> Backend:
    """The backend ``runner.yaml`` names (``backend:``), for one pass."""
    say = say or (lambda msg: None)
    if config.backend == "slurm":
        from jc_datalad.backends.slurm import SlurmBackend

        return SlurmBackend(config, say)
    from jc_datalad.backends.local import LocalBackend

    return LocalBackend(config, workers or config.workers, say)

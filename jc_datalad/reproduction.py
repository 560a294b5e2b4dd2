"""``jc runner reproduce ID``: redo a stored evaluation and say whether it came out the same.

Level (b) of docs/reproduce.md, for organizers and auditors who hold the private dataset.
The evaluation is redone from the ledger's record (same team repository, commit, phase and
split, the pinned challenge and hidden data of this runner) in the runner's work folder,
never in ``evaluations/<id>/``: the original record and predictions are never touched. The
redo and its verdict go to ``reproductions/<id>/<n>/`` (:data:`jc_datalad.ledger.REPRODUCTIONS`),
one commit each: ``record.json`` (the redone record), ``predictions/`` and ``verdict.json``
(identical, or the first difference: a prediction file, the status or a score). The redo's
full step logs go to ``<logs>/reproductions/<id>/<n>/`` of the organizer's private store, so
the original's logs stay as they were too.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jc_datalad import ledger, lock
from jc_datalad.config import RunnerConfig, load_teams
from jc_datalad.errors import JcError
from jc_datalad.records import Evaluation, Status

lgr = logging.getLogger(__name__)

#: Record fields that must come out the same for an evaluation to count as reproduced, in the
#: order they are compared (the first that differs is the verdict's first difference).
COMPARED = ("status", "metrics", "public", "private", "items")


@dataclass(frozen=True)
class Verdict:
    """What one reproduction of an evaluation found."""

    evaluation: str
    number: int  #: the n of ``reproductions/<id>/<n>/``
    reproduced: bool
    first_difference: str | None  #: ``predictions/<file>``, ``status`` or ``metrics.<name>``; None when identical
    original_sha256: str  #: of the original ``record.json``, which the reproduction left as it was
    redone_status: str
    folder: str  #: where the redo lies, relative to the results dataset
    at: str
    by: str

    def as_dict(self) -> dict[str, Any]:
        return {"evaluation": self.evaluation, "number": self.number, "reproduced": self.reproduced,
                "first_difference": self.first_difference, "original_sha256": self.original_sha256,
                "redone_status": self.redone_status, "folder": self.folder, "at": self.at, "by": self.by}


def reproduce(config: RunnerConfig, eval_id: str, *, wait: bool = False,
              now: dt.datetime | None = None) -> Verdict:
    """Redo ``eval_id`` and record the redo and its verdict beside it, never over it.

    Holds the results dataset's lock: the reproduction is committed to the ledger.
    """
    from jc_datalad.runner import start_writing

    with lock.hold(config.results, wait=wait, what=f"jc runner reproduce {eval_id}") as holding:
        start_writing(config, holding, lgr.info)
        return _reproduce(config, eval_id, now or dt.datetime.now(dt.UTC))


def _reproduce(config: RunnerConfig, eval_id: str, now: dt.datetime) -> Verdict:
    from jc_datalad.evaluate import prepare
    from jc_datalad.runner import _evaluate_one

    if not ledger.valid_eval_id(eval_id):
        raise JcError(f"{eval_id!r} is not an evaluation id; copy one from the site or `ls evaluations/`")
    path = ledger.record_path(config.results, eval_id)
    if not path.is_file():
        raise JcError(f"{eval_id}: no such evaluation in {config.results}")
    original_bytes = path.read_bytes()
    before = Evaluation.from_dict(json.loads(original_bytes))
    if before.status is Status.REJECTED:
        raise JcError(f"{eval_id} was rejected ({before.reason}): nothing ran, so there is nothing to reproduce")
    teams = load_teams(config.teams_file)
    if before.team not in teams:
        raise JcError(f"team {before.team!r} of {eval_id} is not registered in {config.teams_file}")
    # what the pass recorded about the submission: where it came from and when it was first seen
    submission = {k: v for k, v in before.submission.items() if k != "steps"}
    team = replace(teams[before.team], repository=submission.get("repository", teams[before.team].repository))
    scratch = config.work / "reproduce" / eval_id
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    number = ledger.next_reproduction(config.results, eval_id)
    # the redo's full step logs go beside the original's in the organizer's private store, never over them
    redo_config = replace(config, logs=config.logs / ledger.REPRODUCTIONS / eval_id / str(number))
    try:
        ctx = prepare(redo_config, [before.split])
        after, _ = _evaluate_one(redo_config, ctx, team, before.submission["commit"], before.phase, before.split,
                                 scratch, submission)
        ledger.write_record(scratch, after)
        first = first_difference(config.results / ledger.EVALUATIONS / eval_id, before, scratch, after)
        verdict = Verdict(eval_id, number, first is None, first, hashlib.sha256(original_bytes).hexdigest(),
                          after.status.value, f"{ledger.REPRODUCTIONS}/{eval_id}/{number}",
                          now.strftime("%Y-%m-%dT%H:%M:%SZ"), getpass.getuser())
        (scratch / ledger.VERDICT).write_text(json.dumps(verdict.as_dict(), indent=1, sort_keys=True) + "\n",
                                              encoding="utf-8")
        ledger.commit_reproduction(config.results, scratch, eval_id, number,
                                   f"Reproduction {number} of {eval_id}: "
                                   + ("identical" if first is None else f"differs at {first}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if path.read_bytes() != original_bytes:  # never expected: the redo ran elsewhere
        raise JcError(f"{path} changed during the reproduction; restore it with `git checkout HEAD -- {path}`")
    return verdict


def first_difference(original: Path, before: Evaluation, redone: Path, after: Evaluation) -> str | None:
    """The first thing the redo changed: ``predictions/<file>`` (bytes), then a record field."""
    from jc_datalad.workflows.results import first_difference as first_file

    name = first_file(original / "predictions", redone / "predictions")
    if name is not None:
        return f"predictions/{name}"
    for key in COMPARED:
        a, b = _plain(getattr(before, key)), _plain(getattr(after, key))
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            inner = next(k for k in sorted(a.keys() | b.keys(), key=str) if a.get(k) != b.get(k))
            return f"{key}.{inner}"
        return key
    return None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Status) else value

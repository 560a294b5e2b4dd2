"""Re-running submissions on a new version of the hidden data (``jc runner rerun --hidden-version``).

Organizers fix hidden data (a wrong label, a broken input) with a commit of the private
dataset. A rerun evaluates submissions again against the hidden inputs and labels that
commit pins, read from git and git-annex (:mod:`jc_datalad.hiddenversion`), never from
the organizer's checkout. Each result is a new evaluation, ``<team>--<commit>--<phase>
--hidden-<version>``, with ``submission.rerun_of`` naming the original and
``hidden.private_commit`` the version; the original records stay as they are. Reruns
are never charged to a team's quota and are not part of the runner's standings: they
form a leaderboard version of their own (docs/reproduce.md, "Re-running on new hidden data").
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jc_datalad import hiddenversion, ledger, lock, standings
from jc_datalad.config import RunnerConfig, load_teams
from jc_datalad.errors import JcError
from jc_datalad.evaluate import Context, Hidden, evaluate, prepare, public_part
from jc_datalad.records import Evaluation, Status, evaluation_id
from jc_datalad.spec import ChallengeSpec, ChallengeType, load_spec

lgr = logging.getLogger(__name__)


def rerun_id(team: str, commit: str, phase: str, version: hiddenversion.SplitVersion) -> str:
    """The id of a rerun: the submission's own id and the hidden-data version (never the original's)."""
    key = hiddenversion.version_key(version.inputs_commit, version.labels_commit)
    return f"{evaluation_id(team, commit, phase)}--hidden-{key}"


@dataclass
class RerunReport:
    """What one ``jc runner rerun`` did."""

    hidden_version: str = ""
    evaluations: list[Evaluation] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"hidden_version": self.hidden_version, "already_done": self.already_done, "failed": self.failed,
                "evaluations": [e.as_dict() for e in self.evaluations]}


def rerun(config: RunnerConfig, hidden_version: str, *, final_only: bool = False, phase: str | None = None,
          ids: tuple[str, ...] = (), wait: bool = False,
          progress: Callable[[str], None] | None = None) -> RerunReport:
    """Evaluate submissions again on the hidden data of commit ``hidden_version`` of the private dataset.

    Which: every evaluated submission (of ``phase``, or the evaluations ``ids``); with
    ``final_only``, each team's final selection per phase (its ``final/`` tags, else its best).
    Holds the ledger's lock; each result is committed as it finishes. A rerun already in the
    ledger is not done again.
    """
    from jc_datalad.runner import final_tags, start_writing

    say = progress or (lambda msg: None)
    with lock.hold(config.results, wait=wait, what="jc runner rerun") as holding:
        start_writing(config, holding, say)
        spec = load_spec(config.challenge)
        if spec.type is ChallengeType.RESULTS:
            raise JcError("a results challenge runs nothing on hidden data: use `jc runner rescore` after "
                          "fixing the labels")
        commit = hiddenversion.resolve_commit(config.private, hidden_version)
        report = RerunReport(commit)
        records = [r for _, r in ledger.iter_records(config.results) if isinstance(r, Evaluation)]
        originals = [r for r in records if r.status is Status.EVALUATED and not standings.is_rerun(r)
                     and (phase is None or r.phase == phase) and (not ids or r.id in ids)]
        missing = set(ids) - {r.id for r in originals}
        if missing:
            raise JcError(f"no evaluated original record {', '.join(sorted(missing))} in {config.results}")
        teams = load_teams(config.teams_file)
        if final_only:
            tags = final_tags(config, spec, teams)
            chosen = {r.id for p in {r.phase for r in originals} for t in {r.team for r in originals}
                      for r in standings.select_final(originals, spec, p, t, tagged=tags.get(t, []))}
            originals = [r for r in originals if r.id in chosen]
        if not originals:
            say("no evaluation to run again")
            return report
        ctx = prepare(config, [])
        versions = {split: _stage(config, spec, ctx, split, commit) for split in sorted({r.split for r in originals})}
        done = ledger.committed_ids(config.results)
        for original in sorted(originals, key=lambda r: r.id):
            version = versions[original.split]
            eid = rerun_id(original.team, original.submission["commit"], original.phase, version)
            if eid in done:
                report.already_done.append(eid)
                continue
            team = teams.get(original.team)
            if team is None:
                report.failed.append(f"{original.id}: team {original.team!r} is no longer registered")
                continue
            ev = _one(config, ctx, replace(team, repository=original.submission.get("repository", team.repository)),
                      original, eid, version)
            report.evaluations.append(ev)
            say(f"{eid}: {ev.status.value}" + (f" {spec.metrics.primary}={ev.public.get(spec.metrics.primary)}"
                                                if ev.status is Status.EVALUATED else f": {ev.reason}"))
        return report


def _stage(config: RunnerConfig, spec: ChallengeSpec, ctx: Context, split: str,
           commit: str) -> hiddenversion.SplitVersion:
    """Stage the hidden inputs and labels of ``split`` at ``commit`` into ``ctx``; the version staged."""
    version = hiddenversion.split_version(config.private, split, commit)
    base = config.private / "hidden" / split
    inputs = hiddenversion.materialize(base / "inputs", version.inputs_commit,
                                       config.work / "hidden" / f"{split}-{version.inputs_commit[:12]}-at")
    items = hiddenversion.items_at(base / "labels", version.labels_commit)
    if not items:
        raise JcError(f"{base / 'labels'}: no labels at commit {version.labels_commit[:12]}")
    labels = hiddenversion.materialize(base / "labels", version.labels_commit,
                                       config.work / "hidden" / f"{split}-labels-{version.labels_commit[:12]}-all",
                                       recursive=False, names=items)
    lb = spec.leaderboard
    ctx.hidden[split] = Hidden(split, inputs, labels, version.inputs_id, version.inputs_commit, version.labels_id,
                               version.labels_commit, items, public_part(items, lb.public_fraction, lb.seed))
    return version


def _one(config: RunnerConfig, ctx: Context, team: Any, original: Evaluation, eid: str,
         version: hiddenversion.SplitVersion) -> Evaluation:
    commit = original.submission["commit"]
    out = ledger.incoming_dir(config.results, eid)
    cmd = ["jc", "runner", "rerun", "--config", str(config.path), "--hidden-version", version.private_commit,
           "--evaluation", original.id]
    submission = {k: v for k, v in original.submission.items() if k != "steps"}
    submission["rerun_of"] = original.id
    ev = evaluate(ctx, team, commit, phase=original.phase, split=original.split, out=out, submission=submission,
                  reproduce=[" ".join(shlex.quote(c) for c in cmd)], eval_id=eid)
    ev = replace(ev, hidden={**ev.hidden, "private_commit": version.private_commit})
    ledger.write_record(out, ev)
    if ev.status is Status.INFRASTRUCTURE:  # not recorded: the next rerun tries it again
        lgr.warning("%s: platform fault, not recorded: %s", eid, ev.reason)
        _discard(out)
        return ev
    ledger.commit(config.results, out, ev, cmd)
    return ev


def _discard(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)

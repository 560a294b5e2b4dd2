"""The organizer's runner: find new submissions, evaluate them, record the results.

A pass (:func:`run_once`) is idempotent and crash-safe: it holds the results
dataset's lock (one writer at a time), evaluations already in the ledger are
not redone, what a killed writer left is finished or undone
(:func:`jc_datalad.ledger.recover`), and one broken submission becomes a
record instead of stopping the pass. Evaluations run in a pool of worker
threads (each drives git and a sandboxed process); each worker writes its
finished record to disk at once, and saving to the ledger happens in one
place, in order of completion. See docs/runner.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from jc_datalad import admission, backends, description, ledger, lock, sandbox, standings
from jc_datalad.admission import Candidate
from jc_datalad.config import RunnerConfig, Team, load_teams, read_teams
from jc_datalad.errors import JcError
from jc_datalad.evaluate import Context, evaluate, prepare
from jc_datalad.fsutil import remove_tree
from jc_datalad.gitutil import (
    GitError,
    ensure_identity,
    git_out,
    ls_remote,
    ls_remote_tags,
)
from jc_datalad.records import Evaluation, Status, evaluation_id
from jc_datalad.spec import ChallengeSpec, load_spec

lgr = logging.getLogger(__name__)

IGNORED_BRANCHES = ("git-annex",)
#: Tries of an evaluation that the platform failed before it is recorded as such (never counted).
INFRASTRUCTURE_TRIES = 3
_RETRIES = "state/infrastructure-retries.json"  # in the work folder: tries so far, per evaluation id


@dataclass
class PassReport:
    """What one runner pass did."""

    evaluations: list[Evaluation] = field(default_factory=list)
    already_done: int = 0
    recovered: list[str] = field(default_factory=list)
    team_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    prepare_s: float = 0.0
    standings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # broken ledger lines and branch names, skipped
    retry: list[str] = field(default_factory=list)  # evaluations the platform failed: tried again next pass

    def as_dict(self) -> dict:
        return {
            "evaluations": [e.as_dict() for e in self.evaluations],
            "already_done": self.already_done,
            "recovered": self.recovered,
            "team_errors": self.team_errors,
            "problems": self.problems,
            "retry": self.retry,
            "wall_s": round(self.wall_s, 3),
            "prepare_s": round(self.prepare_s, 3),
            "standings": self.standings,
        }


def discover(teams: dict[str, Team], protocols: tuple[str, ...]
             ) -> tuple[list[Candidate], list[str], list[str]]:
    """Every distinct branch head in every team's own repository; the teams whose repository could
    not be read; and the branches left out for their names (the team's to fix, not the organizers')."""
    found: list[Candidate] = []
    errors: list[str] = []
    ignored: list[str] = []
    for team in sorted(teams.values(), key=lambda t: t.name):
        try:
            remote = ls_remote(team.repository, "heads", protocols)
        except (GitError, subprocess.TimeoutExpired) as exc:
            errors.append(f"team {team.name}: repository {team.repository} unreachable: {exc}")
            continue
        heads = remote.refs
        ignored += [f"team {team.name}: {refused}" for refused in remote.refused]
        by_commit: dict[str, list[str]] = {}
        for branch, sha in sorted(heads.items()):
            if branch in IGNORED_BRANCHES or branch.startswith("synced/"):
                continue
            by_commit.setdefault(sha, []).append(branch)
        found += [Candidate(team, sha, tuple(branches)) for sha, branches in by_commit.items()]
    return found, errors, ignored


def evaluate_command(config: RunnerConfig, team: str, commit: str, phase: str, split: str, eid: str) -> list[str]:
    """The command recorded in the ledger's run record: it redoes one evaluation."""
    return ["jc", "runner", "evaluate", "--config", str(config.path), "--team", team, "--commit", commit,
            "--phase", phase, "--split", split, "--output", f"{ledger.EVALUATIONS}/{eid}"]


def _reproduce_lines(config: RunnerConfig, team: Team, commit: str, cmd: list[str], eid: str) -> list[str]:
    """Commands that redo an evaluation with the organizer's files, every word quoted: the run
    record's own command, and level (b) of docs/reproduce.md. Readers' commands (levels a and c)
    are not stored here; the site writes them from the ledger's archive.json and release.json,
    where they work for a reader. No line runs a participant's record with ``datalad rerun``:
    its recorded interpreter path exists only on the participant's machine."""
    return [
        " ".join(shlex.quote(c) for c in cmd),
        f"jc runner reproduce {shlex.quote(eid)} --config {shlex.quote(str(config.path))}",
    ]


def _rejected(spec: ChallengeSpec, config: RunnerConfig, d: admission.Decision) -> Evaluation:
    cand = d.candidate
    return Evaluation(
        id=d.eval_id,
        challenge={**spec.summary(), "commit": git_out(["rev-parse", "HEAD"], config.challenge)},
        team=d.team,
        submission={"repository": cand.team.repository, "commit": cand.commit,
                    "branches": list(cand.branches), "first_seen": d.first_seen,
                    "repository_team": cand.team.name, **({"keys": d.keys} if d.keys else {}),
                    **({"late_for": d.late_for} if d.late_for else {})},
        phase=d.phase,
        split=d.split,
        status=Status.REJECTED,
        reason=d.reason,
        started=d.first_seen,
        finished=d.first_seen,
    )


def start_writing(config: RunnerConfig, holding: lock.Holding, say: Callable[[str], None]) -> list[str]:
    """What every writer does first, with the lock held: end a dead writer's processes, create
    the ledger if needed, recover what the dead writer left, and clear its temporary folders.

    Returns the ids of evaluations saved from an interrupted pass.
    """
    ensure_identity()
    lock.end_orphans(holding)
    ledger.create_results(config.results)
    recovery = ledger.recover(config.results)
    if recovery.saved:
        say(f"recovered {len(recovery.saved)} finished evaluation(s) an interrupted pass left unsaved")
    if recovery.git_locks:
        say(f"removed stale git lock(s) of an interrupted writer: {', '.join(recovery.git_locks)}")
    for sub in ("verify", "eval"):  # per-evaluation scratch folders (admission.bare_clone, evaluate)
        sandbox.release_mounts(config.work / sub)  # output areas a killed pass left mounted
        remove_tree(config.work / sub)
    return recovery.saved


def run_once(
    config: RunnerConfig,
    *,
    now: dt.datetime | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    wait: bool = False,
) -> PassReport:
    """One pass over every team repository. Returns what was recorded.

    ``now`` is the runner's clock (injectable for tests): it stamps newly seen heads and
    decides which phases have ended. Another writer holding the results dataset's lock
    makes this raise :class:`jc_datalad.lock.LockBusy`, or wait for it with ``wait``.
    """
    say = progress or (lambda msg: None)
    with lock.hold(config.results, wait=wait, what="jc runner run") as holding:
        return _pass(config, holding, now or dt.datetime.now(dt.UTC), workers, say)


def collect(config: RunnerConfig, *, progress: Callable[[str], None] | None = None,
            wait: bool = False) -> PassReport:
    """Record the evaluations that jobs of earlier passes finished (``jc runner collect``); submit nothing.

    Holds the results dataset's lock, like a pass; a job still running stays for later.
    """
    say = progress or (lambda msg: None)
    with lock.hold(config.results, wait=wait, what="jc runner collect") as holding:
        start = time.perf_counter()
        report = PassReport(recovered=start_writing(config, holding, say))
        backend = backends.choose(config, say=say)
        pending = backend.pending()
        if pending:
            _record_finished(config, backend, load_spec(config.challenge), report, say, len(pending))
        left = len(backend.pending())
        say(f"{len(report.evaluations)} evaluation(s) recorded, {len(report.retry)} to retry, {left} still running")
        report.wall_s = time.perf_counter() - start
        return report


def _pass(config: RunnerConfig, holding: lock.Holding, now: dt.datetime, workers: int | None,
          say: Callable[[str], None]) -> PassReport:
    start = time.perf_counter()
    report = PassReport(recovered=start_writing(config, holding, say))
    spec = load_spec(config.challenge)
    overrides, bad = ledger.read_overrides(config.results)
    seen, bad_seen = ledger.read_seen(config.results)
    report.problems = [str(b) for b in (*bad, *bad_seen)]
    for problem in report.problems:
        say(problem)
    # teams first: a teams file that cannot be read at all stops the pass before it writes anything
    teams_file = read_teams(config.teams_file)
    teams = teams_file.teams
    report.team_errors = [
        f"team {name}: suspended until its entry in {teams_file.path} is fixed: "
        + "; ".join(str(p) for p in teams_file.by_team.get(name, ()))
        for name in sorted(teams_file.suspended)
    ]
    # what the site's challenge pages show; committed only when it changed (a few git calls otherwise)
    if description.publish(config, spec, now.strftime("%Y-%m-%dT%H:%M:%SZ"), overrides):
        say(f"challenge description written to {ledger.CHALLENGES}/{spec.id}/")
    if not teams and not teams_file.suspended:
        say(f"no teams registered in {config.teams_file}; add them with `jc team add`")
    candidates, unreachable, ignored = discover(teams, config.protocols)
    report.team_errors += unreachable
    report.problems += ignored
    for err in [*report.team_errors, *ignored]:
        say(err)

    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fresh = [{"team": c.team.name, "commit": c.commit, "branches": list(c.branches),
              "repository": c.team.repository, "first_seen": stamp}
             for c in candidates if (c.team.name, c.commit) not in seen]
    if fresh:
        ledger.record_seen(config.results, fresh)
        seen, _ = ledger.read_seen(config.results)

    backend = backends.choose(config, workers=workers, say=say)
    pending = backend.pending()
    if pending:  # submitted by an earlier pass (a Slurm job array): collected exactly once, never resubmitted
        _record_finished(config, backend, spec, report, say, len(pending))
        pending = backend.pending()
    records = [r for _, r in ledger.iter_records(config.results) if isinstance(r, Evaluation)]
    # evaluations still running elsewhere count toward quotas like those this pass admits
    records += [_running(spec, t) for t in pending.values()]
    decisions = admission.decide(candidates, config=config, spec=spec, teams=teams, seen=seen,
                                 records=records, overrides=overrides,
                                 done=ledger.committed_ids(config.results) | set(pending))
    admitted = [d for d in decisions if d.admitted]
    report.already_done = len(candidates) - len(decisions)
    say(f"{len(candidates)} submission head(s): {len(admitted)} to evaluate, "
        f"{len(decisions) - len(admitted)} rejected, {report.already_done} already in the ledger"
        + (f" or running ({len(pending)} on {backend.name})" if pending else ""))
    if admitted:
        _evaluate_all(config, backend, spec, admitted, report, say)
    elif pending:  # jobs of an earlier pass still running: waited for like this pass's own
        _record_finished(config, backend, spec, report, say, len(pending))
    # rejections are recorded after the evaluations, all in one commit: a quota rejection counted
    # the heads admitted before it, and one the platform failed must not have cost that slot
    platform = set(report.retry) | {ev.id for ev in report.evaluations if ev.status is Status.INFRASTRUCTURE}
    retried = {(d.team, d.phase) for d in admitted if d.eval_id in platform}
    rejections = []
    for d in decisions:
        if d.admitted:
            continue
        if d.quota and (d.team, d.phase) in retried:
            say(f"{d.team} {d.candidate.commit[:12]}: quota decided again next pass "
                "(an evaluation of this pass met a platform error)")
            continue
        rejections.append(d)
    _record_rejections(config, spec, rejections, report, say)
    _publish_archive(config, spec, now, say)
    report.standings = _finalize(config, spec, overrides, now, say)
    report.wall_s = time.perf_counter() - start
    return report


def _record_rejections(config: RunnerConfig, spec: ChallengeSpec, decisions: list[admission.Decision],
                       report: PassReport, say: Callable[[str], None]) -> None:
    rejected = [_rejected(spec, config, d) for d in decisions]
    ledger.commit_rejections(config.results, rejected)  # one commit for all, however many
    for ev in rejected:
        report.evaluations.append(ev)
        say(f"{ev.team} {ev.submission['commit'][:12]}: rejected: {ev.reason}")


def _evaluate_all(config: RunnerConfig, backend: backends.Backend, spec: ChallengeSpec,
                  admitted: list[admission.Decision], report: PassReport, say: Callable[[str], None]) -> None:
    tasks = [backends.Task(d.eval_id, replace(d.candidate.team, name=d.team), d.candidate.commit, d.phase, d.split,
                           {"branches": list(d.candidate.branches), "first_seen": d.first_seen,
                            "repository_team": d.candidate.team.name})
             for d in admitted]
    backend.submit(tasks)
    report.prepare_s = float(getattr(backend, "prepare_s", 0.0))
    _record_finished(config, backend, spec, report, say, len(tasks))


def _running(spec: ChallengeSpec, task: backends.Task) -> Evaluation:
    """A stand-in record of an evaluation still running elsewhere: it counts toward its team's quota."""
    return Evaluation(id=task.eval_id, challenge=spec.summary(), team=task.team.name,
                      submission={"commit": task.commit, "first_seen": task.submission.get("first_seen", "")},
                      phase=task.phase, split=task.split, status=Status.EVALUATED)


def _record_finished(config: RunnerConfig, backend: backends.Backend, spec: ChallengeSpec, report: PassReport,
                     say: Callable[[str], None], total: int) -> None:
    """Record what the backend finished, in one place, in order of completion; a platform fault is
    retried on a later pass (at most INFRASTRUCTURE_TRIES times) and never counts against a quota.
    A batch of several (a look at a job array) is recorded with one ``ledger.commit_many``."""
    retries = _Retries(config.work / _RETRIES)
    number = 0
    for batch in backend.collect():
        ready: list[tuple[Path, Evaluation, list[str]]] = []
        for fin in batch:
            number += 1
            ev, out, cmd = fin.evaluation, fin.folder, fin.command
            if ev.status is Status.INFRASTRUCTURE:
                tries = retries.add(ev.id)
                if tries < INFRASTRUCTURE_TRIES:
                    shutil.rmtree(out, ignore_errors=True)
                    backend.forget(ev.id)
                    report.retry.append(ev.id)
                    say(f"[{number}/{total}] {ev.team} {ev.submission['commit'][:12]}: platform error "
                        f"(try {tries} of {INFRASTRUCTURE_TRIES}), tried again next pass: {(ev.reason or '')[:160]}")
                    continue
                ev = replace(ev, reason=f"platform error after {tries} tries, not counted against the "
                                        f"team's quota: {ev.reason or 'no detail'}")
                ledger.write_record(out, ev)
            ready.append((out, ev, cmd or ["true"]))
        if not ready:
            continue
        t_rec = time.perf_counter()
        if len(ready) == 1:
            ledger.commit(config.results, *ready[0])
        else:
            ledger.commit_many(config.results, ready)
        each = round((time.perf_counter() - t_rec) / len(ready), 4)
        for _, ev, _ in ready:
            backend.forget(ev.id)
            retries.forget(ev.id)
            ev.stages["record"] = each
            report.evaluations.append(ev)
            say(_progress_line(len(report.evaluations) + len(report.retry), total, ev, spec.metrics.primary))


def run_task(config: RunnerConfig, ctx: Context, task: backends.Task, out: Path) -> backends.Finished:
    """The one evaluation code path of every backend: evaluate ``task`` into ``out`` and write its
    record there at once (a folder with a record is finished: a crash before it is saved keeps it)."""
    ev, cmd = _evaluate_one(config, ctx, task.team, task.commit, task.phase, task.split, out, task.submission)
    if ev.status is not Status.INFRASTRUCTURE:
        ledger.write_record(out, ev)
    return backends.Finished(task, out, ev, cmd)


class _Retries:
    """How often the platform failed each evaluation: runner state in the work folder.

    Written by temp file and rename. Losing it (a new work folder) only restarts the count.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.tries: dict[str, int] = {k: v for k, v in data.items() if isinstance(v, int)} \
            if isinstance(data, dict) else {}

    def add(self, eid: str) -> int:
        self.tries[eid] = self.tries.get(eid, 0) + 1
        self._save()
        return self.tries[eid]

    def forget(self, eid: str) -> None:
        if self.tries.pop(eid, None) is not None:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.tries, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def _finalize(config: RunnerConfig, spec: ChallengeSpec, overrides: list[dict], now: dt.datetime,
              say: Callable[[str], None]) -> list[str]:
    """Write the final leaderboard of every phase that has ended (once its inputs change, again)."""
    spec = admission.effective_spec(spec, overrides)
    ended = [p for p in spec.phases if p.end <= now]
    if not ended:
        return []
    records = [r for _, r in ledger.iter_records(config.results) if isinstance(r, Evaluation)]
    teams = load_teams(config.teams_file)
    tags = final_tags(config, spec, teams)
    written = []
    for phase in ended:
        table = standings.final_leaderboard(records, spec, phase.name, tagged=tags,
                                            exclude=admission.disqualified(overrides))
        rel = f"standings/{phase.name}-final.json"
        if ledger.write_json(config.results, rel, table.as_dict(), f"Final leaderboard of phase {phase.name}"):
            say(f"final leaderboard of phase {phase.name} written to {rel}")
            for row in table.rows:
                change = "" if row.previous_rank is None else f" (public rank {row.previous_rank})"
                say(f"   {row.rank}. {row.team} {row.score:.4f}{change}")
        written.append(rel)
    return written


def final_tags(config: RunnerConfig, spec: ChallengeSpec, teams: dict[str, Team]) -> dict[str, list[str]]:
    """Commits each team marked with a ``final/<label>`` tag (signed, when submissions must be)."""
    from jc_datalad.teams import effective_team

    out: dict[str, list[str]] = {}
    for team in teams.values():
        try:
            tags = ls_remote_tags(team.repository, config.protocols)
        except (GitError, subprocess.TimeoutExpired):
            continue
        for name, commit in sorted(tags.items()):
            if not name.startswith("final/"):
                continue
            if spec.submission.signed and not admission.tag_signed(config, team, name, teams):
                continue
            out.setdefault(effective_team(teams, team.name), []).append(commit)
    return out


def _progress_line(number: int, total: int, ev: Evaluation, primary: str) -> str:
    head = f"[{number}/{total}] {ev.team} {ev.submission['commit'][:12]}: {ev.status.value}"
    if ev.status is Status.EVALUATED:
        head += f" {primary}={ev.public.get(primary, float('nan')):.4f} (public)"
    elif ev.reason:
        head += f": {ev.reason[:160]}"
    stages = " ".join(f"{k} {v:.2f}s" for k, v in ev.stages.items())
    return f"{head}\n    {stages}"


def evaluate_into(config: RunnerConfig, team_name: str, commit: str, phase: str, split: str,
                  output: Path) -> Evaluation:
    """Redo one evaluation into ``output`` (what the ledger's run records call)."""
    ensure_identity()
    teams = load_teams(config.teams_file)
    if team_name not in teams:
        raise JcError(f"team {team_name!r} is not registered in {config.teams_file}")
    team = teams[team_name]
    # a redone evaluation keeps what the pass recorded about the submission: where it came from
    # (a merged team's own repository) and when the runner first saw it
    submission: dict = {}
    earlier = output / ledger.RECORD
    if earlier.exists():
        submission = {k: v for k, v in json.loads(earlier.read_text())["submission"].items() if k != "steps"}
        team = replace(team, repository=submission.get("repository", team.repository))
    ctx = prepare(config, [split])
    ev, _ = _evaluate_one(config, ctx, team, commit, phase, split, output, submission)
    ledger.write_record(output, ev)
    return ev


def _evaluate_one(config: RunnerConfig, ctx: Context, team: Team, commit: str, phase: str, split: str,
                  out: Path, submission: dict) -> tuple[Evaluation, list[str]]:
    """Evaluate one submission into ``out``, with the command that redoes it recorded."""
    eid = evaluation_id(team.name, commit, phase)
    cmd = evaluate_command(config, team.name, commit, phase, split, eid)
    ev = evaluate(ctx, team, commit, phase=phase, split=split, out=out, submission=submission,
                  reproduce=_reproduce_lines(config, team, commit, cmd, eid))
    return ev, cmd


def reproduce(config: RunnerConfig, eval_id: str, *, wait: bool = False):  # -> reproduction.Verdict
    """Redo a stored evaluation beside it, never over it: see :mod:`jc_datalad.reproduction`."""
    from jc_datalad import reproduction

    return reproduction.reproduce(config, eval_id, wait=wait)


def _publish_archive(config: RunnerConfig, spec: ChallengeSpec, now: dt.datetime,
                     say: Callable[[str], None]) -> None:
    """Copy the submissions due under ``submission.publish`` into the public archive (level a)."""
    from jc_datalad import archive

    if not archive.anything_due(spec, now):  # during a phase, by default: no record is read
        return
    records = [r for _, r in ledger.iter_records(config.results) if isinstance(r, Evaluation)]
    try:
        added = archive.publish(config, spec, records, now)
    except (JcError, OSError, RuntimeError) as exc:  # datalad's errors are RuntimeErrors; never stops a pass
        say(f"public archive of submissions not updated: {exc}")
        return
    if added:
        say(f"{len(added)} submission(s) copied into the public archive {archive.archive_path(config, spec)}")


def override(config: RunnerConfig, action: str, target: str, *, reason: str, end: str | None = None,
             now: dt.datetime | None = None, wait: bool = False) -> dict:
    """Record an organizer override in the results dataset (one commit, with the reason).

    Holds the results dataset's lock, like a pass.
    """
    with lock.hold(config.results, wait=wait, what=f"jc runner override {action}") as holding:
        start_writing(config, holding, lgr.info)
        return _override(config, action, target, reason=reason, end=end, now=now)


def _override(config: RunnerConfig, action: str, target: str, *, reason: str, end: str | None,
              now: dt.datetime | None) -> dict:
    import getpass

    from jc_datalad.spec import _parse_time

    if action not in admission.OVERRIDE_ACTIONS:
        raise JcError(f"unknown override {action!r}; one of {', '.join(admission.OVERRIDE_ACTIONS)}")
    if not reason.strip():
        raise JcError("an override needs a reason")
    entry = {"action": action, "target": target, "reason": reason.strip(), "by": getpass.getuser(),
             "at": (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if action == "extend":
        spec = load_spec(config.challenge)
        if target not in {p.name for p in spec.phases}:
            raise JcError(f"phase {target!r} is not in challenge.yaml")
        if not end:
            raise JcError("extend needs --end, the phase's new end")
        entry["end"] = _parse_time(end).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif action in ("disqualify", "readmit") and not ledger.record_path(config.results, target).exists():
        raise JcError(f"{target}: no such evaluation in {config.results}")
    elif action == "disqualify-team" and target not in load_teams(config.teams_file):
        raise JcError(f"team {target!r} is not registered")
    ledger.record_override(config.results, entry)
    return entry

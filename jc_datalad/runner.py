"""The organizer's runner: find new submissions, evaluate them, record the results.

A pass (:func:`run_once`) is idempotent and crash-safe: evaluations already in
the ledger are not redone, finished but unsaved ones are saved, and one broken
submission becomes a record instead of stopping the pass. Evaluations run in
a pool of worker threads (each drives git and a sandboxed process); saving to
the ledger happens in one place, in order of completion.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from jc_datalad import ledger
from jc_datalad.config import RunnerConfig, Team, load_teams
from jc_datalad.errors import JcError
from jc_datalad.evaluate import Context, evaluate, prepare
from jc_datalad.gitutil import (
    GitError,
    ensure_identity,
    env_with_annex_on_path,
    git_out,
    ls_remote_heads,
)
from jc_datalad.records import Evaluation, Status, evaluation_id, utcnow
from jc_datalad.spec import ChallengeSpec, load_spec

lgr = logging.getLogger(__name__)

IGNORED_BRANCHES = ("git-annex",)
CLOSED = "closed"


@dataclass(frozen=True)
class Candidate:
    """A submission head found in a team's repository."""

    team: Team
    commit: str
    branches: tuple[str, ...]


@dataclass(frozen=True)
class PhaseChoice:
    name: str
    split: str
    open: bool


@dataclass
class PassReport:
    """What one runner pass did."""

    evaluations: list[Evaluation] = field(default_factory=list)
    already_done: int = 0
    recovered: list[str] = field(default_factory=list)
    team_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    prepare_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "evaluations": [e.as_dict() for e in self.evaluations],
            "already_done": self.already_done,
            "recovered": self.recovered,
            "team_errors": self.team_errors,
            "wall_s": round(self.wall_s, 3),
            "prepare_s": round(self.prepare_s, 3),
        }


def current_phase(spec: ChallengeSpec, now: dt.datetime, default_split: str) -> PhaseChoice:
    """The phase open at ``now`` (the runner's clock); without phases, one open phase 'main'."""
    if not spec.phases:
        return PhaseChoice("main", default_split, True)
    for phase in spec.phases:
        if phase.start <= now < phase.end:
            return PhaseChoice(phase.name, phase.split, True)
    return PhaseChoice(CLOSED, spec.phases[-1].split, False)


def discover(teams: dict[str, Team], protocols: tuple[str, ...]) -> tuple[list[Candidate], list[str]]:
    """Every distinct branch head in every team's own repository."""
    found: list[Candidate] = []
    errors: list[str] = []
    for team in sorted(teams.values(), key=lambda t: t.name):
        try:
            heads = ls_remote_heads(team.repository, protocols)
        except (GitError, subprocess.TimeoutExpired) as exc:
            errors.append(f"team {team.name}: repository {team.repository} unreachable: {exc}")
            continue
        by_commit: dict[str, list[str]] = {}
        for branch, sha in sorted(heads.items()):
            if branch in IGNORED_BRANCHES or branch.startswith("synced/"):
                continue
            by_commit.setdefault(sha, []).append(branch)
        found += [Candidate(team, sha, tuple(branches)) for sha, branches in by_commit.items()]
    return found, errors


def evaluate_command(config: RunnerConfig, team: str, commit: str, phase: str, split: str, eid: str) -> list[str]:
    """The command recorded in the ledger's run record: it redoes one evaluation."""
    return ["jc", "runner", "evaluate", "--config", str(config.path), "--team", team, "--commit", commit,
            "--phase", phase, "--split", split, "--output", f"{ledger.EVALUATIONS}/{eid}"]


def _reproduce_lines(config: RunnerConfig, cand: Candidate, cmd: list[str], eid: str) -> list[str]:
    return [
        " ".join(shlex.quote(c) for c in cmd),
        f"jc runner reproduce {eid} --config {shlex.quote(str(config.path))}",
        f"datalad clone {shlex.quote(cand.team.repository)} submission && cd submission && "
        f"git checkout {cand.commit} && datalad rerun --since= {cand.commit}",
    ]


def _rejected(ctx_spec: ChallengeSpec, config: RunnerConfig, cand: Candidate, phase: PhaseChoice,
              reason: str, first_seen: str) -> Evaluation:
    eid = evaluation_id(cand.team.name, cand.commit, phase.name)
    return Evaluation(
        id=eid,
        challenge={**ctx_spec.summary(), "commit": git_out(["rev-parse", "HEAD"], config.challenge)},
        team=cand.team.name,
        submission={"repository": cand.team.repository, "commit": cand.commit,
                    "branches": list(cand.branches), "first_seen": first_seen},
        phase=phase.name,
        split=phase.split,
        status=Status.REJECTED,
        reason=reason,
        started=first_seen,
        finished=first_seen,
    )


def run_once(
    config: RunnerConfig,
    *,
    now: dt.datetime | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> PassReport:
    """One pass over every team repository. Returns what was evaluated."""
    say = progress or (lambda msg: None)
    start = time.perf_counter()
    ensure_identity()
    ledger.create_results(config.results)
    report = PassReport(recovered=ledger.recover(config.results))
    if report.recovered:
        say(f"recovered {len(report.recovered)} unsaved evaluation(s) from an interrupted pass")
    spec = load_spec(config.challenge)
    teams = load_teams(config.teams_file)
    if not teams:
        say(f"no teams registered in {config.teams_file}; add them with `jc team add`")
    phase = current_phase(spec, now or dt.datetime.now(dt.UTC), config.split)
    done = ledger.committed_ids(config.results)
    candidates, report.team_errors = discover(teams, config.protocols)
    for err in report.team_errors:
        say(err)
    new = [c for c in candidates if evaluation_id(c.team.name, c.commit, phase.name) not in done]
    report.already_done = len(candidates) - len(new)
    say(f"phase {phase.name}: {len(candidates)} submission head(s), {len(new)} new, "
        f"{report.already_done} already in the ledger")
    if not new:
        report.wall_s = time.perf_counter() - start
        return report

    first_seen = utcnow()
    if not phase.open:
        for cand in new:
            ev = _rejected(spec, config, cand, phase, f"first seen at {first_seen}, outside every phase "
                           "of the challenge", first_seen)
            _commit(config, ev, ledger.incoming_dir(config.results, ev.id), [])
            report.evaluations.append(ev)
            say(f"{cand.team.name} {cand.commit[:12]}: rejected: {ev.reason}")
        report.wall_s = time.perf_counter() - start
        return report

    t0 = time.perf_counter()
    ctx = prepare(config, [phase.split])
    report.prepare_s = time.perf_counter() - t0
    say(f"prepared the pass in {report.prepare_s:.2f} s (image {ctx.image_key[:24]}..., "
        f"hidden {phase.split}: {len(ctx.hidden[phase.split].items)} items)")

    def job(cand: Candidate) -> tuple[Evaluation, Path, list[str]]:
        eid = evaluation_id(cand.team.name, cand.commit, phase.name)
        out = ledger.incoming_dir(config.results, eid)
        cmd = evaluate_command(config, cand.team.name, cand.commit, phase.name, phase.split, eid)
        ev = evaluate(ctx, cand.team, cand.commit, phase=phase.name, split=phase.split, out=out,
                      submission={"branches": list(cand.branches), "first_seen": first_seen},
                      reproduce=_reproduce_lines(config, cand, cmd, eid))
        return ev, out, cmd

    total = len(new)
    with ThreadPoolExecutor(max_workers=workers or config.workers) as pool:
        futures = [pool.submit(job, cand) for cand in new]
        for number, future in enumerate(as_completed(futures), 1):
            ev, out, cmd = future.result()
            t_rec = time.perf_counter()
            _commit(config, ev, out, cmd)
            ev.stages["record"] = round(time.perf_counter() - t_rec, 4)
            report.evaluations.append(ev)
            say(_progress_line(number, total, ev, ctx))
    report.wall_s = time.perf_counter() - start
    return report


def _commit(config: RunnerConfig, ev: Evaluation, out: Path, cmd: list[str]) -> None:
    ledger.write_record(out, ev)
    ledger.commit(config.results, out, ev, cmd or ["true"])


def _progress_line(number: int, total: int, ev: Evaluation, ctx: Context) -> str:
    primary = ctx.spec.metrics.primary
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
    ctx = prepare(config, [split])
    eid = evaluation_id(team_name, commit, phase)
    cmd = evaluate_command(config, team_name, commit, phase, split, eid)
    cand = Candidate(teams[team_name], commit, ())
    ev = evaluate(ctx, teams[team_name], commit, phase=phase, split=split, out=output,
                  reproduce=_reproduce_lines(config, cand, cmd, eid))
    ledger.write_record(output, ev)
    return ev


def reproduce(config: RunnerConfig, eval_id: str) -> tuple[Evaluation, Evaluation]:
    """Re-execute a stored evaluation with ``datalad rerun``; return (stored, redone)."""
    import json

    path = ledger.record_path(config.results, eval_id)
    if not path.exists():
        raise JcError(f"{eval_id}: no such evaluation in {config.results}")
    before = Evaluation.from_dict(json.loads(path.read_text()))
    commit = git_out(["log", "-1", "--format=%H", "--", str(path.relative_to(config.results))], config.results)
    proc = subprocess.run(
        ["datalad", "rerun", commit], cwd=config.results, env=env_with_annex_on_path(),
        capture_output=True, text=True,
    )
    if proc.returncode:
        raise JcError(f"`datalad rerun {commit[:12]}` failed in {config.results}: {proc.stderr.strip()[-600:]}")
    after = Evaluation.from_dict(json.loads(path.read_text()))
    return before, after

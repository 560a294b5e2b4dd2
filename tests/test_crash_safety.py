"""Crash safety and one writer per results dataset: kills at random points, two passes at once,
stale git locks, a half-created ledger, finished evaluations that a crash left unsaved, broken
ledger lines, platform faults, and site caches that a killed build left half-written."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import DATA, Arena, sh

from jc_datalad import ledger, lock, participant, runner
from jc_datalad.cli import main
from jc_datalad.errors import JcError
from jc_datalad.gitutil import env_with_annex_on_path
from jc_datalad.records import Evaluation, Status, evaluation_id

JC = str(Path(sys.executable).parent / "jc")


def _heads(arena: Arena, team: str, count: int) -> list[str]:
    """``count`` submission heads of one team: a recorded prediction, then empty commits on top
    (each a head of its own, evaluated on its own, with the same scores)."""
    repo = arena.team(team)
    clone = arena.clone(team)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    heads = [participant.push_submission(clone, repo, "s0")]
    for i in range(1, count):
        sh("git", "commit", "-q", "--allow-empty", "-m", f"variant {i}", cwd=clone)
        sh("git", "branch", "-q", f"s{i}", cwd=clone)
        heads.append(sh("git", "rev-parse", "HEAD", cwd=clone).strip())
    if count > 1:
        sh("git", "push", "-q", "team", *[f"s{i}" for i in range(1, count)], cwd=clone)
    return heads


def _plain_heads(arena: Arena, team: str, count: int = 1) -> list[str]:
    """A team with heads that are not real submissions (for tests that never evaluate them)."""
    repo = arena.team(team)
    src = arena.root / "plain" / team
    sh("git", "init", "-q", "-b", "work", str(src))
    heads = []
    for i in range(count):
        (src / "f").write_text(f"{team} {i}")
        sh("git", "add", "f", cwd=src)
        sh("git", "commit", "-q", "-m", f"plain {i}", cwd=src)
        sh("git", "branch", "-q", "-f", f"b{i}", cwd=src)
        heads.append(sh("git", "rev-parse", "HEAD", cwd=src).strip())
    sh("git", "push", "-q", str(repo), *[f"b{i}" for i in range(count)], cwd=src)
    return heads


def _plain_head(arena: Arena, team: str) -> str:
    return _plain_heads(arena, team)[0]


def _challenge(ctx) -> dict:
    """What an evaluation record says about the challenge (as jc_datalad.evaluate writes it)."""
    return {**ctx.spec.summary(), "commit": ctx.challenge_commit}


def _second_config(arena: Arena, name: str) -> Path:
    """A runner.yaml like the arena's with a results dataset and work folder of its own."""
    data = yaml.safe_load(arena.config_path.read_text())
    data["results"] = str(arena.root / f"results-{name}")
    data["work"] = str(arena.root / f"work-{name}")
    path = arena.root / f"runner-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _jc(*args: str) -> subprocess.Popen:
    return subprocess.Popen([JC, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env_with_annex_on_path())


def _records(results: Path) -> dict[str, Evaluation]:
    out = {}
    for path, rec in ledger.iter_records(results):
        assert isinstance(rec, Evaluation), f"{path}: {rec}"
        out[rec.id] = rec
    return out


def _git(results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=results, capture_output=True, text=True, env=env_with_annex_on_path())


def _assert_sound(results: Path, ids: set[str]) -> None:
    """Exactly one commit added each record and none rewrote it; git and git-annex find nothing wrong."""
    assert set(_records(results)) == ids
    for eid in ids:
        rel = f"{ledger.EVALUATIONS}/{eid}/{ledger.RECORD}"
        assert len(_git(results, "log", "--format=%H", "--", rel).stdout.split()) == 1, eid
    assert _git(results, "status", "--porcelain").stdout == ""
    fsck = _git(results, "fsck", "--no-dangling", "--no-progress")
    assert fsck.returncode == 0, fsck.stderr
    annex = _git(results, "annex", "fsck", "--quiet")
    assert annex.returncode == 0, annex.stdout + annex.stderr
    incoming = results / ledger.INCOMING
    assert not incoming.exists() or not list(incoming.iterdir())


def _marked(results: Path) -> list[int]:
    """Processes carrying a writer mark of this results dataset."""
    mark = f"{lock.LEDGER_ENV}={os.path.abspath(results)}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if mark in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                    found.append(int(name))
            except OSError:
                pass
    return found


# -- one writer at a time -----------------------------------------------------------------------


def test_a_second_writer_exits_naming_the_lock_and_its_holder_or_waits(arena):
    config = arena.config
    path = lock.lock_path(config.results)
    with lock.hold(config.results, what="a test"):
        result = CliRunner().invoke(main, ["runner", "run", "--once", "--config", str(arena.config_path)])
        assert result.exit_code == 1
        assert str(path) in result.output and f"pid {os.getpid()}, a test" in result.output
        assert "--wait" in result.output
        result = CliRunner().invoke(main, ["runner", "override", "disqualify-team", "x", "--reason", "r",
                                           "--config", str(arena.config_path)])
        assert result.exit_code == 1 and str(path) in result.output
        assert not config.results.exists()  # nothing was written

        done: list[object] = []
        waiting = threading.Thread(target=lambda: done.append(runner.run_once(config, wait=True)))
        waiting.start()
        time.sleep(1.5)
        assert waiting.is_alive() and not done
    waiting.join(120)
    assert done and not waiting.is_alive()
    assert (config.results / ".datalad" / "config").is_file()
    assert path.read_text() == ""  # a released lock names no holder


def test_two_passes_started_together_write_no_wrong_record(arena):
    heads = _heads(arena, "twice", 2)
    cfg = str(arena.config_path)
    procs = [_jc("runner", "run", "--once", "--config", cfg) for _ in range(2)]
    outs = [(p.wait(600), p.stdout.read()) for p in procs]
    codes = sorted(rc for rc, _ in outs)
    assert codes == [0, 1], outs
    refused = next(out for rc, out in outs if rc == 1)
    assert "holds the results dataset's lock" in refused and "pid " in refused

    # a third head, and two waiting passes: both finish, the head is evaluated once
    clone = arena.root / "participants" / "twice"
    sh("git", "commit", "-q", "--allow-empty", "-m", "third", cwd=clone)
    sh("git", "push", "-q", "team", "HEAD:s2", cwd=clone)
    heads.append(sh("git", "rev-parse", "HEAD", cwd=clone).strip())
    procs = [_jc("runner", "run", "--once", "--wait", "--config", cfg) for _ in range(2)]
    outs = [(p.wait(600), p.stdout.read()) for p in procs]
    assert [rc for rc, _ in outs] == [0, 0], outs
    results = arena.config.results
    records = _records(results)
    assert {r.submission["commit"] for r in records.values()} == set(heads)
    assert all(r.status is Status.EVALUATED for r in records.values()), \
        [(r.id, r.status, r.reason) for r in records.values()]
    _assert_sound(results, set(records))


# -- recovery -----------------------------------------------------------------------------------


def test_stale_git_locks_and_a_half_created_ledger_are_repaired(arena):
    config = arena.config
    results = config.results
    # what a kill during the first pass's `datalad create` leaves: a .git and no commit
    sh("git", "init", "-q", str(results))
    arena.run()
    assert (results / ".datalad" / "config").is_file() and (results / "README.md").is_file()
    assert not list(results.parent.glob(f".{results.name}.creating*"))

    # what kills inside git commands leave, and half-done changes to committed files
    branch = sh("git", "branch", "--show-current", cwd=results).strip()
    for rel in (".git/index.lock", ".git/HEAD.lock", f".git/refs/heads/{branch}.lock"):
        (results / rel).write_text("")
    (results / "README.md").write_text("half")
    (results / "stray.txt").write_text("an interrupted writer's file")
    leftovers = [config.work / "verify" / "0123abcd", config.work / "eval" / "t--0123--main" / "clone"]
    for folder in leftovers:
        folder.mkdir(parents=True)
    arena.run()
    for rel in (".git/index.lock", ".git/HEAD.lock", f".git/refs/heads/{branch}.lock", "stray.txt"):
        assert not (results / rel).exists(), rel
    assert (results / "README.md").read_text().startswith("# Results ledger")
    assert not any(folder.exists() for folder in leftovers)
    assert _git(results, "status", "--porcelain").stdout == ""

    # a kill after git moved the branch but before it wrote the index: the index lags behind HEAD
    (results / "extra.txt").write_text("committed\n")
    lagging = {**env_with_annex_on_path(), "GIT_INDEX_FILE": str(arena.root / "other-index")}
    for args in (["read-tree", "HEAD"], ["add", "extra.txt"], ["commit", "-q", "-m", "extra"]):
        subprocess.run(["git", *args], cwd=results, env=lagging, check=True)
    assert _git(results, "status", "--porcelain").stdout != ""
    arena.run()
    assert _git(results, "status", "--porcelain").stdout == ""
    assert "extra.txt" in _git(results, "ls-files").stdout.split()

    # a folder that is not a failed creation is never removed
    other = arena.root / "not-a-ledger"
    (other / "data").mkdir(parents=True)
    with pytest.raises(JcError, match="exists but is not a results dataset"):
        ledger.create_results(other)
    assert (other / "data").is_dir()


def test_finished_evaluations_survive_a_crash_and_broken_ledger_lines_are_skipped(arena):
    (head,) = _heads(arena, "survive", 1)
    config = arena.config
    results = config.results
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED
    # a crash after the evaluation finished and its record was written, before it was moved and saved
    folder = results / ledger.INCOMING / ev.id
    shutil.copytree(results / ledger.EVALUATIONS / ev.id, folder, symlinks=True)
    sh("git", "reset", "-q", "--hard", "HEAD~1", cwd=results)
    assert ev.id not in ledger.committed_ids(results)
    assert not (results / ledger.EVALUATIONS / ev.id).exists()
    assert json.loads((folder / ledger.RECORD).read_text())["id"] == ev.id
    # and a half-written one: no record yet
    (results / ledger.INCOMING / "half--0123456789ab--main" / "predictions").mkdir(parents=True)
    # broken lines in the append-only files, and a line cut short by a kill
    seen = results / ledger.SEEN
    seen.write_text(seen.read_text() + "{not json\n" + '["a list"]\n' + '{"team": "x", "commit": "y"')
    overrides = results / ledger.OVERRIDES
    overrides.write_text('{"action": "extend", "target": "development", "reason": "r"}\n'
                         '{"action": "nuke", "target": "all", "reason": "r"}\n')
    sh("git", "add", ledger.SEEN, ledger.OVERRIDES, cwd=results)
    sh("git", "commit", "-q", "-m", "broken lines", cwd=results)

    report = arena.run()
    assert report.recovered == [ev.id]
    assert report.evaluations == []  # kept and recorded, not evaluated again
    assert report.problems == [
        "overrides.jsonl:1: extend needs `end`, an ISO time (got 'None'); line skipped (fix or remove it with a commit)",
        "overrides.jsonl:2: action 'nuke' is not one of disqualify, disqualify-team, readmit, extend; "
        "line skipped (fix or remove it with a commit)",
        "submissions/seen.jsonl:2: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)); line skipped (fix or remove it with a commit)",
        "submissions/seen.jsonl:3: not a JSON object; line skipped (fix or remove it with a commit)",
        "submissions/seen.jsonl:4: not JSON (Expecting ',' delimiter: line 1 column 28 (char 27)); "
        "line skipped (fix or remove it with a commit)",
    ]
    record = _records(results)[ev.id]
    assert record.metrics == ev.metrics and record.submission["commit"] == head
    _assert_sound(results, {ev.id})

    # a new head after the cut-short line: its first-seen entry is a line of its own
    new = _plain_head(arena, "later")
    arena.run()
    assert (("later", new) in ledger.load_seen(results))


def test_platform_faults_are_retried_then_recorded_and_never_counted(arena, monkeypatch):
    head = _plain_head(arena, "unlucky")
    calls = []

    def platform_fault(ctx, team, commit, *, phase, split, out, submission=None, reproduce=None, progress=None):
        calls.append(commit)
        return Evaluation(id=evaluation_id(team.name, commit, phase), challenge=_challenge(ctx), team=team.name,
                          submission={"commit": commit, **(submission or {})}, phase=phase, split=split,
                          status=Status.INFRASTRUCTURE, reason="bwrap: Creating new namespace failed")

    monkeypatch.setattr(runner, "evaluate", platform_fault)
    results = arena.config.results
    for tries in (1, 2):
        report = arena.run()
        assert report.evaluations == [] and len(report.retry) == 1
        assert len(calls) == tries
        assert _records(results) == {}
    report = arena.run()
    (ev,) = report.evaluations
    assert ev.status is Status.INFRASTRUCTURE and ev.submission["commit"] == head
    assert ev.reason.startswith("platform error after 3 tries, not counted against the team's quota")
    assert _records(results)[ev.id].status is Status.INFRASTRUCTURE
    report = arena.run()
    assert report.evaluations == [] and len(calls) == 3  # recorded: not tried again
    _assert_sound(results, {ev.id})
    runner.override(arena.config, "readmit", ev.id, reason="the platform is fixed")
    report = arena.run()
    assert len(calls) == 4 and report.retry == [ev.id]  # a re-admission tries it again


def test_a_platform_fault_never_costs_a_quota_slot(arena, monkeypatch):
    """Six heads against a daily quota of five, the first failed by the platform every time: the
    sixth is not rejected while the first may still count, and is admitted once it does not."""
    heads = _plain_heads(arena, "crowded", 6)
    order = sorted(heads)  # one first-seen time for all: the commit decides the order
    unlucky, last = order[0], order[-1]

    def fake(ctx, team, commit, *, phase, split, out, submission=None, reproduce=None, progress=None):
        fault = commit == unlucky
        return Evaluation(id=evaluation_id(team.name, commit, phase), challenge=_challenge(ctx), team=team.name,
                          submission={"commit": commit, **(submission or {})}, phase=phase, split=split,
                          status=Status.INFRASTRUCTURE if fault else Status.EVALUATED,
                          reason="bwrap: Creating new namespace failed" if fault else None,
                          public={"sbd": 0.5}, private={"sbd": 0.5}, metrics={"sbd": 0.5})

    monkeypatch.setattr(runner, "evaluate", fake)
    statuses = []
    for _ in range(4):
        arena.run()
        statuses.append({r.submission["commit"]: r.status for r in _records(arena.config.results).values()})
    assert [s.get(unlucky) for s in statuses] == [None, None, Status.INFRASTRUCTURE, Status.INFRASTRUCTURE]
    assert [s.get(last) for s in statuses] == [None, None, None, Status.EVALUATED]
    assert all(statuses[0][h] is Status.EVALUATED for h in order[1:5])


def test_a_plot_cache_file_left_empty_by_a_killed_build_is_drawn_again(tmp_path):
    from markupsafe import Markup

    from site_generator.plots import PlotCache

    folder = tmp_path / "plots"
    cache = PlotCache(folder)
    cache.get("key", lambda: Markup("<svg>first</svg>"))
    cache.save()
    (path,) = folder.glob("*.svg")
    path.write_text("")  # what a build killed in the middle of the old write left
    (folder / ".left.svg.123.tmp").write_text("<svg>half")
    again = PlotCache(folder)
    assert again.get("key", lambda: Markup("<svg>drawn again</svg>")) == Markup("<svg>drawn again</svg>")
    again.save()
    assert path.read_text() == "<svg>drawn again</svg>"
    assert sorted(p.name for p in folder.iterdir()) == [path.name]


# -- kill -9 at random points -------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_doubles_nothing(arena):
    """A pass killed with SIGKILL at random moments, again and again, ends with the ledger an
    uninterrupted pass writes: every record once, the same scores, git and git-annex sound."""
    heads = _heads(arena, "k", 6)  # the sixth is over the per-day quota of 5: rejected
    reference = _second_config(arena, "reference")
    from jc_datalad.config import load_config

    t0 = time.monotonic()
    runner.run_once(load_config(reference))
    span = time.monotonic() - t0
    expected = _records(load_config(reference).results)
    assert {r.submission["commit"] for r in expected.values()} == set(heads)
    assert sorted(r.status.value for r in expected.values()) == ["evaluated"] * 5 + ["rejected"]

    seed = int(os.environ.get("JC_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    results = arena.config.results
    kills: list[float] = []
    for _ in range(int(os.environ.get("JC_CRASH_KILLS", "10"))):
        proc = _jc("runner", "run", "--once", "--config", str(arena.config_path))
        # each try gets somewhat further (finished evaluations are kept), so short delays
        # still reach every stage; the interpreter's start takes a second or two of them
        delay = rng.uniform(0.3, 1.5 + span * 0.6)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        proc.kill()  # SIGKILL to the runner alone: its git and sandbox children are orphaned
        proc.wait()
        proc.stdout.close()
        kills.append(round(delay, 2))
    print(f"seed {seed}: reference pass {span:.1f} s, killed after {kills} s")
    report = runner.run_once(arena.config)
    assert report.problems == []
    assert not _marked(results), f"seed {seed}: processes of a killed pass still run"
    got = _records(results)
    assert set(got) == set(expected), f"seed {seed}"
    for eid, rec in got.items():
        want = expected[eid]
        assert (rec.status, rec.reason, rec.metrics, rec.public, rec.private) == \
            (want.status, want.reason, want.metrics, want.public, want.private), f"seed {seed}, {eid}"
    _assert_sound(results, set(expected))
    work = arena.config.work
    assert not any((work / sub).exists() and any((work / sub).iterdir()) for sub in ("eval", "verify"))
    assert kills, f"seed {seed}: every pass finished before its kill"


def test_a_symlinked_lock_file_is_refused_with_the_fix(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, lock.lock_path(tmp_path / "results"))
    with pytest.raises(JcError, match="must be a regular file"):
        with lock.hold(tmp_path / "results"):
            pass
    assert target.read_text() == "keep"


_KILLING_GIT = """#!/bin/bash
# git, except that the ledger's Nth `git commit` of this runner is killed midway, runner included
if [ "$1" = commit ] && [ "$(pwd -P)" = "$JC_TEST_LEDGER" ]; then
    n=$(( $(cat "$JC_TEST_COUNT" 2>/dev/null || echo 0) + 1 )); echo $n > "$JC_TEST_COUNT"
    if [ "$n" = "$JC_TEST_KILL_AT" ]; then
        "$JC_TEST_GIT" "$@" & sleep 0.0$(( RANDOM % 5 )); kill -9 $PPID $!; exit 137
    fi
fi
exec "$JC_TEST_GIT" "$@"
"""


@pytest.mark.slow
def test_sigkill_inside_the_ledgers_git_commit(arena):
    """The runner and its `git commit` killed with SIGKILL in the middle of a ledger commit (in the
    first, second and third commit of three passes): the next pass goes on, nothing is doubled."""
    heads = _heads(arena, "incommit", 3)
    results = arena.config.results
    bin_dir = arena.root / "killing-git"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(_KILLING_GIT)
    (bin_dir / "git").chmod(0o755)
    results.mkdir()  # so that its real path is known; an empty folder becomes the ledger
    env = {**env_with_annex_on_path(), "JC_TEST_LEDGER": str(results.resolve()),
           "JC_TEST_GIT": shutil.which("git") or "git"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    for kill_at in (1, 2, 3):
        count = arena.root / f"commits-{kill_at}"
        proc = subprocess.run([JC, "runner", "run", "--once", "--config", str(arena.config_path)],
                              env={**env, "JC_TEST_KILL_AT": str(kill_at), "JC_TEST_COUNT": str(count)},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == -9, proc.stdout + proc.stderr  # it was killed at that commit
    report = runner.run_once(arena.config)
    assert report.problems == []
    records = _records(results)
    assert {r.submission["commit"] for r in records.values()} == set(heads)
    assert all(r.status is Status.EVALUATED for r in records.values())
    _assert_sound(results, set(records))

"""Runner behaviour beyond one pass: sidecar records, self-checks, crash recovery, reproduction, CLI."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from conftest import DATA, sh

from jc_datalad import ledger, participant
from jc_datalad.cli import main
from jc_datalad.records import Evaluation, Status
from jc_datalad.submit import check_submission


def test_sidecar_run_records_are_read(arena):
    repo = arena.team("sidecar")
    clone = arena.clone("sidecar")
    shutil.copyfile(DATA / "threshold_predict.py", clone / "code" / "predict.py")
    sh("datalad", "save", "-m", "solution", cwd=clone)
    sh("datalad", "containers-run", "--sidecar", "yes", "-n", "jc-env", "--input", "inputs/test",
       "--output", "predictions", "python code/predict.py {inputs} {outputs}", cwd=clone)
    assert list((clone / ".datalad" / "runinfo").iterdir())
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    assert ev.submission["steps"][0]["command"] == "python code/predict.py {inputs} {outputs}"


def test_submit_check_says_what_the_runner_would_refuse(arena):
    clone = arena.clone("selfcheck")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    result = check_submission(clone)
    assert result.ok, result.problems
    assert result.steps[0].inner == "python code/predict.py {inputs} {outputs}"

    cli = CliRunner().invoke(main, ["submit", "check", str(clone)])
    assert cli.exit_code == 0 and "ok: the runner would accept" in cli.output

    gm = clone / ".gitmodules"
    gm.write_text(gm.read_text() + "\n")
    sh("git", "commit", "-q", "-am", "touch gitmodules", cwd=clone)
    (clone / "predictions" / "test_000.tif").unlink()
    sh("git", "commit", "-q", "-am", "drop one prediction", cwd=clone)
    result = check_submission(clone)
    assert not result.ok
    text = " | ".join(result.problems)
    assert ".gitmodules: changes a protected path" in text
    assert "predictions/test_000.tif missing: the command wrote 1 of 2 expected files" in text
    cli = CliRunner().invoke(main, ["submit", "check", str(clone)])
    assert cli.exit_code == 1


def test_interrupted_pass_is_completed_without_doubles(arena):
    repo = arena.team("crash")
    clone = arena.clone("crash")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    results = arena.config.results
    folder = results / "evaluations" / ev.id
    # a crash after the evaluation was moved into place but before it was saved
    sh("git", "reset", "-q", "--soft", "HEAD~1", cwd=results)
    sh("git", "reset", "-q", cwd=results)
    assert ev.id not in ledger.committed_ids(results)
    # and a half-assembled one from another evaluation
    (results / ledger.INCOMING / "other").mkdir(parents=True)
    report = arena.run()
    assert report.recovered == [ev.id]
    assert report.evaluations == []  # nothing redone
    assert ev.id in ledger.committed_ids(results)
    assert not (results / ledger.INCOMING).exists()
    assert json.loads((folder / "record.json").read_text())["id"] == ev.id
    assert sh("git", "status", "--porcelain", cwd=results).strip() == ""
    log = sh("git", "log", "--format=%s", cwd=results)
    assert log.count(f"Evaluate crash {ev.submission['commit'][:12]}") == 1


def test_reproduce_reexecutes_from_the_ledger(arena):
    repo = arena.team("repro")
    clone = arena.clone("repro")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED
    result = CliRunner().invoke(main, ["runner", "reproduce", ev.id, "--config", str(arena.config_path)])
    assert result.exit_code == 0, result.output
    assert "predictions and scores identical" in result.output
    # the redo lies beside the original, which it never touches (tests/test_reproduce_levels.py)
    again = Evaluation.from_dict(json.loads(
        (arena.config.results / ledger.REPRODUCTIONS / ev.id / "1" / ledger.RECORD).read_text()))
    assert again.metrics == ev.metrics
    assert again.finished != ev.finished  # it really ran again
    # what the pass knew about the submission survives the redo
    assert again.submission["first_seen"] == ev.submission["first_seen"]
    assert again.submission["branches"] == ev.submission["branches"]


def test_cli_runner_pass_and_site(arena, work):
    repo = arena.team("cli")
    clone = arena.clone("cli")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    result = CliRunner().invoke(main, ["runner", "run", "--once", "--config", str(arena.config_path)])
    assert result.exit_code == 0, result.output
    assert "[1/1] cli" in result.output and "evaluated sbd=" in result.output
    assert "clone" in result.output and "execute" in result.output  # per-stage timings
    result = CliRunner().invoke(main, ["site", "build", str(arena.config.results), "-o", str(work / "site")])
    assert result.exit_code == 0, result.output
    assert (work / "site" / "index.html").exists()


def test_a_pass_exits_non_zero_naming_unreachable_or_suspended_teams(arena):
    """The other teams are evaluated; the pass still exits 1 and names the teams it could not read."""
    repo = arena.team("honest")
    clone = arena.clone("honest")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    text = arena.teams_file.read_text()
    text += f"  gone:\n    repository: {arena.root / 'teams' / 'missing.git'}\n"
    text += f"  typo:\n    repository: {repo}-typo\n    kyes: []\n"
    arena.teams_file.write_text(text)
    result = CliRunner().invoke(main, ["runner", "run", "--once", "--config", str(arena.config_path)])
    assert result.exit_code == 1, result.output
    assert "2 team(s) could not be read this pass: gone, typo" in result.output
    assert "team gone: repository" in result.output and "unreachable" in result.output
    assert "failed in None" not in result.output
    assert "team typo: suspended" in result.output
    records = [r for _, r in ledger.iter_records(arena.config.results) if isinstance(r, Evaluation)]
    assert [(r.team, r.status) for r in records] == [("honest", Status.EVALUATED)]


def test_a_team_repository_borrowing_objects_is_refused(arena):
    """objects/info/alternates would let git, as the runner's user, serve objects the team cannot read."""
    repo = arena.team("borrower")
    clone = arena.clone("borrower")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    (repo / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (repo / "objects" / "info" / "alternates").write_text(f"{arena.challenge.private}/.git/objects\n")
    report = arena.run()
    assert report.evaluations == []
    (error,) = report.team_errors
    assert error.startswith("team borrower:") and "borrows objects from elsewhere" in error

"""The whole path: plain datalad + git on the participant side, runner, ledger, site."""

from __future__ import annotations

import json
import shutil

from conftest import DATA, sh

from jc_datalad.records import Status

RECORD_FIELDS = {
    ("submission", "repository"), ("submission", "commit"), ("challenge", "commit"),
    ("hidden", "inputs"), ("hidden", "labels"), ("image", "key"), ("scorer", "name"), ("scorer", "version"),
    ("runner", "version"),
}




def test_participants_with_datalad_and_git_only_are_evaluated_and_ranked(arena):
    repos = {"alpha": arena.team("alpha"), "beta": arena.team("beta")}
    solutions = {"alpha": DATA / "threshold_predict.py", "beta": DATA / "empty_predict.py"}
    heads = {}
    for name, repo in repos.items():
        # exactly the steps of docs/participants.md, with datalad and git alone
        clone = arena.root / "p" / name
        sh("datalad", "clone", str(arena.challenge.public), str(clone))
        sh("datalad", "get", "inputs/test", cwd=clone)
        shutil.copyfile(solutions[name], clone / "code" / "predict.py")
        sh("datalad", "save", "-m", "My solution", cwd=clone)
        sh("datalad", "containers-run", "-n", "jc-env", "--input", "inputs/test", "--output", "predictions",
           "python code/predict.py {inputs} {outputs}", cwd=clone)
        sh("datalad", "siblings", "add", "-s", "team", "--url", str(repo), cwd=clone)
        sh("git", "checkout", "-q", "-b", "submission-1", cwd=clone)
        sh("datalad", "push", "--to", "team", cwd=clone)
        heads[name] = sh("git", "rev-parse", "HEAD", cwd=clone).strip()

    report = arena.run()
    by_team = {ev.team: ev for ev in report.evaluations}
    assert set(by_team) == {"alpha", "beta"}
    for name, ev in by_team.items():
        assert ev.status is Status.EVALUATED, ev.reason
        assert ev.submission["commit"] == heads[name]
        for section, key in RECORD_FIELDS:
            assert getattr(ev, section)[key], (section, key)
        assert ev.hidden["inputs"]["dataset_id"] and ev.hidden["labels"]["commit"]
        step = ev.steps[0]
        assert step["status"] == "ok" and step["wall_s"] > 0 and step["peak_rss_bytes"] > 0
        assert "cpu_s" in step and ev.started and ev.finished
        assert set(ev.metrics) >= {"sbd", "abs_dic", "f1_50", "ap50"}
    assert by_team["alpha"].metrics["sbd"] > by_team["beta"].metrics["sbd"] == 0.0

    # the ledger holds the records, committed with a DataLad run record each
    results = arena.config.results
    stored = json.loads((results / "evaluations" / by_team["alpha"].id / "record.json").read_text())
    assert stored["metrics"]["sbd"] == by_team["alpha"].metrics["sbd"]
    log = sh("git", "log", "--format=%B", cwd=results)
    assert log.count("=== Do not change lines below ===") == 2
    assert sh("git", "status", "--porcelain", cwd=results).strip() == ""

    # a second pass does nothing: idempotent
    again = arena.run()
    assert again.evaluations == [] and again.already_done == 2

    # the site ranks alpha first
    from site_generator import build_site

    site = arena.root / "site"
    built = build_site(results, site)
    assert not built.problems
    board = next(site.rglob("leaderboard.html")).read_text()
    assert board.index("alpha") < board.index("beta")

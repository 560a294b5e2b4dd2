"""Re-running on new hidden data, and leaderboards versioned by (challenge commit, hidden data, scorer)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import DATA, sh
from scipy.stats import kendalltau

from jc_datalad import ledger, participant, rerun, standings
from jc_datalad.cli import main
from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import load_spec
from site_generator import versions
from site_generator.build import build_site

#: a third solution: every pixel brighter than the frame's mean is one cell
INVERSE = '''import sys
from pathlib import Path
import numpy as np
import tifffile
inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    stack = tifffile.imread(path).astype(np.float64)
    labels = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        labels[t][frame > frame.mean() + frame.std()] = 1
    tifffile.imwrite(outputs / path.name, labels, photometric="minisblack")
'''


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _ranks(page: str) -> dict[str, tuple[int | None, int | None]]:
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)</td><td class="num">([^<]+)</td>', page)
    return {team: tuple(int(v) if v.isdigit() else None for v in (a, b)) for team, a, b in rows}  # type: ignore[misc]


@pytest.mark.slow
def test_rerun_on_new_hidden_data_makes_a_new_leaderboard_version(arena, work):
    # a private dataset of this test's own: its hidden labels get fixed below
    private = work / "private"
    shutil.copytree(arena.challenge.private, private, symlinks=True)
    cfg = yaml.safe_load(arena.config_path.read_text())
    arena.config_path.write_text(yaml.safe_dump({**cfg, "private": str(private)}))
    for name, code in (("alpha", DATA / "threshold_predict.py"), ("beta", DATA / "empty_predict.py"),
                       ("gamma", INVERSE)):
        repo = arena.team(name)
        clone = arena.clone(name)
        participant.record_prediction(clone, files={"code/predict.py": code})
        participant.push_submission(clone, repo, "s1")
    first = arena.run().evaluations
    assert [e.status for e in first] == [Status.EVALUATED] * 3, [e.reason for e in first]
    results = arena.config.results
    originals = {e.team: e for e in first}
    before = {e.id: _digest(results / "evaluations" / e.id) for e in first}

    # the organizers fix the hidden labels: they become gamma's predictions (so gamma now leads)
    labels = private / "hidden" / "test" / "labels"
    stored = results / "evaluations" / originals["gamma"].id / "predictions"
    for truth in sorted(p for p in labels.iterdir() if not p.name.startswith(".")):
        truth.unlink()
        truth.write_bytes((stored / truth.name).read_bytes())
    sh("datalad", "save", "-r", "-d", str(private), "-m", "Fix the hidden labels", cwd=private)
    version = sh("git", "rev-parse", "HEAD", cwd=private).strip()
    new_labels = sh("git", "rev-parse", "HEAD", cwd=labels).strip()
    assert new_labels != originals["alpha"].hidden["labels"]["commit"]

    report = rerun.rerun(arena.config, version)
    assert report.failed == [] and len(report.evaluations) == 3
    for ev in report.evaluations:
        original = originals[ev.team]
        assert ev.status is Status.EVALUATED, ev.reason
        assert ev.id != original.id and ev.id.startswith(original.id + "--hidden-")
        assert ev.submission["rerun_of"] == original.id and ev.hidden["private_commit"] == version
        assert ev.hidden["labels"]["commit"] == new_labels
        assert ev.id in ledger.committed_ids(results)
    reruns = {e.team: e for e in report.evaluations}
    assert reruns["gamma"].public["sbd"] == pytest.approx(1.0)
    # the original records are untouched, byte for byte
    assert {eid: _digest(results / "evaluations" / eid) for eid in before} == before
    # idempotent; no quota charged and not in the runner's standings (a version of its own)
    assert rerun.rerun(arena.config, version).already_done == sorted(e.id for e in report.evaluations)
    # --final-only: each team's selection (select: 2, one submission each: all three), already done
    cli = CliRunner().invoke(main, ["runner", "rerun", "--config", str(arena.config_path), "--hidden-version",
                                    version[:12], "--final-only", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["already_done"] == sorted(e.id for e in report.evaluations)
    cli = CliRunner().invoke(main, ["runner", "rerun", "--config", str(arena.config_path), "--hidden-version",
                                    "no-such-commit"])
    assert cli.exit_code == 1 and "is not a commit of" in cli.output
    records = [r for _, r in ledger.iter_records(results) if isinstance(r, Evaluation)]
    spec = load_spec(arena.challenge.public)
    table = standings.leaderboard(records, spec, "development")
    assert sorted(row.evaluation_id for row in table.rows) == sorted(e.id for e in first)
    phase = spec.phases[0]
    admitted = standings.admit([r for r in records if r.team == "alpha"], team="alpha", phase=phase,
                               first_seen=dt.datetime.now(dt.UTC), count_failed=True)
    assert admitted.admitted
    used = standings.quota(records, team="alpha", phase=phase,
                           when=standings.parse_time(originals["alpha"].submission["first_seen"]))
    assert used.used_total == 1 and used.used_today == 1  # the original only: the rerun is not charged
    assert all(standings.is_rerun(r) for r in records if r.id not in before)

    # the site: the current version (the rerun) on the leaderboard, the earlier one kept, a comparison
    site = work / "site"
    build_site(results, site)
    root = site / "bacteria-test"
    index = (root / "leaderboards" / "index.html").read_text()
    keys = re.findall(r'<a href="([^"/]+)/development\.html"><code>', index)
    assert len(keys) == 2
    old_key, new_key = keys
    assert new_labels[:12] in index and index.count("(current)") == 1
    assert f"{new_key}</code></a> <strong>(current)</strong>" in index
    old_page = root / "leaderboards" / old_key / "development.html"
    new_page = root / "leaderboards" / new_key / "development.html"
    assert originals["alpha"].id in old_page.read_text() and reruns["alpha"].id in new_page.read_text()
    board = (root / "leaderboard.html").read_text()
    assert board.index(">gamma<") < board.index(">alpha<")  # gamma leads the current version
    compare = root / "leaderboards" / "compare" / "development" / f"{old_key}--{new_key}.html"
    page = compare.read_text()
    ranks = _ranks(page)
    assert set(ranks) == {"alpha", "beta", "gamma"} and ranks["gamma"][1] == 1
    teams = sorted(ranks)
    expected = kendalltau([ranks[t][0] for t in teams], [ranks[t][1] for t in teams]).statistic
    shown = float(re.search(r'data-tau="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    assert shown == pytest.approx(expected) and ranks["gamma"][0] != 1 and shown < 1
    rerun_page = (root / "evaluations" / f"{reruns['alpha'].id}.html").read_text()
    assert "could not be built" not in rerun_page and reruns["alpha"].submission["rerun_of"] in rerun_page
    # stable: a later build keeps the earlier version's page and address
    old_bytes = old_page.read_bytes()
    build_site(results, site)
    assert old_page.read_bytes() == old_bytes and compare.is_file()


def test_comparison_tau_is_scipys():
    from site_generator.leaderboard import Row

    def version(key: str, order: list[str]) -> versions.Version:
        ev = Evaluation(id="x", challenge={}, team="t", submission={"first_seen": ""}, phase="p", split="s",
                        status=Status.EVALUATED)
        rows = tuple(Row(rank=n, team=t, best=ev, score=0.0, submissions=1, last_submission="")
                     for n, t in enumerate(order, 1))
        return versions.Version("p", key, "c", "i", "l", "s", "1", "", "", (), rows)

    old = version("a", ["t1", "t2", "t3", "t4", "t5"])
    new = version("b", ["t2", "t1", "t3", "t5", "t6"])
    c = versions.compare(old, new)
    both = ["t1", "t2", "t3", "t5"]
    assert c.n == 4
    assert c.tau == pytest.approx(kendalltau([old.ranks()[t] for t in both], [new.ranks()[t] for t in both]).statistic)
    assert {r["team"]: r["change"] for r in c.rows}["t2"] == 1 and {r["team"]: r["change"] for r in c.rows}["t4"] is None


def test_a_version_of_a_dataset_is_copied_from_git_and_annex(tmp_path):
    from jc_datalad import hiddenversion
    from jc_datalad.errors import JcError

    repo = tmp_path / "labels"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("git", "annex", "init", "-q", "test", cwd=repo)
    (repo / "a.tif").write_bytes(b"locked v1")
    (repo / "b.tif").write_bytes(b"unlocked v1")
    (repo / "c.txt").write_text("in git\n")
    (repo / ".datalad").mkdir()
    (repo / ".datalad" / "config").write_text('[datalad "dataset"]\n\tid = x\n')
    sh("git", "annex", "add", "-q", "a.tif", "b.tif", cwd=repo)
    sh("git", "add", "c.txt", ".datalad", cwd=repo)
    sh("git", "commit", "-q", "-m", "v1", cwd=repo)
    sh("git", "annex", "unlock", "-q", "b.tif", cwd=repo)
    sh("git", "commit", "-q", "-m", "unlock b", cwd=repo)
    v1 = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    (repo / "a.tif").unlink()
    (repo / "a.tif").write_bytes(b"locked v2")
    sh("git", "annex", "add", "-q", "a.tif", cwd=repo)
    sh("git", "commit", "-q", "-m", "v2", cwd=repo)

    assert hiddenversion.items_at(repo, v1) == ("a.tif", "b.tif", "c.txt")
    out = hiddenversion.materialize(repo, v1, tmp_path / "v1")
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.txt"]  # no dataset files
    assert (out / "a.tif").read_bytes() == b"locked v1" and (out / "b.tif").read_bytes() == b"unlocked v1"
    assert not (out / "a.tif").is_symlink() and (out / "c.txt").read_text() == "in git\n"
    with pytest.raises(JcError, match="is not a commit of"):
        hiddenversion.resolve_commit(repo, "--output=x")
    # a version whose annexed content is gone names the key to get
    key = sh("git", "annex", "lookupkey", "a.tif", cwd=repo).strip()
    sh("git", "annex", "drop", "-q", "--force", "a.tif", cwd=repo)
    with pytest.raises(JcError, match=f"annex get --key {re.escape(key)}"):
        hiddenversion.materialize(repo, "HEAD", tmp_path / "v2")


def test_current_version_is_the_newest_scorer_on_the_latest_hidden_data():
    def version(key: str, labels: str, scorer_version: str, latest: str) -> versions.Version:
        return versions.Version("p", key, "c", "i", labels, "s", scorer_version, latest, latest, (), ())

    fixed = version("fixed", "l0", "0.10.0", "2027-01-02T00:00:00Z")
    older = version("older", "l0", "0.9.1", "2027-01-03T00:00:00Z")  # scored later, by an older scorer
    assert versions.current([older, fixed]) is fixed
    new_data = version("new-data", "l1", "0.9.1", "2027-01-04T00:00:00Z")
    assert versions.current([older, fixed, new_data]) is new_data
    assert versions.current([]) is None


def test_a_rescore_makes_the_current_version_of_a_built_site(tmp_path):
    """A synthetic ledger: three teams, then a rescore that reverses their order."""
    from test_site import SECRET, make, write

    from jc_datalad import rescore

    results, out = tmp_path / "results", tmp_path / "site"
    evs = [make(team, c * 20, score=s, first_seen=f"2024-05-0{n}T00:00:00Z")
           for n, (team, c, s) in enumerate((("alpha", "a1", 0.9), ("beta", "b1", 0.5), ("gamma", "c1", 0.1)), 1)]
    for ev in evs:
        write(results, ev)
    build_site(results, out)
    board = (out / "bacteria" / "leaderboard.html").read_text()
    assert board.index(">alpha<") < board.index(">gamma<")
    ranking_page = out / "bacteria" / "ranking-dev.html"
    ranking_before = ranking_page.read_bytes() if ranking_page.exists() else None
    for ev in evs:
        new = 1.0 - ev.public["aji"]
        scores = rescore.ScoreSet("instance", "0.2.0", "d" * 40, "2024-07-01T00:00:00Z", {"aji": new},
                                  {"aji": new, "f1": 0.5}, {"aji": float(SECRET)},
                                  [{"name": "img_001", "part": "public", "metrics": {"aji": new}, "error": None}],
                                  None, True)
        (results / "evaluations" / ev.id / "scores").mkdir()
        (results / "evaluations" / ev.id / "scores" / "instance-0.2.0.json").write_text(
            json.dumps(scores.as_dict()), encoding="utf-8")
    report = build_site(results, out)
    assert not [p for p in report.problems if "leaderboard" in p or "scores" in p], report.problems
    board = (out / "bacteria" / "leaderboard.html").read_text()
    assert board.index(">gamma<") < board.index(">beta<") < board.index(">alpha<")
    if ranking_before is not None:  # its statistics follow the current version
        assert ranking_page.read_bytes() != ranking_before
    pages = sorted((out / "bacteria" / "leaderboards").rglob("*.html"))
    (compare,) = [p for p in pages if "compare" in p.parts]
    page = compare.read_text()
    assert float(re.search(r'data-tau="([^"]+)"', page).group(1)) == pytest.approx(-1.0)  # type: ignore[union-attr]
    assert all(SECRET not in p.read_text() for p in pages)  # private scores never on a version page
    alpha = (out / "bacteria" / "evaluations" / f"{evs[0].id}.html").read_text()
    assert "instance 0.2.0" in alpha.split('id="rescored"', 1)[1] and "0.1000" in alpha.split('id="rescored"')[1]

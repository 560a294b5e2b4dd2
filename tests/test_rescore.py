"""Rescoring: stored predictions scored again with the current scorer, old records untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, sh

import scorers
from jc_datalad import participant, rescore
from jc_datalad.cli import main
from jc_datalad.errors import JcError
from jc_datalad.records import Status
from site_generator.build import build_site


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (annexed content followed) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_rescore_keeps_old_records_and_shows_new_scores(arena, monkeypatch, work):
    repo = arena.team("alpha")
    clone = arena.clone("alpha")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    results = arena.config.results
    folder = results / "evaluations" / ev.id

    # the ledger keeps the predictions, annexed (TIFFs), for rescoring
    annexed = sh("git", "annex", "find", "--include=*", f"evaluations/{ev.id}/predictions", cwd=results).split()
    assert sorted(annexed) == [f"evaluations/{ev.id}/predictions/hidden_{n:03d}.tif" for n in range(4)]

    before = _files(folder)
    tree_before = sh("git", "ls-tree", "-r", "HEAD", f"evaluations/{ev.id}", cwd=results)
    # same scorer version as the pass: nothing to do
    same = rescore.rescore(arena.config)
    assert same.unchanged == [ev.id] and same.rescored == [] and same.commit is None

    monkeypatch.setattr(scorers, "__version__", "0.2.0.post1")  # a scorer fix released
    cli = CliRunner().invoke(main, ["runner", "rescore", "--config", str(arena.config_path), "--json"])
    assert cli.exit_code == 0, cli.output
    report = json.loads(cli.output)
    assert report["rescored"] == [ev.id] and report["version"] == "0.2.0.post1" and report["failed"] == []

    # old record files byte-identical, and still in the commit as they were
    after = _files(folder)
    assert {k: v for k, v in after.items() if not k.startswith("scores/")} == before
    tree_after = sh("git", "ls-tree", "-r", "HEAD", f"evaluations/{ev.id}", cwd=results)
    assert set(tree_before.splitlines()) < set(tree_after.splitlines())
    assert sh("git", "status", "--porcelain", cwd=results).strip() == ""
    score = json.loads((folder / "scores" / "instance_segmentation-0.2.0.post1.json").read_text())
    assert score["scorer"] == {"name": "instance_segmentation", "version": "0.2.0.post1"}
    # the same scorer code: the sealed rescore gives the pass's scores, item by item
    assert score["public"] == pytest.approx(ev.public) and score["private"] == pytest.approx(ev.private)
    assert [i["name"] for i in score["items"]] == [i["name"] for i in ev.items]
    # a rescore killed before its commit leaves an untracked score file: the next writer removes it
    stray = folder / "scores" / "instance_segmentation-0.3.0.json"
    stray.write_text('{"format": "jc-rescore/1"')
    # again with the same version: nothing new
    again = rescore.rescore(arena.config, ids=[ev.id])
    assert again.unchanged == [ev.id] and again.commit is None
    assert not stray.exists() and sh("git", "status", "--porcelain", cwd=results).strip() == ""

    # the site's leaderboard uses the newest scorer version's scores
    site = work / "site"
    build_site(results, site)
    board = (site / "bacteria-test" / "leaderboard.html").read_text()
    assert "leaderboards/index.html" in board
    index = (site / "bacteria-test" / "leaderboards" / "index.html").read_text()
    assert "instance_segmentation 0.2.0.post1" in index and "instance_segmentation 0.2.0<" in index
    assert "(current)" in index
    page = (site / "bacteria-test" / "evaluations" / f"{ev.id}.html").read_text()
    rescored = page.split('id="rescored"', 1)[1].split("</table>", 1)[0]
    assert "instance_segmentation 0.2.0.post1" in rescored


def test_rescore_refuses_unknown_evaluations(arena):
    with pytest.raises(JcError, match="no-such--0000--development: no such evaluation"):
        rescore.rescore(arena.config, ids=["no-such--0000--development"])


def test_stored_predictions_are_copied_within_a_pass_bounds(tmp_path):
    results = tmp_path / "results"
    objects = results / ".git" / "annex" / "objects" / "ab" / "KEY"
    objects.mkdir(parents=True)
    (objects / "KEY").write_bytes(b"x" * 10)
    stored = results / "evaluations" / "e" / "predictions"
    stored.mkdir(parents=True)
    os.symlink(objects / "KEY", stored / "a.tif")
    (stored / "b.csv").write_text("id,v\n")
    dest = tmp_path / "copy"
    dest.mkdir()
    rescore.copy_predictions(results, stored, dest, max_files=4, max_bytes=100)
    assert (dest / "a.tif").read_bytes() == b"x" * 10 and not (dest / "a.tif").is_symlink()

    # a link out of the ledger's annex (to labels, another team's files) is never followed
    secret = tmp_path / "labels.tif"
    secret.write_bytes(b"truth")
    os.symlink(secret, stored / "c.tif")
    with pytest.raises(JcError, match="links outside the ledger's annex"):
        rescore.copy_predictions(results, stored, tmp_path / "copy2", max_files=4, max_bytes=100)
    (stored / "c.tif").unlink()
    # too many files or bytes: stopped, as a pass stops them
    for n in range(5):
        (stored / f"n{n}.tif").write_bytes(b"y")
    with pytest.raises(JcError, match="more than 4 files"):
        rescore.copy_predictions(results, stored, tmp_path / "copy3", max_files=4, max_bytes=100)
    with pytest.raises(JcError, match="more than 100 files or 12 bytes"):
        rescore.copy_predictions(results, stored, tmp_path / "copy4", max_files=100, max_bytes=12)


def test_newest_scorer_version_wins():
    order = sorted(["0.10.0", "0.2.0", "0.9.1", "0.2.0.post1"], key=rescore.version_order)
    assert order == ["0.2.0", "0.2.0.post1", "0.9.1", "0.10.0"]

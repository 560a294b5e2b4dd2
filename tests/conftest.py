"""Shared fixtures: real datasets in temporary folders, built once per session."""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parent / "data"


def sh(*args: str, cwd: Path | None = None) -> str:
    """Run a plain command (datalad, git, ssh-keygen) as a participant would; fail the test if it fails."""
    import subprocess

    from jc_datalad.gitutil import env_with_annex_on_path

    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env_with_annex_on_path())
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout

_IDENTITY = {
    "GIT_AUTHOR_NAME": "jc test",
    "GIT_AUTHOR_EMAIL": "test@jc-datalad.invalid",
    "GIT_COMMITTER_NAME": "jc test",
    "GIT_COMMITTER_EMAIL": "test@jc-datalad.invalid",
}
for _k, _v in _IDENTITY.items():
    os.environ.setdefault(_k, _v)


def pytest_configure(config):
    """Temp folders of our own: the sandbox user must reach them, and another pytest session
    resets the permissions of the shared /tmp/pytest-of-<user> folder."""
    if not config.option.basetemp and not hasattr(config, "workerinput"):
        # one folder per session: sessions running side by side must not wipe each other's
        config.option.basetemp = tempfile.mkdtemp(prefix="jc-datalad-tests-")
        config._jc_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    """Remove this session's folder after a green run; keep it to look at after a failure."""
    import shutil

    folder = getattr(config, "_jc_basetemp", None)
    if folder and getattr(config, "_jc_green", False):
        shutil.rmtree(folder, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    session.config._jc_green = exitstatus == 0


def _reachable(path: Path) -> None:
    """The sandbox user must traverse the temp folders; pytest makes them 0700."""
    for p in [path, *path.parents]:
        if p == Path("/"):
            break
        mode = os.stat(p).st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, mode | stat.S_IXOTH | stat.S_IXGRP)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("session")
    _reachable(path)
    return path


@pytest.fixture
def work(tmp_path) -> Path:
    _reachable(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def minimal_image() -> Path:
    from jc_datalad import image
    from jc_datalad.config import default_cache_dir

    return image.build_image(image.RECIPES["minimal"], cache_dir=default_cache_dir() / "images")


@pytest.fixture(scope="session")
def minimal_rootfs(minimal_image) -> Path:
    from jc_datalad import launcher
    from jc_datalad.config import default_cache_dir

    return launcher.rootfs_for(minimal_image, cache_root=default_cache_dir() / "rootfs")


@dataclass(frozen=True)
class Challenge:
    root: Path
    public: Path
    private: Path
    config: Path


@pytest.fixture(scope="session")
def challenge(session_dir, minimal_image) -> Challenge:
    """A small bacteria challenge with the minimal image (numpy + tifffile only)."""
    import datalad.api as dl

    from jc_datalad.challenge import new_challenge

    made = new_challenge("bacteria", session_dir / "org", challenge_id="bacteria-test",
                         image=str(minimal_image), items=2, hidden_items=4, frames=2, pixels=48,
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    # most tests are about other rules than signatures; test_competition.py signs
    spec = made.public / "challenge.yaml"
    spec.write_text(spec.read_text().replace("signed: true", "signed: false"))
    dl.save(dataset=str(made.public), message="Unsigned submissions for the tests", result_renderer="disabled")
    return Challenge(session_dir / "org", made.public, made.private, made.config)


@dataclass(frozen=True)
class Arena:
    """One test's own teams file, results ledger and work folder over the shared challenge."""

    challenge: Challenge
    root: Path
    config_path: Path
    teams_file: Path

    @property
    def config(self):
        from jc_datalad.config import load_config

        return load_config(self.config_path)

    def team(self, name: str) -> Path:
        """A registered team with its own bare repository."""
        from jc_datalad import participant
        from jc_datalad.teams import add_team

        repo = participant.make_team_repository(self.root / "teams" / f"{name}.git")
        add_team(self.teams_file, name, str(repo))
        return repo

    def clone(self, name: str) -> Path:
        from jc_datalad import participant

        return participant.clone_challenge(self.challenge.public, self.root / "participants" / name)

    def run(self, **kwargs):
        from jc_datalad.runner import run_once

        return run_once(self.config, **kwargs)


@pytest.fixture
def arena(challenge, work) -> Arena:
    config = work / "runner.yaml"
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config.write_text(yaml.safe_dump({
        "challenge": str(challenge.public), "private": str(challenge.private),
        "results": str(work / "results"), "work": str(work / "jc-work"), "teams": str(teams),
        "workers": 2,
    }))
    return Arena(challenge, work, config, teams)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node Slurm (munged, slurmctld, slurmd, without systemd) for the session;
    clients reach it through SLURM_CONF. Stopped at the end of the session."""
    from slurm_cluster import Cluster, missing

    why = missing()
    if why:
        pytest.skip(f"no Slurm here: {why}")
    root = tmp_path_factory.mktemp("slurm")
    _reachable(root)
    cluster = Cluster(root)
    before = os.environ.get("SLURM_CONF")
    try:
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        cluster.stop()
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before


# git-annex ships in the venv; DataLad looks for it on PATH
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


# -- the browser tests (tests/browser_support.py): a module defines ``site``, these serve and open it --

@pytest.fixture(scope="module")
def server(site: Path):
    """The module's ``site`` folder on a local http server, for the module's tests."""
    from browser_support import serve

    with serve(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One chromium for the module's tests."""
    from browser_support import launch

    with launch(tmp_path_factory.mktemp("chromium-home")) as launched:
        yield launched

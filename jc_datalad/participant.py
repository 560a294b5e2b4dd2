"""What a participant does, with nothing but ``datalad`` and ``git`` commands.

The demo, the benchmark and the tests use these functions to play
participants. Every step is a plain command line (the same ones that
``docs/participants.md`` shows); no jc-datalad code touches the participant's
dataset.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from jc_datalad.errors import JcError
from jc_datalad.gitutil import env_with_annex_on_path


def sh(args: Sequence[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env_with_annex_on_path(), capture_output=True, text=True)
    if proc.returncode:
        raise JcError(f"`{' '.join(args)}` failed in {cwd}: {(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


#: What a team repository wants (a git-annex preferred-content expression): everything a
#: participant annexes except the challenge's own content under ``.datalad/`` (the container
#: image) and ``inputs/`` (the public data). The runner takes those from the organizer's challenge
#: and fetches from a team only annexed files the submission itself added or changed; sidecar run
#: records (``.datalad/runinfo/``) are the participant's and stay wanted. With it, a plain
#: ``datalad push --to <team>`` copies models and predictions but not the 200 MB image.
TEAM_WANTED = "include=.datalad/runinfo/* or (exclude=.datalad/* and exclude=inputs/*)"


def make_team_repository(path: Path, wanted: str = TEAM_WANTED) -> Path:
    """A bare git repository with git-annex initialised, wanting only the team's work: one per team.

    ``wanted`` is recorded in the repository's git-annex branch; a participant's clone learns it
    when it fetches the sibling (``datalad siblings add --fetch``), and ``datalad push`` then
    copies only the annexed files it matches.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sh(["git", "init", "--quiet", "--bare", str(path)])
    sh(["git", "annex", "init", "--quiet", "team repository"], cwd=path)
    sh(["git", "annex", "wanted", ".", wanted], cwd=path)
    return path


def clone_challenge(url: str | Path, path: Path, inputs: str = "inputs/test") -> Path:
    sh(["datalad", "clone", str(url), str(path)])
    sh(["datalad", "get", "--recursive", inputs], cwd=path)
    return path


def record_prediction(
    clone: Path,
    *,
    container: str = "jc-env",
    inputs: str = "inputs/test",
    outputs: str = "predictions",
    command: str = "python code/predict.py {inputs} {outputs}",
    files: Mapping[str, str | Path] | None = None,
    message: str = "My solution",
) -> None:
    """Change the code, save it, and record the prediction run with ``datalad containers-run``."""
    for rel, content in (files or {}).items():
        target = clone / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)
    if files:
        sh(["datalad", "save", "-m", message], cwd=clone)
    sh(["datalad", "containers-run", "-n", container, "--input", inputs, "--output", outputs, command],
       cwd=clone)


def push_submission(clone: Path, team_repository: Path | str, branch: str, remote: str = "team") -> str:
    """Push the current head as ``branch`` to the team's repository; return the commit."""
    remotes = sh(["git", "remote"], cwd=clone).split()
    if remote not in remotes:
        # --fetch: the clone learns the repository's wanted expression before the first push,
        # which would otherwise copy every annexed file present here, the challenge image included
        sh(["datalad", "siblings", "add", "-s", remote, "--url", str(team_repository), "--fetch"], cwd=clone)
    current = sh(["git", "branch", "--show-current"], cwd=clone).strip()
    if current != branch:
        sh(["git", "checkout", "-q", "-B", branch], cwd=clone)
    sh(["datalad", "push", "--to", remote], cwd=clone)
    return sh(["git", "rev-parse", "HEAD"], cwd=clone).strip()


def make_key(path: Path, comment: str) -> Path:
    """An SSH key pair for signing (``path`` and ``path.pub``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def configure_signing(clone: Path, key: Path) -> None:
    """The git configuration of docs/signing.md: sign every commit and tag with ``key``."""
    for name, value in (("gpg.format", "ssh"), ("user.signingkey", str(key)), ("commit.gpgsign", "true"),
                        ("tag.gpgsign", "true")):
        sh(["git", "config", name, value], cwd=clone)

"""The docs work word for word: the shell blocks of docs/organizers.md (as root) and
docs/participants.md (as a participant's own non-root account) run in order, against a fresh
challenge made by the docs' own commands, so the docs cannot drift from the code.

Which blocks run: every block fenced as ```sh or ```bash. A block right after a line beginning
``<!-- not run by tests/test_docs.py`` (the rest of the comment says why) is illustrative and
skipped; other fences (```text, ```yaml, plain ```) never run. Each person has a terminal of
their own: blocks run one after another in it, keeping the working folder and the variables
(``set -a``), as when a reader pastes them.

What the test changes, and only this (each change must still find its text in the docs):

- the machine's shared folder ``/srv/jc`` becomes one under this test's temp folder;
- ``jc challenge new`` gets the small test image and data (``--image`` etc.), never the full one;
- the human steps between the commands: the participant edits ``code/predict.py`` (a numpy-only
  solution, as the test image has no scikit-image) and sends the public key to the organizer.

The participant is the account ``ada`` (created when missing, removed afterwards), with a HOME
and a git identity of its own and the project's tools on PATH; root's HOME is a 0700 folder, as
root's home is on most machines.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATA = Path(__file__).parent / "data"
SKIP = "<!-- not run by tests/test_docs.py"
RUN_FENCES = {"sh", "bash"}
PARTICIPANT = "ada"
SHARED = "/srv/jc"

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                             reason="runs organizers.md as root and participants.md as another user (runuser)")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  #: line of the opening fence, 1-based
    section: str  #: the ``## `` heading above it ("" before the first)
    text: str
    run: bool

    def where(self) -> str:
        return f"docs/{self.doc}:{self.line} ({self.section or 'top'})"


_FENCE = re.compile(r"^```(\w*)\s*$")


def shell_blocks(doc: str) -> list[Block]:
    """Every fenced block of ``docs/<doc>`` with a shell language, in order."""
    lines = (DOCS / doc).read_text().splitlines()
    blocks: list[Block] = []
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line)
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"docs/{doc}:{i + 1}: a fence that is never closed"
        if fence.group(1) in RUN_FENCES:
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            blocks.append(Block(doc, i + 1, section, "\n".join(lines[i + 1:end]) + "\n",
                                run=not before.startswith(SKIP)))
        i = end + 1
    return blocks


def test_shell_blocks_parser():
    """The block reader itself: sections, languages, the skip mark."""
    blocks = shell_blocks("organizers.md")
    assert blocks and all(b.doc == "organizers.md" for b in blocks)
    assert not blocks[0].run and "make demo" in blocks[0].text  # marked: it sets up the machine
    assert any(b.run and b.text.startswith("jc challenge new ") for b in blocks)
    assert all("```" not in b.text for b in blocks)


# -- the participant's account and tools -----------------------------------------------------------


@pytest.fixture(scope="module")
def participant() -> Iterator[str]:
    """The participant's own account (not root), created for the test when missing."""
    try:
        pwd.getpwnam(PARTICIPANT)
        created = False
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", PARTICIPANT], check=True)
        created = True
    try:
        yield PARTICIPANT
    finally:
        if created:
            subprocess.run(["userdel", PARTICIPANT], check=False)


def _as_participant(user: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *args], capture_output=True, text=True)


def jc_version() -> str:
    from importlib.metadata import version

    return version("jc-datalad")


def tools_for(user: str, folder: Path) -> Path:
    """A bin folder with this project's tools that ``user`` can run.

    The project's environment serves when the user can run its interpreter. When that
    interpreter sits in a folder only root enters (a pyenv under /root), a small environment of
    the system's Python of the same version loads the project's packages (read-only) instead.
    """
    venv_bin = Path(sys.executable).parent
    if _as_participant(user, str(venv_bin / "python"), "-c", "import datalad, jc_datalad").returncode == 0:
        return venv_bin
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(f"python{version}", path="/usr/bin:/usr/local/bin:/bin")
    if system is None:
        pytest.skip(f"{user} cannot run {sys.executable}, and there is no system python{version} to stand in")
    import sysconfig

    purelib = sysconfig.get_paths()["purelib"]
    if _as_participant(user, "test", "-r", f"{purelib}/jc_datalad-{jc_version()}.dist-info/METADATA").returncode:
        pytest.skip(f"{user} cannot read this checkout's packages ({purelib}): the checkout lies under a folder "
                    "other users cannot enter (a 0700 home or mktemp -d folder); clone it elsewhere to test as a "
                    "non-root participant")
    env = folder / "participant-env"
    subprocess.run([system, "-m", "venv", "--without-pip", str(env)], check=True)

    (next(env.glob("lib/python*/site-packages")) / "jc_project.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    for tool in venv_bin.iterdir():
        target = env / "bin" / tool.name
        if target.exists() or not tool.is_file():
            continue
        head = tool.read_bytes()[:200].split(b"\n", 1)[0]
        if head.startswith(b"#!") and b"python" in head:  # console scripts: run by the stand-in
            body = tool.read_bytes().split(b"\n", 1)[1]
            target.write_bytes(b"#!" + str(env / "bin" / "python").encode() + b"\n" + body)
            target.chmod(0o755)
        else:
            target.symlink_to(tool)
    subprocess.run(["chmod", "-R", "a+rX", str(env)], check=True)
    probe = _as_participant(user, str(env / "bin" / "python"), "-c", "import datalad, jc_datalad")
    assert probe.returncode == 0, f"the participant's stand-in environment does not work: {probe.stderr}"
    return env / "bin"


# -- terminals ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terminal:
    """One person's shell: the working folder and the variables live on between blocks."""

    user: str | None  #: None: root
    state: Path

    def run(self, block: Block, text: str, timeout: float = 900) -> None:
        script = (f'set -a\numask 022\ncd "$(cat {self.state}/cwd)"\n. {self.state}/env\n'
                  f"{text}\npwd > {self.state}/cwd\nexport -p > {self.state}/env\n")
        argv = ["env", "-i", "bash", "--noprofile", "--norc", "-e", "-c", script]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr)[-4000:]
            pytest.fail(f"{block.where()} failed (exit {proc.returncode}) as {self.user or 'root'}:\n"
                        f"{text}\n--- output (end) ---\n{output}", pytrace=False)

    def cwd(self) -> Path:
        return Path((self.state / "cwd").read_text().strip())


def terminal(state: Path, home: Path, path: str, user: str | None) -> Terminal:
    state.mkdir(parents=True)
    (state / "cwd").write_text(f"{home}\n")
    env = {"HOME": str(home), "PATH": path, "USER": user or "root", "LOGNAME": user or "root",
           "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1"}
    (state / "env").write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))
    name = user or "organizer"
    (home / ".gitconfig").write_text(f"[user]\n\tname = {name}\n\temail = {name}@jc-datalad.invalid\n")
    if user:
        shutil.chown(home, user)
        shutil.chown(home / ".gitconfig", user)
        shutil.chown(state, user)
        for f in ("cwd", "env"):
            shutil.chown(state / f, user)
    home.chmod(0o700)
    return Terminal(user, state)


# -- the walkthrough -----------------------------------------------------------------------------------

#: (doc, first section, section to stop before): who does what, in the order it happens
SCENARIO = [
    ("organizers.md", None, "2."),      # create, check and publish the challenge
    ("participants.md", None, "3."),    # clone, get the data, make a key and send it
    ("organizers.md", "2.", "3."),      # register team alpha with that key
    ("participants.md", "3.", None),    # work, record, check, score, push
    ("organizers.md", "3.", None),      # evaluate, reproduce, build the site, end the phase
]


def _part(blocks: list[Block], first: str | None, stop: str | None) -> list[Block]:
    out, started = [], first is None
    for b in blocks:
        if first is not None and b.section.startswith(first):
            started = True
        if stop is not None and b.section.startswith(stop):
            break
        if started and b.run:
            out.append(b)
    return out


@AS_ROOT
def test_runner_reads_repositories_other_users_own(work, participant):
    """organizers.md: a team repository belongs to the team's account; the runner's git reads it
    (git alone refuses: "detected dubious ownership")."""
    from jc_datalad.gitutil import git

    repo = work / "alpha.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "symbolic-ref", "HEAD", "refs/heads/submission-1"], check=True)
    subprocess.run(["chown", "-R", participant, str(repo)], check=True)
    plain = subprocess.run(["git", "ls-remote", str(repo)], capture_output=True, text=True,
                           env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(work)})
    assert plain.returncode != 0 and "dubious ownership" in plain.stderr  # what the runner must get past
    assert git(["ls-remote", str(repo)]).returncode == 0


@pytest.mark.slow
@AS_ROOT
def test_docs_word_for_word(work, minimal_image, participant):
    base = work / "docs"
    base.mkdir()
    shared = base / SHARED.strip("/")
    rewrites = {
        "organizers.md": [
            (SHARED, str(shared)),
            ("jc challenge new bacteria ~/challenges --id bacteria-2027",
             f"jc challenge new bacteria ~/challenges --id bacteria-2027 --image {minimal_image}"
             " --items 2 --hidden-items 4 --frames 2 --pixels 48"),
        ],
        "participants.md": [(SHARED, str(shared))],
    }
    blocks = {doc: shell_blocks(doc) for doc in rewrites}
    for doc, pairs in rewrites.items():
        for old, _new in pairs:
            assert any(old in b.text for b in blocks[doc] if b.run), f"docs/{doc} no longer has {old!r}"
    scheduled = [b for doc, first, stop in SCENARIO for b in _part(blocks[doc], first, stop)]
    runnable = [b for doc in blocks for b in blocks[doc] if b.run]
    assert sorted(scheduled, key=Block.where) == sorted(runnable, key=Block.where), \
        "every runnable block of both docs runs exactly once: update SCENARIO for new sections"

    organizer_home, participant_home = base / "root-home", base / "ada-home"
    organizer_home.mkdir()
    participant_home.mkdir()
    base.chmod(0o755)
    tools = tools_for(participant, base)
    organizer = terminal(base / "organizer-terminal", organizer_home,
                         f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         None)
    ada = terminal(base / "ada-terminal", participant_home, f"{tools}:/usr/local/bin:/usr/bin:/bin", participant)
    terminals = {"organizers.md": organizer, "participants.md": ada}

    for doc, first, stop in SCENARIO:
        if doc == "organizers.md" and first == "2.":
            # the participant sends the public key ("2. Sign your commits"); the organizer saves it
            shutil.copyfile(participant_home / ".ssh" / "id_ed25519.pub", organizer.cwd() / "ada.pub")
        for block in _part(blocks[doc], first, stop):
            text = block.text
            for old, new in rewrites[doc]:
                text = text.replace(old, new)
            if doc == "participants.md" and text.startswith("datalad save"):
                # the participant's edit ("3. Work"): numpy only, as the test image has no scikit-image
                target = ada.cwd() / "code" / "predict.py"
                shutil.copyfile(DATA / "threshold_predict.py", target)
                shutil.chown(target, participant)
            terminals[doc].run(block, text)

    # what the docs promise came true: the signed submission was evaluated, the phase ended early
    import json

    results = organizer_home / "challenges" / "bacteria-2027-results"
    records = [json.loads(p.read_text()) for p in sorted((results / "evaluations").glob("*/record.json"))]
    assert [(r["team"], r["status"]) for r in records] == [("alpha", "evaluated")], records
    assert (results / "standings" / "development-final.json").is_file()
    assert (organizer_home / "challenges" / "site" / "index.html").is_file()
    # the team repository holds the team's work, not the challenge's image (61 MB here)
    team_repo = shared / "teams" / "alpha.git"
    size = sum(f.stat().st_size for f in team_repo.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 5_000_000, f"{team_repo} holds {size} bytes after the participant's push"

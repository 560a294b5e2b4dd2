"""Running git and git-annex on repositories a participant controls.

Every call gets a locked-down environment: no system or global config that a
participant could influence, only the organizer's transports, no prompts, no
hooks, and no submodule recursion.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from jc_datalad.errors import JcError

#: Transports git may use for participant repositories unless the organizer adds more.
DEFAULT_PROTOCOLS = ("file",)

_IDENTITY = {
    "GIT_AUTHOR_NAME": "jc-datalad runner",
    "GIT_AUTHOR_EMAIL": "runner@jc-datalad.invalid",
    "GIT_COMMITTER_NAME": "jc-datalad runner",
    "GIT_COMMITTER_EMAIL": "runner@jc-datalad.invalid",
}


class GitError(JcError):
    """A git command failed; the message holds the command and git's own words."""


def ensure_identity() -> None:
    """Prepare the process for git and DataLad.

    git-annex comes with the Python environment (PyPI's git-annex); DataLad finds it only on
    PATH, so the interpreter's bin folder goes there. Git gets an identity when the machine
    has none, so commits never fail on a fresh machine.
    """
    os.environ["PATH"] = env_with_annex_on_path()["PATH"]
    probe = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True)
    if probe.returncode != 0 and "GIT_AUTHOR_EMAIL" not in os.environ:
        for key, value in _IDENTITY.items():
            os.environ.setdefault(key, value)


def safe_env(protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Environment for git on untrusted repositories."""
    env = {k: v for k, v in env_with_annex_on_path().items() if not k.startswith("GIT_") or k in _IDENTITY}
    env.update(
        GIT_ALLOW_PROTOCOL=":".join(protocols),
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_PROTOCOL_FROM_USER="0",
        # a participant's hooks never exist in our clones, but make sure no template adds any
        GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="core.hooksPath",
        GIT_CONFIG_VALUE_0="/dev/null",
        GIT_CONFIG_KEY_1="submodule.recurse",
        GIT_CONFIG_VALUE_1="false",
    )
    for key, value in _IDENTITY.items():
        env.setdefault(key, value)
    return env


def git(
    args: Sequence[str],
    cwd: Path | str | None = None,
    *,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    check: bool = True,
    binary: bool = False,
    input: bytes | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``git ARGS`` with :func:`safe_env`; raise :class:`GitError` on failure when ``check``."""
    cmd = ["git", *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=safe_env(protocols),
        capture_output=True,
        input=input,
        text=not binary,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise GitError(f"`{' '.join(cmd)}` failed in {cwd}: {err.strip()[-800:]}")
    return proc


def git_out(args: Sequence[str], cwd: Path | str | None = None, **kwargs) -> str:
    return str(git(args, cwd, **kwargs).stdout).strip()


def read_blobs(repo: Path, objects: Sequence[str]) -> list[bytes]:
    """The content of each object, in order, with one ``git cat-file --batch`` (nothing checked out)."""
    if not objects:
        return []
    out = git(["cat-file", "--batch"], repo, binary=True, input="".join(f"{o}\n" for o in objects).encode()).stdout
    contents = []
    pos = 0
    for _ in objects:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        contents.append(out[header_end + 1:header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return contents


def env_with_annex_on_path() -> dict[str, str]:
    """``git annex`` needs git-annex on PATH; add the venv's bin when it is not."""
    import sys

    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def ls_remote_heads(url: str, protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Branch name -> head commit of a remote repository."""
    out = git_out(["ls-remote", "--heads", url], protocols=protocols, timeout=120)
    heads: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref[len("refs/heads/"):]] = sha
    return heads


def ls_remote_tags(url: str, protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Tag name -> the commit it points to (annotated tags peeled)."""
    out = git_out(["ls-remote", "--tags", url], protocols=protocols, timeout=120)
    tags: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref[len("refs/tags/"):]
        if name.endswith("^{}"):
            tags[name[:-3]] = sha  # the peeled commit wins over the tag object
        else:
            tags.setdefault(name, sha)
    return tags


def annex_key_of_link(target: str) -> str:
    """The annex key named by a symlink target (its last path component)."""
    return target.rstrip("/").rsplit("/", 1)[-1]

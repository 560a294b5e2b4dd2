"""Running git and git-annex on repositories a participant controls.

Every call gets a locked-down environment: no system or global config that a
participant could influence, only the organizer's transports, no prompts, no
hooks, and no submodule recursion.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jc_datalad.errors import JcError

#: Transports git may use for participant repositories unless the organizer adds more.
DEFAULT_PROTOCOLS = ("file",)

lgr = logging.getLogger(__name__)

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


_TRUST = "[safe]\n\tdirectory = *\n"


def _trust_config() -> Path:
    """A git config file that holds only ``safe.directory = *`` (made once per process).

    Team repositories belong to the teams' own users; git refuses to read a repository that
    another user owns ("detected dubious ownership"), and git before 2.46 takes
    ``safe.directory`` only from the system or global config, never from ``-c``. This file
    stands in for the machine's system config, which stays out as before. What makes a
    participant's repository safe to read is the rest of this environment (no hooks, no
    submodule recursion, the organizer's transports), not its owner.
    """
    global _trust_path
    if _trust_path is None or not _trust_path.is_file():
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="jc-datalad-git-"))
        folder.chmod(0o755)  # git run as another uid (sandbox, team accounts) reads it too
        path = folder / "config"
        path.write_text(_TRUST)
        path.chmod(0o644)
        _trust_path = path
    return _trust_path


_trust_path: Path | None = None


def safe_env(protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Environment for git on untrusted repositories."""
    env = {k: v for k, v in env_with_annex_on_path().items() if not k.startswith("GIT_") or k in _IDENTITY}
    env.update(
        GIT_ALLOW_PROTOCOL=":".join(protocols),
        GIT_TERMINAL_PROMPT="0",
        # in place of the machine's system config: only safe.directory (see _trust_config)
        GIT_CONFIG_SYSTEM=str(_trust_config()),
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
    input: bytes | str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``git ARGS`` with :func:`safe_env`; raise :class:`GitError` on failure when ``check``."""
    cmd = ["git", *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=safe_env(protocols),
            capture_output=True,
            input=input,
            text=not binary,
            # git prints names as the bytes it found: text output never fails to decode, and odd
            # bytes come back as surrogates that printable() turns into escapes
            encoding=None if binary else "utf-8",
            errors=None if binary else "surrogateescape",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        # a GitError, so a stalled transfer is one submission's error with a reason, not an internal one
        where = f" in {cwd}" if cwd else ""
        raise GitError(f"`{' '.join(cmd)}` took longer than {timeout:g} s{where}; stopped") from None
    if check and proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        where = f" in {cwd}" if cwd else ""
        raise GitError(f"`{' '.join(cmd)}` failed{where}: {err.strip()[-800:]}")
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


#: A commit id as ls-remote prints it (SHA-1 or SHA-256 object format).
_OBJECT_ID = re.compile(rb"^([0-9a-f]{40}|[0-9a-f]{64})$")
#: Longest ref name (after refs/heads/ or refs/tags/) the runner accepts; git's own limit is the file system's.
MAX_REF_NAME_BYTES = 255
#: Branches (and tags) of one team repository the runner considers; each costs admission work every pass.
MAX_REFS = 1000


@dataclass(frozen=True)
class RemoteRefs:
    """The refs of one kind in a remote repository, and those refused at the boundary.

    ``refs``: name -> commit, names valid UTF-8 text that git itself would accept.
    ``refused``: one line per refused ref, naming it in a printable form and why.
    """

    refs: dict[str, str]
    refused: tuple[str, ...] = ()


def printable(raw: bytes | str, limit: int = 200) -> str:
    """A name from a submission as safe text for messages, records and pages.

    Bytes that are not UTF-8 and control characters are written as ``\\xNN``
    escapes (a ``str`` decoded with ``surrogateescape`` gets back its bytes first),
    and a long name is cut to ``limit`` characters with an ellipsis.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that no bytes decoded to (from JSON, say)
            data = raw.encode("utf-8", "backslashreplace")
    else:
        data = raw
    text = data.decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ref_name_problem(name: bytes) -> str | None:
    """Why the ref name ``name`` (bytes after ``refs/heads/`` or ``refs/tags/``) is refused; None if fine.

    Names must be UTF-8 text and follow git's own rules (``git check-ref-format``), so
    a name read from a repository whose ref files were written by hand is held to them too.
    """
    if len(name) > MAX_REF_NAME_BYTES:
        return f"is longer than {MAX_REF_NAME_BYTES} bytes"
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    if not text or any(ord(c) < 0x20 or c in "\x7f ~^:?*[\\" for c in text):
        return "holds a space, control character or one of ~^:?*[\\"
    parts = text.split("/")
    if (any(p == "" or p.startswith(".") or p.endswith(".lock") for p in parts)
            or ".." in text or "@{" in text or text.endswith(".") or text == "@"):
        return "breaks git's ref name rules (see `git check-ref-format`)"
    return None


def check_team_repository(url: str) -> None:
    """Refuse a repository on this machine that borrows objects from elsewhere.

    The runner reads team repositories that other users own (``safe.directory``). A repository
    whose ``objects/info/alternates`` names another repository on this machine would let git,
    running as the runner's user, serve objects from a repository its owner cannot read.
    """
    if "://" in url and not url.startswith("file://"):
        return
    if ":" in url.split("/", 1)[0] and not url.startswith("file://"):
        return  # scp-like host:path
    root = Path(url.removeprefix("file://"))
    for objects in (root / "objects", root / ".git" / "objects"):
        for name in ("alternates", "http-alternates"):
            if os.path.lexists(objects / "info" / name):
                raise GitError(f"{url}: the repository borrows objects from elsewhere "
                               f"({objects / 'info' / name}); the runner reads only a team's own objects: "
                               "remove that file (`git repack -a -d` first keeps every object)")


def ls_remote(url: str, kind: str, protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> RemoteRefs:
    """Branches (``kind="heads"``) or tags (``"tags"``, annotated ones peeled) of a remote repository.

    git prints ref names as the bytes it found; they are read as bytes and a name
    that is not valid text is refused here, so that one odd name never stops a pass.
    """
    if kind not in ("heads", "tags"):
        raise ValueError(f"kind {kind!r}: 'heads' or 'tags'")
    check_team_repository(url)
    out = git(["ls-remote", f"--{kind}", url], protocols=protocols, timeout=120, binary=True).stdout
    prefix = f"refs/{kind}/".encode()
    refs: dict[str, str] = {}
    refused: list[str] = []
    for line in out.split(b"\n"):
        sha, _, ref = line.partition(b"\t")
        if not ref.startswith(prefix):
            continue
        raw = ref[len(prefix):]
        peeled = kind == "tags" and raw.endswith(b"^{}")
        if peeled:
            raw = raw[:-3]
        problem = ref_name_problem(raw)
        if problem is None and not _OBJECT_ID.match(sha):
            problem = f"points to '{printable(sha, 80)}', not a commit id"
        if problem is not None:
            shown = f"{kind[:-1] if kind == 'tags' else 'branch'} '{printable(raw)}' {problem}; it is ignored, rename it"
            if shown not in refused:
                refused.append(shown)
                lgr.warning("%s: %s", url, shown)
            continue
        name = raw.decode("utf-8")
        if peeled:
            refs[name] = sha.decode("ascii")  # the peeled commit wins over the tag object
        else:
            refs.setdefault(name, sha.decode("ascii"))
    if len(refs) > MAX_REFS:
        kept = sorted(refs)[:MAX_REFS]
        what = "branches" if kind == "heads" else "tags"
        refused.append(f"{len(refs) - MAX_REFS} {what} beyond the first {MAX_REFS} (by name) are ignored; "
                       "delete the ones you no longer need")
        lgr.warning("%s: %s", url, refused[-1])
        refs = {name: refs[name] for name in kept}
    return RemoteRefs(refs, tuple(refused))


def ls_remote_heads(url: str, protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Branch name -> head commit of a remote repository; branches with refused names are left out."""
    return ls_remote(url, "heads", protocols).refs


def ls_remote_tags(url: str, protocols: Sequence[str] = DEFAULT_PROTOCOLS) -> dict[str, str]:
    """Tag name -> the commit it points to (annotated tags peeled); tags with refused names are left out."""
    return ls_remote(url, "tags", protocols).refs


def annex_key_of_link(target: str) -> str:
    """The annex key named by a symlink target (its last path component)."""
    return target.rstrip("/").rsplit("/", 1)[-1]

"""A version of the hidden data: the private dataset's split datasets as they were at one commit.

Rescoring scores stored predictions against the labels their evaluation was scored
against (the labels commit in its record), and ``jc runner rerun --hidden-version``
evaluates against the hidden inputs and labels that one commit of the private dataset
pins. Both read the files of a commit from git's object store and git-annex's content
(``git annex contentlocation``), never from a checkout, so the organizer's working
copies stay as they are. See docs/reproduce.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jc_datalad import sandbox
from jc_datalad.errors import JcError
from jc_datalad.gitutil import GitError, git, git_out

#: Names of a dataset's own files, never part of the data (stage_inputs leaves them out too).
_OWN = frozenset({".git", ".datalad", ".gitattributes", ".gitmodules", ".gitignore"})


@dataclass(frozen=True)
class SplitVersion:
    """The hidden inputs and labels of one split at one commit of the private dataset."""

    split: str
    private_commit: str
    inputs_id: str
    inputs_commit: str
    labels_id: str
    labels_commit: str


def resolve_commit(repo: Path, rev: str) -> str:
    """The full commit ``rev`` names in ``repo``; an error naming the fix when there is none."""
    if rev.startswith("-") or not rev.strip():
        raise JcError(f"{rev!r} is not a commit of {repo}")
    try:
        return git_out(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo)
    except GitError:
        raise JcError(f"{rev!r} is not a commit of {repo}; give a commit of the private dataset "
                      "(`git -C PRIVATE log --oneline`)") from None


def _gitlink(repo: Path, commit: str, path: str) -> str:
    out = git_out(["ls-tree", commit, "--", path], repo, check=False)
    mode, kind, sha = (out.split(None, 3) + ["", "", ""])[:3]
    if kind != "commit":
        raise JcError(f"{repo}: at commit {commit[:12]}, {path} is not a subdataset; "
                      "the hidden inputs and labels of each split are subdatasets of the private dataset")
    return sha


def _dataset_id(dataset: Path, commit: str) -> str:
    proc = git(["show", f"{commit}:.datalad/config"], dataset, check=False)
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        key, _, value = line.partition("=")
        if key.strip() == "id":
            return value.strip()
    return ""


def split_version(private: Path, split: str, rev: str) -> SplitVersion:
    """The versions of ``hidden/<split>/inputs`` and ``labels`` that commit ``rev`` of the private dataset pins."""
    commit = resolve_commit(private, rev)
    base = f"hidden/{split}"
    inputs, labels = _gitlink(private, commit, f"{base}/inputs"), _gitlink(private, commit, f"{base}/labels")
    for name, sha in (("inputs", inputs), ("labels", labels)):
        if git(["cat-file", "-e", f"{sha}^{{commit}}"], private / base / name, check=False).returncode:
            raise JcError(f"{private / base / name}: commit {sha[:12]} (pinned by {commit[:12]}) is not there; "
                          "`datalad get -n` or update that subdataset")
    return SplitVersion(split, commit, _dataset_id(private / base / "inputs", inputs), inputs,
                        _dataset_id(private / base / "labels", labels), labels)


def _entries(repo: Path, commit: str, recursive: bool) -> Iterator[tuple[str, str, str]]:
    """(mode, blob, path) of each file of ``commit``, dataset files and folders left out."""
    args = ["ls-tree", "-z", *(["-r"] if recursive else []), commit]
    for entry in git(args, repo).stdout.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        if kind != "blob" or path.split("/", 1)[0] in _OWN or path.rsplit("/", 1)[-1] in _OWN:
            continue
        yield mode, sha, path


def items_at(repo: Path, commit: str) -> tuple[str, ...]:
    """The item names (top-level files, not hidden) of a labels dataset at ``commit``."""
    return tuple(sorted(p for _, _, p in _entries(repo, commit, False) if not p.startswith(".")))


def _content(repo: Path, mode: str, sha: str, path: str) -> Path | bytes:
    blob = git(["cat-file", "blob", sha], repo, binary=True).stdout
    # a locked annexed file is a link to its key; an unlocked one a pointer file "/annex/objects/KEY"
    pointer = mode != "120000" and len(blob) < 1024 and blob.startswith(b"/annex/objects/")
    if mode != "120000" and not pointer:
        return bytes(blob)
    key = os.path.basename(blob.decode("utf-8", "replace").strip())
    proc = git(["annex", "contentlocation", key], repo, check=False)
    where = proc.stdout.strip()
    if proc.returncode or not where:
        raise JcError(f"{repo / path}: the annexed content of this version ({key}) is not here; "
                      f"`git -C {repo} annex get --key {key}` (or `datalad get`) first")
    return repo / where


def materialize(repo: Path, commit: str, dest: Path, *, recursive: bool = True,
                names: tuple[str, ...] | None = None) -> Path:
    """Copy the files of ``commit`` of ``repo`` into ``dest`` once, as regular files readable by the sandbox.

    ``dest`` names the version (it holds the commit): an existing copy is used as it is.
    ``names``: only these top-level files (the items); default every file.
    """
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
    try:
        wanted = None if names is None else set(names)
        for mode, sha, path in _entries(repo, commit, recursive):
            if wanted is not None and path not in wanted:
                continue
            target = tmp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            content = _content(repo, mode, sha, path)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        sandbox.make_readable(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # another caller was first: its copy is the same
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sandbox.make_readable(dest)
    return dest


def version_key(inputs_commit: str, labels_commit: str) -> str:
    """A short name of a hidden-data version: the inputs and labels commits it consists of."""
    both = hashlib.sha256(f"{inputs_commit}\0{labels_commit}".encode()).hexdigest()
    return both[:12]

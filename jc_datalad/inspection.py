"""Inspect a submission before anything of it is checked out or run.

Everything here reads git objects of a clone made without checkout: the
changes between the challenge commit a submission builds on (``base``) and its
head. A submission is refused when it changes a protected path, adds a
submodule, carries a symlink that does not point into the annex, an annex key
without a checksum backend, or a file over the size limit.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from jc_datalad.gitutil import git, git_out, read_blobs
from jc_datalad.spec import ChallengeSpec

RUNINFO_DIR = ".datalad/runinfo"
#: Annex backends whose keys are checksums of the content.
CHECKSUM_BACKENDS = re.compile(r"^(SHA(1|224|256|384|512)|SHA3_(224|256|384|512)|SKEIN(256|512)|BLAKE2[A-Z]*\d*|MD5)E?$")
_KEY = re.compile(r"^(?P<backend>[A-Z0-9_]+)(-s(?P<size>\d+))?(-[a-zA-Z]\d+)*--(?P<name>.+)$")


@dataclass(frozen=True)
class AnnexLink:
    path: str
    key: str
    size: int


@dataclass(frozen=True)
class Inspection:
    """What a submission changes, and why it is refused, if it is."""

    base: str
    head: str
    changed: tuple[str, ...]
    annexed: tuple[AnnexLink, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_key(key: str) -> tuple[str, int | None]:
    """Backend and size of an annex key; raise ValueError for something that is not a key."""
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"not an annex key: {key}")
    size = m.group("size")
    return m.group("backend"), int(size) if size else None


def annex_target_key(path: str, target: str) -> str | None:
    """The key when ``target`` (a symlink at ``path``) points into ``.git/annex/objects``; else None."""
    if target.startswith("/"):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    parts = PurePosixPath(resolved).parts
    if len(parts) < 5 or parts[:3] != (".git", "annex", "objects") or ".." in parts:
        return None
    key = parts[-1]
    if parts[-2] != key:
        return None
    return key


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def merge_base(repo: Path, a: str, b: str) -> str | None:
    proc = git(["merge-base", a, b], repo, check=False)
    return proc.stdout.strip() or None


def inspect_submission(repo: Path, base: str, head: str, spec: ChallengeSpec) -> Inspection:
    """Check the changes ``base..head`` of a clone at ``repo`` against the challenge's rules."""
    problems: list[str] = []
    raw = git(["diff", "--no-renames", "--no-ext-diff", "--raw", "--no-abbrev", "-z", base, head], repo, binary=True).stdout
    fields = raw.decode("utf-8", errors="surrogateescape").split("\0")
    changes: list[tuple[str, str, str, str]] = []  # (status, new mode, new sha, path)
    i = 0
    while i < len(fields) - 1:
        meta, path = fields[i], fields[i + 1]
        i += 2
        if not meta.startswith(":"):
            continue
        _old_mode, new_mode, _old_sha, new_sha, status = meta[1:].split(" ")
        changes.append((status, new_mode, new_sha, path))

    annexed: list[AnnexLink] = []
    blobs: dict[str, str] = {}
    for status, mode, sha, path in changes:
        top = PurePosixPath(path).parts[0]
        in_runinfo = _under(path, RUNINFO_DIR) and status == "A"
        if top in spec.denied_paths and not in_runinfo:
            problems.append(f"{path}: changes a protected path ({top}/ belongs to the challenge); revert it")
            continue
        if status == "D":
            continue
        if mode == "160000":
            problems.append(f"{path}: adds or changes a subdataset/submodule; submissions may not")
        elif mode == "120000":
            blobs[path] = sha
        elif mode not in ("100644", "100755"):
            problems.append(f"{path}: unsupported file mode {mode}")
        else:
            blobs[path] = sha

    if blobs:
        sizes = _object_sizes(repo, list(blobs.values()))
        links = _read_links(repo, [blobs[p] for p, _ in _modes(changes, "120000")])
        regenerated = spec.interface.outputs
        for path, _ in _modes(changes, "120000"):
            if path not in blobs or _under(path, regenerated):
                # the runner regenerates the output folder; what was committed there is never read
                continue
            target = links.get(blobs[path], "")
            key = annex_target_key(path, target)
            if key is None:
                problems.append(f"{path}: symlink to '{target}' does not point into the annex; refused")
                continue
            try:
                backend, size = parse_key(key)
            except ValueError:
                problems.append(f"{path}: '{key}' is not a valid annex key")
                continue
            if not CHECKSUM_BACKENDS.match(backend):
                problems.append(f"{path}: annex key backend {backend} is not a checksum; re-add with SHA256E")
            elif size is None:
                problems.append(f"{path}: annex key without a size; re-add with SHA256E")
            elif size > spec.submission.max_file_bytes:
                problems.append(f"{path}: {size} bytes exceeds the {spec.submission.max_file_bytes}-byte file limit")
            else:
                annexed.append(AnnexLink(path, key, size))
        for path, _ in _modes(changes, "100644") + _modes(changes, "100755"):
            if path in blobs and sizes.get(blobs[path], 0) > spec.submission.max_file_bytes:
                problems.append(
                    f"{path}: {sizes[blobs[path]]} bytes exceeds the {spec.submission.max_file_bytes}-byte file limit"
                )

    return Inspection(
        base=base,
        head=head,
        changed=tuple(c[3] for c in changes),
        annexed=tuple(annexed),
        problems=tuple(problems),
    )


def _modes(changes: list[tuple[str, str, str, str]], mode: str) -> list[tuple[str, str]]:
    return [(path, sha) for status, m, sha, path in changes if m == mode and status != "D"]


def _object_sizes(repo: Path, shas: list[str]) -> dict[str, int]:
    out = git(["cat-file", "--batch-check=%(objectname) %(objectsize)"], repo,
              input="\n".join(shas).encode() + b"\n", binary=True).stdout.decode()
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def _read_links(repo: Path, shas: list[str]) -> dict[str, str]:
    """Symlink targets (blob contents) by blob id, without checking anything out."""
    contents = read_blobs(repo, shas)
    return {sha: content.decode("utf-8", errors="replace") for sha, content in zip(shas, contents, strict=True)}


def commits_between(repo: Path, base: str, head: str) -> list[str]:
    """Commits in ``base..head``, oldest first."""
    out = git_out(["rev-list", "--reverse", "--topo-order", f"{base}..{head}"], repo)
    return out.split()

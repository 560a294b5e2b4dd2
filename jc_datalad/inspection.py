"""Inspect a submission before anything of it is checked out or run.

Everything here reads git objects of a clone made without checkout: the
changes between the challenge commit a submission builds on (``base``) and its
head. A submission is refused when it changes a protected path, adds a
submodule, carries a symlink that does not point into the annex, an annex key
without a checksum backend, a file over the size limit, a path that is not
UTF-8 text or nests too deep, or when its checkout as a whole (every file of
the head tree plus the annexed content it fetches) exceeds the totals.

Paths arrive as bytes: they are checked as bytes and shown through
:func:`jc_datalad.gitutil.printable`, so an odd name is a reason, never a crash.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import re
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jc_datalad.gitutil import GitError, git, git_out, printable, read_blobs, safe_env
from jc_datalad.spec import ChallengeSpec, ChallengeType

RUNINFO_DIR = ".datalad/runinfo"
#: Annex backends whose keys are checksums of the content.
CHECKSUM_BACKENDS = re.compile(r"^(SHA(1|224|256|384|512)|SHA3_(224|256|384|512)|SKEIN(256|512)|BLAKE2[A-Z]*\d*|MD5)E?$")
_KEY = re.compile(r"(?P<backend>[A-Z0-9_]+)(-s(?P<size>\d+))?(-[a-zA-Z]\d+)*--(?P<name>[^\x00-\x20/\x7f]+)")

# Bounds on the paths of a submission: a checkout deeper or longer than these fails in git or
# the file system, and a 2,100-deep tree made Python's recursive tree walks crash the pass.
#: folders a path may nest (an honest project nests a dozen)
MAX_PATH_DEPTH = 64
#: bytes of one path, relative to the dataset (PATH_MAX is 4096 including the work folder)
MAX_PATH_BYTES = 1024
#: bytes of one path component (NAME_MAX of Linux file systems)
MAX_NAME_BYTES = 255
# Totals for a checkout. challenge.yaml has no keys for them yet (``submission.max_checkout_size``
# and ``submission.max_files`` would be the ones); until then they derive from max_file_size.
#: the checkout may write this many times ``submission.max_file_size`` in all
CHECKOUT_FILE_FACTOR = 4
#: files, symlinks and folders of the head tree
MAX_CHECKOUT_FILES = 20_000
#: problems listed in one refusal; the rest are counted
MAX_PROBLEMS = 20


def checkout_limit(spec: ChallengeSpec) -> int:
    """Bytes a submission's checkout may write in all: blobs of the head tree plus fetched annexed content."""
    return CHECKOUT_FILE_FACTOR * spec.submission.max_file_bytes


def path_problem(path: str) -> str | None:
    """Why a path of a submission cannot be checked out safely; None when it can.

    ``path`` is git's bytes decoded with ``surrogateescape``.
    """
    raw = path.encode("utf-8", "surrogateescape")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "its name is not UTF-8 text; rename it"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "its name holds a control character (a newline, tab, ...); rename it"
    parts = path.split("/")
    if len(parts) - 1 > MAX_PATH_DEPTH:
        return f"it is nested {len(parts) - 1} folders deep; the limit is {MAX_PATH_DEPTH}"
    if len(raw) > MAX_PATH_BYTES:
        return f"the path is {len(raw)} bytes long; the limit is {MAX_PATH_BYTES}"
    if any(len(p.encode("utf-8")) > MAX_NAME_BYTES for p in parts):
        return f"a name in it is longer than {MAX_NAME_BYTES} bytes"
    return None


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
    checkout_bytes: int = 0  # every blob of the head tree plus the annexed content in ``annexed``
    checkout_files: int = 0  # entries of the head tree

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_key(key: str) -> tuple[str, int | None]:
    """Backend and size of an annex key; raise ValueError for something that is not a key."""
    m = _KEY.fullmatch(key)
    if not m:
        raise ValueError(f"not an annex key: {key}")
    size = m.group("size")
    return m.group("backend"), int(size) if size else None


def _hash_of(backend: str) -> Callable[[], Any] | None:
    """A hashlib constructor for an annex checksum backend (``E`` variants too); None if hashlib has none."""
    name = backend[:-1] if backend.endswith("E") else backend
    simple = {"MD5": "md5", "SHA1": "sha1", "SHA224": "sha224", "SHA256": "sha256", "SHA384": "sha384",
              "SHA512": "sha512", "SHA3_224": "sha3_224", "SHA3_256": "sha3_256", "SHA3_384": "sha3_384",
              "SHA3_512": "sha3_512"}
    if name in simple:
        return functools.partial(hashlib.new, simple[name])
    m = re.fullmatch(r"BLAKE2([BS])(\d+)", name)
    if m and int(m.group(2)) % 8 == 0:
        make = hashlib.blake2b if m.group(1) == "B" else hashlib.blake2s
        return functools.partial(make, digest_size=int(m.group(2)) // 8)
    return None


def verify_content(path: Path, key: str) -> str | None:
    """Why the file at ``path`` is not the content of annex ``key`` (size, then checksum); None if it is.

    git-annex checks content it fetches too; this check is the runner's own, made on
    the very file that the sandbox will see, whatever the annex configuration says.
    """
    try:
        backend, size = parse_key(key)
    except ValueError:
        return f"'{printable(key)}' is not a valid annex key"
    make = _hash_of(backend)
    if make is None:
        return f"annex backend {backend} cannot be checked by the runner; re-add the file with SHA256E"
    try:
        st = os.lstat(path)
    except OSError:
        return "content not in the team repository"
    if not stat.S_ISREG(st.st_mode):
        return "its annexed content is not a regular file"
    if size is not None and st.st_size != size:
        return f"its annexed content is {st.st_size} bytes, but its key says {size}"
    h = make()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    name = key.split("--", 1)[1]
    digest = h.hexdigest()
    rest = name[len(digest):]
    if not name.startswith(digest) or (rest and not (backend.endswith("E") and rest.startswith("."))):
        return f"its annexed content does not have the checksum its key names ({backend})"
    return None


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
    # counted first, from a stream: a tree of millions of entries is refused before any list of them is made
    blob_bytes, files = tree_totals(repo, head, MAX_CHECKOUT_FILES)
    if files > MAX_CHECKOUT_FILES:
        return Inspection(base=base, head=head, changed=(), annexed=(), checkout_files=files, problems=(
            f"the submission holds more than {MAX_CHECKOUT_FILES} files and folders; keep data out of the "
            "repository or pack it into a few files",))
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
            problems.append(f"{printable(path)}: changes a protected path ({printable(top)}/ belongs to the "
                            "challenge); revert it")
            continue
        if status == "D":
            continue
        odd = path_problem(path)
        if odd is not None:
            problems.append(f"{printable(path)}: {odd}")
            continue
        if mode == "160000":
            problems.append(f"{printable(path)}: adds or changes a subdataset/submodule; submissions may not")
        elif mode == "120000":
            blobs[path] = sha
        elif mode not in ("100644", "100755"):
            problems.append(f"{printable(path)}: unsupported file mode {mode}")
        else:
            blobs[path] = sha

    if blobs:
        sizes = _object_sizes(repo, list(blobs.values()))
        links = _read_links(repo, [blobs[p] for p, _ in _modes(changes, "120000")])
        # results challenges score the committed predictions themselves: their links are checked too
        regenerated = [] if spec.type is ChallengeType.RESULTS else [spec.interface.outputs]
        if spec.training is not None:  # the model folder is trained again; the committed one is never read
            regenerated.append(spec.training.model)
        for path, _ in _modes(changes, "120000"):
            if path not in blobs or any(_under(path, folder) for folder in regenerated):
                # the runner regenerates the output folder; what was committed there is never read
                continue
            target = links.get(blobs[path], "")
            key = annex_target_key(path, target)
            if key is None:
                problems.append(f"{printable(path)}: symlink to '{printable(target)}' does not point into the annex; "
                                "refused")
                continue
            try:
                backend, size = parse_key(key)
            except ValueError:
                problems.append(f"{printable(path)}: '{printable(key)}' is not a valid annex key")
                continue
            if not CHECKSUM_BACKENDS.match(backend):
                problems.append(f"{printable(path)}: annex key backend {backend} is not a checksum; re-add with SHA256E")
            elif size is None:
                problems.append(f"{printable(path)}: annex key without a size; re-add with SHA256E")
            elif size > spec.submission.max_file_bytes:
                problems.append(f"{printable(path)}: {size} bytes exceeds the {spec.submission.max_file_bytes}-byte "
                                "file limit")
            else:
                annexed.append(AnnexLink(path, key, size))
        for path, _ in _modes(changes, "100644") + _modes(changes, "100755"):
            if path in blobs and sizes.get(blobs[path], 0) > spec.submission.max_file_bytes:
                problems.append(
                    f"{printable(path)}: {sizes[blobs[path]]} bytes exceeds the "
                    f"{spec.submission.max_file_bytes}-byte file limit"
                )

    total = blob_bytes + sum(link.size for link in annexed)
    limit = checkout_limit(spec)
    if total > limit:
        problems.append(f"checking the submission out would write {total} bytes (files in git plus annexed "
                        f"content); the limit is {limit} ({CHECKOUT_FILE_FACTOR} x the file size limit)")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
    return Inspection(
        base=base,
        head=head,
        changed=tuple(c[3] for c in changes),
        annexed=tuple(annexed),
        problems=tuple(problems),
        checkout_bytes=total,
        checkout_files=files,
    )


def tree_totals(repo: Path, commit: str, max_entries: int) -> tuple[int, int]:
    """Bytes of all blobs and number of entries (files, links, folders) in ``commit``'s tree.

    Read as a stream and stopped after ``max_entries`` + 1 entries, so a tree of
    millions of entries costs no more than the limit to find out.
    """
    cmd = ["git", "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", commit]
    total = entries = 0
    rest = b""
    with subprocess.Popen(cmd, cwd=repo, env=safe_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(2**16), b""):  # type: ignore[union-attr]
            *done, rest = (rest + chunk).split(b"\0")
            for entry in done:
                meta = entry.partition(b"\t")[0].split()
                entries += 1
                if len(meta) == 4 and meta[1] == b"blob" and meta[3].isdigit():
                    total += int(meta[3])
            if entries > max_entries:
                proc.kill()
                break
    if proc.returncode not in (0, -9):
        raise GitError(f"`{' '.join(cmd)}` failed in {repo} (exit {proc.returncode})")
    return total, entries


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


#: commits between the challenge and a submission head whose messages are read
MAX_COMMITS = 10_000
#: bytes of one commit message (a run record is a few kB; the record itself is bounded in provenance)
MAX_MESSAGE_BYTES = 2**20 + 4096
#: bytes of all messages of one submission's history together
MAX_HISTORY_BYTES = 64 * 2**20


class HistoryError(ValueError):
    """A submission history the runner will not read; the message says which bound it breaks."""


def commits_between(repo: Path, base: str, head: str) -> list[str]:
    """Commits in ``base..head``, oldest first."""
    out = git_out(["rev-list", "--reverse", "--topo-order", f"{base}..{head}"], repo)
    return out.split()


def commit_messages(repo: Path, commits: list[str]) -> dict[str, str]:
    """Commit id -> message (as ``git log --format=%B`` gives it, which is what ``datalad rerun`` reads).

    One ``git log`` for all commits, read as a stream: a history of more than
    :data:`MAX_COMMITS` commits, a message over :data:`MAX_MESSAGE_BYTES`, all
    messages over :data:`MAX_HISTORY_BYTES`, or a message that is not UTF-8 text
    raises :class:`HistoryError` before more is read.
    """
    if len(commits) > MAX_COMMITS:
        raise HistoryError(f"{len(commits)} commits between the challenge and the head; the limit is "
                           f"{MAX_COMMITS}: squash your history")
    if not commits:
        return {}
    cmd = ["git", "log", "--stdin", "--no-walk=unsorted", "-z", "--format=%H%n%B"]
    messages: dict[str, str] = {}
    total = 0
    rest = b""
    problem = None
    with subprocess.Popen(cmd, cwd=repo, env=safe_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(f"{c}\n" for c in commits).encode())
        proc.stdin.close()
        for chunk in iter(lambda: proc.stdout.read(2**16), b""):  # type: ignore[union-attr]
            total += len(chunk)
            *done, rest = (rest + chunk).split(b"\0")
            for entry in done:
                commit, _, raw = entry.partition(b"\n")
                expected = commits[len(messages)] if len(messages) < len(commits) else ""
                if commit.decode("ascii", "replace") != expected:
                    problem = f"commit {expected[:12]}: its message holds a NUL byte; reword it"
                    break
                if len(raw) > MAX_MESSAGE_BYTES:
                    problem = f"commit {expected[:12]}: its message is over {MAX_MESSAGE_BYTES} bytes; " \
                              "a run record is a few kB"
                    break
                try:
                    messages[expected] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    problem = f"commit {expected[:12]}: its message is not UTF-8 text; reword it"
                    break
            if problem is None and len(rest) > MAX_MESSAGE_BYTES:
                problem = (f"commit {commits[len(messages)][:12]}: its message is over {MAX_MESSAGE_BYTES} "
                           "bytes; a run record is a few kB")
            elif problem is None and total > MAX_HISTORY_BYTES:
                problem = f"the commit messages of the submission are over {MAX_HISTORY_BYTES} bytes together"
            if problem is not None:
                proc.kill()
                break
    if problem is not None:
        raise HistoryError(problem)
    if proc.returncode != 0 or len(messages) != len(commits):
        raise GitError(f"`{' '.join(cmd)}` failed in {repo} (exit {proc.returncode}) after "
                       f"{len(messages)} of {len(commits)} messages")
    return messages

"""One writer per results dataset: the ledger lock, and the leftovers of a writer that died.

Every command that writes to a results dataset (a runner pass, an override, a
reproduction) holds :func:`hold` for as long as it writes. The lock is an
``fcntl`` lock on a file beside the dataset (``.<name>.lock``), so the kernel
releases it the moment its holder dies, even by SIGKILL: no stale lock ever
needs removing by hand. Holding it proves that no other writer lives, which is
what makes automatic recovery (:func:`jc_datalad.ledger.recover`) safe.

A holder marks its environment (:data:`LEDGER_ENV`, :data:`PASS_ENV`), and
every process it starts (git, git-annex, bubblewrap) inherits the mark. A
writer killed with SIGKILL leaves such children running; the next holder
finds them by their mark and ends them before it repairs anything
(:func:`end_orphans`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jc_datalad.errors import JcError

lgr = logging.getLogger(__name__)

#: Marks in the environment of a writer and of every process it starts.
LEDGER_ENV = "JC_LEDGER_WRITER"
PASS_ENV = "JC_LEDGER_WRITER_PASS"


class LockBusy(JcError):
    """Another writer holds the results dataset's lock."""


@dataclass(frozen=True)
class Holding:
    """The lock held by this process: where it is and the mark of this writer's processes."""

    results: Path
    path: Path
    token: str


def lock_path(results: Path) -> Path:
    """The lock file of a results dataset: beside it, so it exists before the dataset does."""
    results = Path(os.path.abspath(results))
    return results.parent / f".{results.name}.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


@contextmanager
def hold(results: Path, *, wait: bool = False, what: str = "jc runner") -> Iterator[Holding]:
    """Hold the lock of ``results`` for the block; raise :class:`LockBusy` if taken and not ``wait``.

    ``what`` names the holder in the lock file (shown to whoever finds the lock taken).
    """
    results = Path(os.path.abspath(results))
    path = lock_path(results)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise JcError(f"{path}: cannot open the results dataset's lock file ({exc.strerror}); it must be "
                      "a regular file (not a symlink) in a folder the runner can write") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = _holder(path)
            if not wait:
                raise LockBusy(
                    f"{results}: another writer holds the results dataset's lock {path} ({holder}); "
                    "wait until it finishes, or pass --wait to start as soon as it does"
                ) from None
            lgr.warning("%s: waiting for the lock %s (%s)", results, path, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        token = uuid.uuid4().hex
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}, since {started}\n".encode(), 0)
        marks = {LEDGER_ENV: str(results), PASS_ENV: token}
        before = {k: os.environ.get(k) for k in marks}
        os.environ.update(marks)
        try:
            yield Holding(results, path, token)
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _environ(pid: int) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            out[key] = value
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]  # a zombie is gone, only not yet reaped


def end_orphans(holding: Holding, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL the processes an earlier writer of this dataset left running; return their pids.

    Only processes that carry this dataset's writer mark with another pass's token
    qualify: while we hold the lock no other writer lives, so they are orphans.
    """
    ledger = str(holding.results).encode()
    token = holding.token.encode()
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        env = _environ(int(name))
        if env.get(LEDGER_ENV.encode()) == ledger and env.get(PASS_ENV.encode()) not in (None, token):
            found.append(int(name))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    if found:
        lgr.warning("%s: ended %d process(es) left running by an interrupted writer: %s",
                    holding.results, len(found), ", ".join(map(str, found)))
    return found

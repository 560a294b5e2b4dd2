"""The runner's sandbox: one participant command in bubblewrap, with limits.

What the command gets: the image's root filesystem read-only, the binds the
caller lists after each was checked to be a real directory (never a symlink),
a private ``/tmp`` of bounded size, no network, no capabilities, a clean
environment, and a non-root uid. When the runner runs as root, bubblewrap
itself is started as an unprivileged host user, so that even an escape lands
without privileges and the process limit counts only sandboxed processes.

Limits: wall time (killed after the deadline, with everything it started),
address space (``MemoryError`` inside), CPU time, file size, open files and
processes, through ``prlimit``.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from jc_datalad import launcher
from jc_datalad.errors import JcError

lgr = logging.getLogger(__name__)

#: Host uid/gid the sandbox runs as when the runner is root.
SANDBOX_UID = 65534
SANDBOX_ROOT = launcher.DATASET_ROOT
TAIL_BYTES = 4000


class StepStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY = "memory"


@dataclass(frozen=True)
class Bind:
    """``source`` on the host appears at ``target`` inside the sandbox."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Limits:
    time_s: float = 1800
    memory_bytes: int = 4 * 2**30
    file_bytes: int = 2**30
    processes: int = 256
    cpus: int = 2
    open_files: int = 1024


@dataclass(frozen=True)
class StepResult:
    """What one sandboxed command did and used."""

    status: StepStatus
    exit_code: int | None
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    stdout_tail: str
    stderr_tail: str

    def as_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d


def check_bind_source(path: Path) -> None:
    """Refuse a bind source that is, or passes through, a symlink, or is not a directory."""
    path = Path(os.path.abspath(path))
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        st = os.lstat(current)
        if stat.S_ISLNK(st.st_mode):
            raise JcError(f"{current}: is a symlink; refusing to bind it into the sandbox")
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise JcError(f"{path}: not a directory; only directories are bound into the sandbox")


def prepare_mountpoint(root: Path, relative: str) -> Path:
    """Make ``root/relative`` a real directory to bind over, refusing symlinks on the way."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            current.mkdir()
            continue
        if stat.S_ISLNK(st.st_mode):
            raise JcError(f"{relative}: '{current.relative_to(root)}' is a symlink in the submission; refused")
        if not stat.S_ISDIR(st.st_mode):
            raise JcError(f"{relative}: '{current.relative_to(root)}' is a file in the submission, not a folder")
    return current


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def tree_peak_rss(root: int) -> int:
    """The largest resident-set high-water mark (VmHWM) among ``root`` and its descendants, in bytes.

    ``ru_maxrss`` from ``wait4`` cannot be used: the first process of the chain is forked from
    the runner, and the kernel keeps the runner's own high-water mark for it across ``exec``.
    VmHWM starts afresh at ``exec``, so sampling it measures the sandboxed processes alone.
    """
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat_line = fh.read()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(b")") + 2:].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    peak, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(parents.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
                        break
        except OSError:
            continue
    return peak


def sandbox_env(limits: Limits) -> dict[str, str]:
    threads = str(max(1, limits.cpus))
    return {
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def build_command(
    rootfs: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    workdir: str,
    limits: Limits,
    env: dict[str, str] | None = None,
) -> list[str]:
    """The full host command line: prlimit, setpriv (as root), bwrap, then ``argv`` inside."""
    for bind in binds:
        check_bind_source(bind.source)
    # the root filesystem is bound read-only, so top-level mount points must exist in it
    for bind in binds:
        top = Path(bind.target).parts[1]
        if not os.path.lexists(rootfs / top):
            (rootfs / top).mkdir(mode=0o755)
    args = launcher.base_bwrap_args(rootfs)
    if os.geteuid() == 0:
        # bwrap itself runs as SANDBOX_UID here; the root-only user-namespace options of
        # the common part are not wanted (it maps the sandbox user to host root).
        args = _without_root_userns(args)
        args += ["--unshare-user", "--uid", "1000", "--gid", "1000"]
    args += ["--size", str(limits.file_bytes), "--tmpfs", "/tmp"]
    for bind in binds:
        args += ["--bind" if bind.writable else "--ro-bind", str(bind.source), bind.target]
    for key, value in {**sandbox_env(limits), **(env or {})}.items():
        args += ["--setenv", key, value]
    args += ["--chdir", workdir, "--", *argv]

    cmd = [
        "prlimit",
        f"--as={limits.memory_bytes}",
        f"--cpu={int(limits.time_s * max(1, limits.cpus)) + 1}",
        f"--fsize={limits.file_bytes}",
        f"--nproc={limits.processes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]
    if os.geteuid() == 0:
        cmd += ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"]
    return [*cmd, launcher.find_bwrap(), *args]


def _without_root_userns(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = 0
    for item in args:
        if skip:
            skip -= 1
            continue
        if item in ("--uid", "--gid"):
            skip = 1
            continue
        if item == "--unshare-user":
            continue
        out.append(item)
    return out


def run(
    rootfs: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    workdir: str,
    limits: Limits,
    log_dir: Path,
    env: dict[str, str] | None = None,
    name: str = "step",
) -> StepResult:
    """Run ``argv`` in the sandbox; never raises for what the command does, only for bad setup."""
    cmd = build_command(rootfs, argv, binds=binds, workdir=workdir, limits=limits, env=env)
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    lgr.debug("sandbox: %s", cmd)
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, close_fds=True
        )
    deadline = start + limits.time_s
    timed_out = False
    delay = 0.002
    peak = 0
    while True:
        peak = max(peak, tree_peak_rss(proc.pid))
        pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            timed_out = True
            # bwrap --die-with-parent and the pid namespace take everything inside down with it
            os.killpg(proc.pid, signal.SIGKILL)
            pid, wstatus, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    proc.returncode = os.waitstatus_to_exitcode(wstatus)
    wall = time.monotonic() - start
    exit_code = proc.returncode
    stderr_tail = _tail(err_path)
    if timed_out:
        status = StepStatus.TIMEOUT
    elif exit_code == 0:
        status = StepStatus.OK
    elif "MemoryError" in stderr_tail or "Cannot allocate memory" in stderr_tail:
        status = StepStatus.MEMORY
    elif exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and wall >= limits.time_s * 0.9:
        status = StepStatus.TIMEOUT
    else:
        status = StepStatus.FAILED
    return StepResult(
        status=status,
        exit_code=None if timed_out else exit_code,
        wall_s=round(wall, 4),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
        peak_rss_bytes=peak,
        stdout_tail=_tail(out_path),
        stderr_tail=stderr_tail,
    )


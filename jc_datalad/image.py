"""Container images: Debian root filesystems packed as compressed tarballs.

An image is built from a :class:`ImageRecipe` (a Debian suite and a list of
packages) with ``mmdebstrap`` and cached under its recipe digest, so the same
recipe is built once per machine.  The tarball is what a challenge dataset
annexes as ``.datalad/environments/<name>/image``; :mod:`jc_datalad.launcher`
unpacks it and runs commands in it with bubblewrap.

The build trims what a runtime never needs (compilers, headers, static
libraries, documentation, sympy, pythran): ``python3-scipy`` depends on
pythran, which pulls in a whole C++ toolchain and boost headers.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jc_datalad import config
from jc_datalad.errors import JcError

logger = logging.getLogger(__name__)

#: Version of the build procedure below; bump it whenever the trimming, the
#: mmdebstrap options or the packing change, so that cached images and image
#: digests change with it.
RECIPE_FORMAT = 1

#: Fixed timestamp (2024-01-01T00:00:00Z) for reproducible builds.
SOURCE_DATE_EPOCH = 1704067200

#: Compression of the tarball: gzip, because the launcher unpacks it with
#: Python's ``tarfile`` (no zstd before Python 3.14) and, measured on the
#: full image (549 MB tar, 2 cores), ``gzip -6`` takes 24 s and gives 202 MB
#: that unpack in ~5 s, while ``xz -T2 -6`` takes 283 s and gives 140 MB that
#: unpack in ~19 s.  ``-n`` leaves name and time out of the header.
COMPRESSION = "gz"
COMPRESSOR = ("gzip", "-n", "-6")

#: Paths dpkg never writes (``path-exclude``): documentation, headers and
#: static libraries.  Copyright files stay (Debian's licences ask for them).
#: Only paths that no maintainer script touches can go here.
DPKG_PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
    "/usr/include/*",
    "/usr/lib/*.a",
)
DPKG_PATH_INCLUDES = ("/usr/share/doc/*/copyright",)

#: Removed after installation, relative to the new root: the C/C++ toolchain
#: and Python packages that scipy needs only to build (pythran) or that
#: matplotlib's font tools pull in (sympy, unicode data), plus state a
#: runtime never reads.  Deleted afterwards rather than excluded because
#: their maintainer scripts (update-alternatives, py3compile) need them.
CUSTOMIZE_REMOVE = (
    "usr/lib/gcc",
    "usr/libexec/gcc",
    "usr/bin/*-linux-gnu-*",
    "usr/lib/*/lib*san.so*",
    "usr/lib/*/libbfd-*",
    "usr/lib/*/libopcodes-*",
    "usr/lib/*/libctf*",
    "usr/lib/*/libgprofng*",
    "usr/lib/python3/dist-packages/sympy",
    "usr/lib/python3/dist-packages/pythran",
    "usr/share/unicode",
    "var/cache/apt/*",
    "var/lib/apt/lists/*",
    "var/log/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
)

#: Empty directories every image has: bubblewrap mounts over them, and a
#: read-only root cannot get new mount points.
MOUNT_POINTS = ("./dev", "./proc", "./sys", "./tmp")

#: mmdebstrap's hook that sets up merged /usr itself instead of installing
#: the ``usrmerge`` package, which would drag in perl (45 MB).
MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")


@dataclass(frozen=True)
class ImageRecipe:
    """What goes into an image: a Debian suite plus packages from one mirror."""

    name: str
    packages: tuple[str, ...]
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"

    def digest(self) -> str:
        """sha256 of the recipe and the build procedure version (the cache key)."""
        record = dataclasses.asdict(self)
        record["packages"] = sorted(self.packages)
        record["recipe_format"] = RECIPE_FORMAT
        record["compression"] = COMPRESSION
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.digest()}.tar.{COMPRESSION}"


RECIPES: dict[str, ImageRecipe] = {
    # What challenge code runs with (bookworm: python 3.11, numpy 1.24,
    # scipy 1.10, scikit-image 0.19.3, tifffile 2023.2.3).
    "full": ImageRecipe(
        name="full",
        packages=(
            "python3",
            "python3-numpy",
            "python3-scipy",
            "python3-skimage",
            "python3-tifffile",
            "python-is-python3",
        ),
    ),
    # Small and quick to build: for tests.
    "minimal": ImageRecipe(
        name="minimal",
        packages=("python3", "python3-numpy", "python3-tifffile", "python-is-python3"),
    ),
}


def default_cache_dir() -> Path:
    """``images/`` in the machine's cache (:func:`jc_datalad.config.default_cache_dir`)."""
    return config.default_cache_dir() / "images"


def build_image(
    recipe: ImageRecipe,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return the cached image tarball of *recipe*, building it if absent.

    The tarball is ``<cache_dir>/<digest>.tar.gz``.  It is built under a
    temporary name in the same directory and renamed when complete, so a
    crash never leaves a partial file under the final name; a lock file
    keeps two processes from building the same recipe at once.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache_dir / recipe.filename
    if final.exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda message: None)
    with open(cache_dir / f".{recipe.digest()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():  # built by another process while we waited
            return final
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
            raw = Path(tmp) / "rootfs.tar"
            report(f"building image {recipe.name!r} with mmdebstrap")
            _run_mmdebstrap(recipe, raw)
            report(f"compressing image {recipe.name!r} ({COMPRESSION})")
            packed = Path(tmp) / final.name
            _repack(raw, packed)
            os.chmod(packed, 0o644)
            os.replace(packed, final)
    logger.info("built image %s: %s (%d bytes)", recipe.name, final, final.stat().st_size)
    report(f"image {recipe.name!r} ready: {final}")
    return final


def mmdebstrap_command(recipe: ImageRecipe, target: Path, mode: str = "unshare") -> list[str]:
    """The mmdebstrap command line that builds *recipe* into an uncompressed tar."""
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise JcError(
            "mmdebstrap not found on PATH: images are built with it; "
            "install it with `apt-get install mmdebstrap`"
        )
    cmd = [
        exe,
        f"--mode={mode}",
        f"--variant={recipe.variant}",
        "--format=tar",
        # no device nodes in the image: bubblewrap provides /dev
        "--skip=output/dev",
        "--aptopt=APT::Install-Recommends \"false\"",
        "--aptopt=Acquire::Retries \"3\"",
    ]
    if MERGED_USR_HOOK.is_dir():
        cmd.append(f"--hook-dir={MERGED_USR_HOOK}")
    cmd += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_PATH_EXCLUDES]
    cmd += [f"--dpkgopt=path-include={pattern}" for pattern in DPKG_PATH_INCLUDES]
    remove = " ".join(f'"$1"/{path}' for path in CUSTOMIZE_REMOVE)
    cmd.append(f"--customize-hook=rm -rf {remove}")
    if recipe.packages:
        cmd.append("--include=" + ",".join(recipe.packages))
    cmd += [recipe.suite, str(target), recipe.mirror]
    return cmd


def _run_mmdebstrap(recipe: ImageRecipe, target: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), LC_ALL="C.UTF-8")
    first = _mmdebstrap_once(recipe, target, "unshare", env)
    if first is None:
        return
    if os.geteuid() == 0 and "unshare" in first:
        # Root may be denied new namespaces (e.g. inside a container);
        # root mode still works there, writing as real root into a temp dir.
        logger.warning(
            "mmdebstrap --mode=unshare failed; retrying with --mode=root:\n%s", first[-2000:]
        )
        second = _mmdebstrap_once(recipe, target, "root", env)
        if second is None:
            return
        first = second
    raise JcError(
        f"building image {recipe.name!r} failed: `mmdebstrap` exited with an error "
        f"(suite {recipe.suite}, mirror {recipe.mirror}); check that the mirror is "
        f"reachable and the packages exist.  Last output:\n{first[-3000:]}"
    )


def _mmdebstrap_once(
    recipe: ImageRecipe, target: Path, mode: str, env: dict[str, str]
) -> str | None:
    """Run mmdebstrap once; None on success, else its output."""
    cmd = mmdebstrap_command(recipe, target, mode)
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode == 0:
        return None
    return proc.stdout


def _repack(raw: Path, out: Path) -> None:
    """Copy *raw* into a compressed tarball without device nodes, sorted by name.

    mmdebstrap's tar is already sorted with clamped mtimes; repacking adds
    the empty :data:`MOUNT_POINTS` and drops owner names and xattrs.
    """
    with open(out, "wb") as sink:
        # an external compressor runs on the second core while Python repacks
        compressor = subprocess.Popen([*COMPRESSOR, "-c"], stdin=subprocess.PIPE, stdout=sink)
        assert compressor.stdin is not None
        try:
            _copy_members(raw, compressor.stdin)
        finally:
            compressor.stdin.close()
            rc = compressor.wait()
    if rc != 0:
        raise JcError(f"compressing {out} failed: `{' '.join(COMPRESSOR)}` exited with {rc}")


def _copy_members(raw: Path, sink: IO[bytes]) -> None:
    # Keep mmdebstrap's member order (GNU tar --sort=name: by path
    # components): deterministic, and a hard link follows its target.
    pending = sorted(_member_parts(name) for name in MOUNT_POINTS)
    with tarfile.open(raw, "r|") as src, tarfile.open(
        fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT
    ) as dst:
        for member in src:
            if member.isdev() or member.name.startswith("./dev/") or member.name in MOUNT_POINTS:
                continue
            parts = _member_parts(member.name)
            while pending and pending[0] < parts:
                dst.addfile(_directory(pending.pop(0)))
            member.uname = member.gname = ""
            member.pax_headers = {}  # drops xattrs; the sandbox has no capabilities
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for parts in pending:
            dst.addfile(_directory(parts))


def _member_parts(name: str) -> tuple[str, ...]:
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _directory(parts: tuple[str, ...]) -> tarfile.TarInfo:
    info = tarfile.TarInfo("./" + "/".join(parts))
    info.type = tarfile.DIRTYPE
    info.mode = 0o1777 if parts == ("tmp",) else 0o755
    info.mtime = SOURCE_DATE_EPOCH
    return info

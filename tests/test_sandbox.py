"""One test per sandbox rule: each fails if the rule is taken out of the sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from jc_datalad import sandbox
from jc_datalad.errors import JcError
from jc_datalad.evaluate import Refusal, collect_outputs


@pytest.fixture
def tree(work):
    sub = work / "submission"
    (sub / "code").mkdir(parents=True)
    (sub / "code" / "predict.py").write_text("print('hi')\n")
    out = work / "out"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
    sandbox.prepare_mountpoint(sub, "predictions")
    return sub, out


def run(rootfs, tree, script, *, limits=None, name="step"):
    sub, out = tree
    binds = [sandbox.Bind(sub, "/submission"), sandbox.Bind(out, "/submission/predictions", writable=True)]
    return sandbox.run(rootfs, ["python3", "-c", script], binds=binds, workdir="/submission",
                       limits=limits or sandbox.Limits(time_s=60, memory_bytes=2**30),
                       log_dir=tree[1].parent / "logs", name=name)


def test_no_network(minimal_rootfs, tree):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    result = run(minimal_rootfs, tree, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)")
    thread.join()
    server.close()
    assert result.status is sandbox.StepStatus.FAILED
    assert accepted == [None], "the sandbox reached a port on the host"
    assert "Connection refused" in result.stderr_tail or "unreachable" in result.stderr_tail


def _accept(server):
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


def test_no_labels_or_host_files(minimal_rootfs, tree, work):
    secret = work / "labels" / "hidden_000.tif"
    secret.parent.mkdir()
    secret.write_text("truth")
    result = run(minimal_rootfs, tree, f"print(open({str(secret)!r}).read())")
    assert result.status is sandbox.StepStatus.FAILED
    assert "No such file" in result.stderr_tail
    # the host's home and temp folders are not there: /root is the image's, /tmp is empty
    result = run(minimal_rootfs, tree, "import os; print(sorted(os.listdir('/root')), os.listdir('/tmp'))",
                 name="ls")
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    assert result.stdout_tail.strip() == "['.bashrc', '.profile'] []"


def test_submission_is_read_only_and_output_writable(minimal_rootfs, tree):
    sub, out = tree
    result = run(minimal_rootfs, tree, "open('code/planted.txt', 'w').write('x')")
    assert result.status is sandbox.StepStatus.FAILED
    assert "Read-only file system" in result.stderr_tail
    assert not (sub / "code" / "planted.txt").exists()
    result = run(minimal_rootfs, tree, "open('predictions/a.txt', 'w').write('x')", name="ok")
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    assert (out / "a.txt").read_text() == "x"


def test_non_root_inside_and_outside(minimal_rootfs, tree):
    sub, out = tree
    result = run(minimal_rootfs, tree, "import os; print(os.getuid(), os.geteuid()); "
                 "open('predictions/who', 'w').write('me')")
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    uid, euid = map(int, result.stdout_tail.split())
    assert uid != 0 and euid != 0
    if os.geteuid() == 0:
        assert (out / "who").stat().st_uid == sandbox.SANDBOX_UID


def test_no_capabilities(minimal_rootfs, tree):
    result = run(minimal_rootfs, tree, "print(open('/proc/self/status').read())")
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in result.stdout_tail.splitlines()
            if line.startswith("Cap")}
    assert caps["CapEff"] == "0000000000000000"
    assert caps["CapBnd"] == "0000000000000000"


def test_clean_environment(minimal_rootfs, tree, monkeypatch):
    monkeypatch.setenv("JC_SECRET_TOKEN", "hunter2")
    result = run(minimal_rootfs, tree, "import os; print(sorted(os.environ))")
    assert result.status is sandbox.StepStatus.OK
    assert "JC_SECRET_TOKEN" not in result.stdout_tail
    assert "hunter2" not in result.stdout_tail


def test_time_limit_kills_everything(minimal_rootfs, tree):
    script = ("import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "subprocess.Popen(['sleep', '60']); time.sleep(60)")
    result = run(minimal_rootfs, tree, script, limits=sandbox.Limits(time_s=1, memory_bytes=2**30))
    assert result.status is sandbox.StepStatus.TIMEOUT
    assert result.wall_s < 10


def test_memory_limit(minimal_rootfs, tree):
    result = run(minimal_rootfs, tree, "x = bytearray(800 * 2**20); print(len(x))",
                 limits=sandbox.Limits(time_s=60, memory_bytes=300 * 2**20))
    assert result.status is sandbox.StepStatus.MEMORY


def test_file_size_limit(minimal_rootfs, tree):
    result = run(minimal_rootfs, tree, "open('predictions/big', 'wb').write(b'x' * 5 * 2**20)",
                 limits=sandbox.Limits(time_s=60, memory_bytes=2**30, file_bytes=2**20))
    assert result.status is sandbox.StepStatus.FAILED
    assert (tree[1] / "big").stat().st_size <= 2**20


def test_process_limit(minimal_rootfs, tree):
    script = ("import subprocess\nps = []\nfor i in range(60):\n"
              "    ps.append(subprocess.Popen(['sleep', '5']))\nprint('spawned', len(ps))")
    result = run(minimal_rootfs, tree, script,
                 limits=sandbox.Limits(time_s=60, memory_bytes=2**30, processes=20))
    assert result.status is sandbox.StepStatus.FAILED
    assert "Resource temporarily unavailable" in result.stderr_tail or "BlockingIOError" in result.stderr_tail


def test_symlinked_bind_source_is_refused(work):
    real = work / "real"
    real.mkdir()
    (work / "link").symlink_to(real)
    with pytest.raises(JcError, match="symlink"):
        sandbox.check_bind_source(work / "link")


def test_symlinked_mountpoint_in_submission_is_refused(work):
    sub = work / "sub"
    sub.mkdir()
    (sub / "inputs").symlink_to("/etc")
    with pytest.raises(JcError, match="symlink"):
        sandbox.prepare_mountpoint(sub, "inputs/test")


def test_outputs_come_back_as_regular_files_only(work):
    out = work / "out"
    out.mkdir()
    (out / "a.tif").write_bytes(b"ok")
    (out / "b.tif").symlink_to("/etc/passwd")
    with pytest.raises(Refusal, match="b.tif is a symlink"):
        collect_outputs(out, work / "copy", 2**20)
    (out / "b.tif").unlink()
    os.mkfifo(out / "c.tif")
    with pytest.raises(Refusal, match="not a regular file"):
        collect_outputs(out, work / "copy2", 2**20)
    (out / "c.tif").unlink()
    assert collect_outputs(out, work / "copy3", 2**20) == ["a.tif"]
    assert not (work / "copy3" / "a.tif").is_symlink()
    with pytest.raises(Refusal, match="output limit"):
        collect_outputs(out, work / "copy4", 1)


def test_bind_sources_exist_for_build(tmp_path):
    with pytest.raises(FileNotFoundError):
        sandbox.check_bind_source(Path(tmp_path) / "missing")


def test_peak_memory_is_the_commands_own(minimal_rootfs, tree):
    """Peak memory measures the sandboxed processes, not the runner that started them."""
    small = run(minimal_rootfs, tree, "import time; time.sleep(0.3)", name="small")
    big = run(minimal_rootfs, tree, "import time; x = bytearray(300 * 2**20); time.sleep(0.3)", name="big")
    assert small.status is big.status is sandbox.StepStatus.OK
    assert 0 < small.peak_rss_bytes < 64 * 2**20
    assert big.peak_rss_bytes > 300 * 2**20


# -- limits for the whole process tree, per evaluation (jc_datalad.accounting, sandbox.identity) --

def test_cpu_time_counts_every_process_of_the_step(minimal_rootfs, tree):
    """CPU time is the tree's: a parent and two children each burn CPU; the step reads within 10%."""
    script = (
        "import os, time\n"
        "def burn(s):\n"
        "    t = time.process_time()\n"
        "    while time.process_time() - t < s: pass\n"
        "pids = []\n"
        "for _ in range(2):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        burn(0.6); os._exit(0)\n"
        "    pids.append(pid)\n"
        "burn(0.6)\n"
        "for pid in pids: os.waitpid(pid, 0)\n"
        "t = os.times()\n"
        "print(t.user + t.system + t.children_user + t.children_system)\n"
    )
    result = run(minimal_rootfs, tree, script)
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    measured_inside = float(result.stdout_tail.split()[-1])
    assert measured_inside > 1.6
    assert abs(result.cpu_s - measured_inside) <= 0.1 * measured_inside, (result.cpu_s, measured_inside)


def test_memory_limit_holds_for_the_whole_tree(minimal_rootfs, tree):
    """Three processes of 400 MiB each stay under a per-process limit of 1 GiB, not under the tree's."""
    script = (
        "import os, time\n"
        "for _ in range(2):\n"
        "    if os.fork() == 0: break\n"
        "x = bytearray(400 * 2**20)\n"
        "for i in range(0, len(x), 4096): x[i] = 1\n"
        "time.sleep(3)\n"
    )
    result = run(minimal_rootfs, tree, script, limits=sandbox.Limits(time_s=30, memory_bytes=2**30))
    assert result.status is sandbox.StepStatus.MEMORY, (result.status, result.stderr_tail)


def test_dev_is_read_only_and_shm_is_bounded(minimal_rootfs, tree):
    script = (
        "import errno\n"
        "try:\n    open('/dev/jc', 'w')\nexcept OSError as e:\n    print('dev', e.errno)\n"
        "try:\n    open('/dev/shm/big', 'wb').write(b'x' * 200 * 2**20)\nexcept OSError as e:\n"
        "    print('shm', e.errno)\n"
    )
    result = run(minimal_rootfs, tree, script)
    assert "dev 30" in result.stdout_tail  # EROFS
    assert "shm 28" in result.stdout_tail  # ENOSPC


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_no_user_namespaces_and_a_seccomp_filter(minimal_rootfs, tree):
    script = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "print('keyctl', libc.syscall(250, 0, -3, 0), ctypes.get_errno())\n"  # KEYCTL_GET_KEYRING_ID
        "print('io_uring', libc.syscall(425, 1, 0), ctypes.get_errno())\n"
    )
    result = run(minimal_rootfs, tree, script)
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    assert "unshare -1 1" in result.stdout_tail
    assert "keyctl -1 1" in result.stdout_tail
    assert "io_uring -1 1" in result.stdout_tail


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per evaluation needs a root runner")
def test_a_fork_bomb_does_not_stop_another_evaluation(minimal_rootfs, work):
    """Two evaluations at once, each with its own uid: one forks until its limit, the other still
    starts its processes (they shared one uid's process count before)."""
    limits = sandbox.Limits(time_s=8, memory_bytes=2**30, processes=40)
    bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.05)\n"
    honest = ("import subprocess, time\ntime.sleep(2)\n"
              "ps = [subprocess.Popen(['sleep', '0.5']) for _ in range(20)]\n"
              "print('spawned', sum(p.wait() == 0 for p in ps))\n")
    results = {}

    def evaluate(name, script):
        sub = work / name
        sub.mkdir()
        with sandbox.identity() as who:
            results[name] = (who, sandbox.run(minimal_rootfs, ["python3", "-c", script],
                                              binds=[sandbox.Bind(sub, "/submission")], workdir="/submission",
                                              limits=limits, log_dir=work / f"{name}-logs", who=who))

    threads = [threading.Thread(target=evaluate, args=("bomb", bomb)),
               threading.Thread(target=evaluate, args=("honest", honest))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (bomb_who, _), (honest_who, honest_result) = results["bomb"], results["honest"]
    assert bomb_who.uid != honest_who.uid
    assert honest_result.status is sandbox.StepStatus.OK, honest_result.stderr_tail
    assert "spawned 20" in honest_result.stdout_tail


@pytest.mark.skipif(os.geteuid() != 0, reason="the output area is a tmpfs of a root runner")
def test_output_limit_holds_while_the_command_writes(minimal_rootfs, work):
    sub = work / "sub"
    sub.mkdir()
    with sandbox.identity() as who, sandbox.output_area(work / "outputs", 2**20, who) as outputs:
        result = sandbox.run(
            minimal_rootfs, ["python3", "-c", "open('/out/big', 'wb').write(b'x' * 5 * 2**20)"],
            binds=[sandbox.Bind(sub, "/submission"), sandbox.Bind(outputs, "/out", writable=True)],
            workdir="/submission", limits=sandbox.Limits(time_s=30, memory_bytes=2**30, file_bytes=2**30),
            log_dir=work / "logs", who=who)
        assert result.status is sandbox.StepStatus.FAILED
        assert "No space left on device" in result.stderr_tail
        assert (outputs / "big").stat().st_size <= 2**20
    assert not (work / "outputs" / "big").exists()  # the area is gone with its block


def test_a_sandbox_that_cannot_start_is_the_platforms_fault(minimal_rootfs, work):
    """Set-up failures are INFRASTRUCTURE; a command that prints bubblewrap's words is its own failure."""
    sub = work / "sub"
    sub.mkdir()
    kwargs = {"workdir": "/", "limits": sandbox.Limits(time_s=10, memory_bytes=2**30), "log_dir": work / "logs"}
    broken = sandbox.run(minimal_rootfs, ["true"], binds=[sandbox.Bind(sub, "/proc/sys/jc")], **kwargs)
    assert broken.status is sandbox.StepStatus.INFRASTRUCTURE
    spoof = sandbox.run(minimal_rootfs, ["sh", "-c", "echo 'bwrap: Creating new namespace failed' >&2; exit 1"],
                        binds=[], **kwargs)
    assert spoof.status is sandbox.StepStatus.FAILED


def test_outputs_with_odd_names_or_too_many_files_are_refused(work):
    out = work / "odd"
    out.mkdir()
    (out / os.fsdecode(b"bad\xff.tif")).write_bytes(b"x")
    with pytest.raises(Refusal, match="not UTF-8"):
        collect_outputs(out, work / "copy-odd", 2**20)
    many = work / "many"
    many.mkdir()
    for i in range(30):
        (many / f"{i}.tif").write_bytes(b"x")
    with pytest.raises(Refusal, match="more than 20 files"):
        collect_outputs(many, work / "copy-many", 2**20, max_files=20)
    for hidden in (".gitignore", ".git"):
        dotted = work / f"dotted{hidden}"
        dotted.mkdir()
        (dotted / hidden).write_text("*\n")
        with pytest.raises(Refusal, match="hidden name"):
            collect_outputs(dotted, work / f"copy{hidden}", 2**20)
    deep = work / "deep"
    (deep / "/".join("d" * 12)).mkdir(parents=True)
    with pytest.raises(Refusal, match="nested deeper"):
        collect_outputs(deep, work / "copy-deep", 2**20)


def test_run_python_sees_a_checkout_under_tmp(work, monkeypatch):
    """The project's folders are bound after the sandbox's own /tmp: a checkout under /tmp (a clone
    in a mktemp -d folder) stays visible to the sealed scorer."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="jc-checkout-", dir="/tmp"))  # 0700, as mktemp -d makes it
    try:
        checkout = folder / "jc"
        checkout.mkdir(mode=0o755)
        (checkout / "probe.py").write_text("print('probe ran')\n")
        real = sandbox.python_folders()
        monkeypatch.setattr(sandbox, "python_folders", lambda: (*real, checkout))
        result = sandbox.run_python([str(checkout / "probe.py")], binds=[], log_dir=work / "logs", name="probe",
                                    limits=sandbox.Limits(time_s=30, memory_bytes=2**30))
        assert result.status is sandbox.StepStatus.OK, result.stderr_tail
        assert "probe ran" in result.stdout_tail
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not sandbox.loop_images(), reason="loop-mounted images need a root runner with loop devices")
def test_no_host_paths_are_visible_inside(minimal_rootfs, work):
    """mountinfo names loop devices and tmpfs, never where the image, the submission, the inputs or
    the outputs lie on the host (a path to aim a prediction's file reference at)."""
    sub = work / "submission"
    (sub / "inputs" / "test").mkdir(parents=True)
    hidden = work / "hidden-inputs"
    hidden.mkdir()
    (hidden / "x.tif").write_bytes(b"x")
    with sandbox.identity() as who, sandbox.output_area(work / "outputs", 2**20, who) as outputs:
        (outputs / "predictions").mkdir()
        os.chown(outputs / "predictions", who.uid, who.gid)
        sandbox.prepare_mountpoint(sub, "predictions")
        result = sandbox.run(
            minimal_rootfs, ["cat", "/proc/self/mountinfo", "/submission/inputs/test/x.tif"],
            binds=[sandbox.Bind(sub, "/submission"), sandbox.Bind(hidden, "/submission/inputs/test"),
                   sandbox.Bind(outputs / "predictions", "/submission/predictions", writable=True)],
            workdir="/submission", limits=sandbox.Limits(time_s=30, memory_bytes=2**30), log_dir=work / "logs",
            who=who)
    assert result.status is sandbox.StepStatus.OK, result.stderr_tail
    mountinfo = result.stdout_tail
    assert "/submission/inputs/test" in mountinfo and mountinfo.endswith("x")
    for host in (str(work), str(minimal_rootfs), "/var/cache", "/tmp/", "/root"):
        assert host not in mountinfo, (host, mountinfo)


@pytest.mark.skipif(not sandbox.loop_images(), reason="loop-mounted images need a root runner with loop devices")
def test_a_tree_image_is_made_again_when_the_tree_changed(work):
    """The image of a read-only tree is kept beside it and reused, unless the tree changed since
    (a mount point made in it, a file added): then the sandbox would see an old tree."""
    tree = work / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    image = sandbox.tree_image(tree)
    made = image.stat().st_mtime_ns
    assert sandbox.tree_image(tree) == image and image.stat().st_mtime_ns == made
    (tree / "inputs").mkdir()
    assert sandbox.tree_image(tree).stat().st_mtime_ns != made
    listing = subprocess.run(["debugfs", "-R", "ls -l /", str(image)], capture_output=True, text=True).stdout
    assert "inputs" in listing and "a.txt" in listing

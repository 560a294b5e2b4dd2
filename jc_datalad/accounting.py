"""Resource accounting for one sandboxed step: memory, processes and CPU time of its whole process tree.

Three implementations behind one small interface (:class:`Accounting`), picked by :func:`for_step`:

- :class:`CgroupV2`: a child of ``/sys/fs/cgroup/jc-datalad`` on a unified (v2) hierarchy with the
  memory, pids and cpu controllers; limits ``memory.max`` (no swap), ``pids.max``; CPU time from
  ``cpu.stat``, peak from ``memory.peak``.
- :class:`CgroupV1`: one group per controller (memory, pids, cpuacct) of a v1 hierarchy, as on
  hosts with hybrid cgroups; limits ``memory.limit_in_bytes`` (and ``memsw``), ``pids.max``.
- :class:`TreeSampling`: the fallback where no cgroup is writable (a runner that is not root).
  The runner samples the step's process tree (every 2 to 50 ms): resident memory summed over the
  tree and killed above the limit, CPU time of the tree including reaped children. A process
  that lives shorter than one sample can be missed; per-process limits (``prlimit``) still hold.

Each concurrent evaluation gets its own group, so one submission's fork bomb or memory use never
counts against another's.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

lgr = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "jc-datalad"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """What the step's process tree used."""

    cpu_s: float
    peak_bytes: int
    oom_killed: bool


class Accounting:
    """The interface: set limits before the step, join it, observe while it runs, read after."""

    kind = "none"

    def procs_files(self) -> list[str]:
        """Files the step's first process writes its pid into before it starts bubblewrap."""
        return []

    def sample(self, root_pid: int) -> bool:
        """Observe the running tree; True when it must be killed for exceeding memory."""
        return False

    def finish(self) -> Usage:
        """Read the usage and release what was set up."""
        raise NotImplementedError


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _remove(group: Path) -> None:
    """Remove a group once its processes are gone; kill any that are left (none normally are)."""
    try:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    except OSError:
        return
    for _ in range(100):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            import time

            time.sleep(0.01)
    lgr.warning("could not remove cgroup %s", group)


def _v1_mounts() -> dict[str, Path]:
    """Mount points of the v1 controllers, from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) < 3 or rfields[0] != "cgroup":
            continue
        for option in rfields[2].split(","):
            if option in ("memory", "pids", "cpuacct"):
                found[option] = Path(fields[4])
    return found


class CgroupV1(Accounting):
    kind = "cgroup-v1"

    def __init__(self, mounts: dict[str, Path], name: str, memory_bytes: int, processes: int):
        self.groups = {ctl: mounts[ctl] / PARENT / name for ctl in ("memory", "pids", "cpuacct")}
        for group in self.groups.values():
            group.parent.mkdir(exist_ok=True)
            group.mkdir()
        memory = self.groups["memory"]
        _write(memory / "memory.limit_in_bytes", str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))  # no escape into swap
        _write(self.groups["pids"] / "pids.max", str(processes))

    def procs_files(self) -> list[str]:
        return [str(group / "cgroup.procs") for group in self.groups.values()]

    def finish(self) -> Usage:
        memory = self.groups["memory"]
        oom = any(line.startswith("oom_kill ") and int(line.split()[1]) > 0
                  for line in _lines(memory / "memory.oom_control"))
        usage = Usage(cpu_s=_read_int(self.groups["cpuacct"] / "cpuacct.usage") / 1e9,
                      peak_bytes=_read_int(memory / "memory.max_usage_in_bytes"),
                      oom_killed=oom)
        for group in self.groups.values():
            _remove(group)
        return usage


class CgroupV2(Accounting):
    kind = "cgroup-v2"

    def __init__(self, name: str, memory_bytes: int, processes: int):
        parent = CGROUP_ROOT / PARENT
        parent.mkdir(exist_ok=True)
        wanted = "+memory +pids +cpu"
        for group in (CGROUP_ROOT, parent):
            _write(group / "cgroup.subtree_control", wanted)
        self.group = parent / name
        self.group.mkdir()
        _write(self.group / "memory.max", str(memory_bytes))
        if (self.group / "memory.swap.max").exists():
            _write(self.group / "memory.swap.max", "0")
        _write(self.group / "pids.max", str(processes))

    def procs_files(self) -> list[str]:
        return [str(self.group / "cgroup.procs")]

    def finish(self) -> Usage:
        stat = dict(line.split() for line in _lines(self.group / "cpu.stat") if len(line.split()) == 2)
        events = dict(line.split() for line in _lines(self.group / "memory.events") if len(line.split()) == 2)
        usage = Usage(cpu_s=int(stat.get("usage_usec", 0)) / 1e6,
                      peak_bytes=_read_int(self.group / "memory.peak"),
                      oom_killed=int(events.get("oom_kill", 0)) > 0)
        _remove(self.group)
        return usage


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


class TreeSampling(Accounting):
    """The fallback: sample the tree under the step's first process."""

    kind = "sampling"

    def __init__(self, memory_bytes: int):
        self.memory_bytes = memory_bytes
        self.peak = 0
        self.cpu: dict[int, float] = {}  # per pid, the most seen: a pid's times only grow
        self.over = False

    def sample(self, root_pid: int) -> bool:
        rss, times = tree_usage(root_pid)
        self.peak = max(self.peak, rss)
        for pid, seconds in times.items():
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
        if rss > self.memory_bytes:
            self.over = True
        return self.over

    def finish(self) -> Usage:
        return Usage(cpu_s=sum(self.cpu.values()), peak_bytes=self.peak, oom_killed=self.over)


def tree_usage(root: int) -> tuple[int, dict[int, float]]:
    """Resident memory summed over ``root``'s tree, and per process its CPU time with reaped children.

    A process's ``cutime``/``cstime`` hold the time of the children it has waited for; the
    sandbox's init reaps every orphan, so the tree's total is the sum over the living processes.
    """
    children: dict[int, list[int]] = {}
    stats: dict[int, list[bytes]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                line = fh.read()
        except OSError:
            continue
        fields = line[line.rfind(b")") + 2:].split()
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    rss, times, todo = 0, {}, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        stat = stats.get(pid)
        if stat is None:
            continue
        # fields after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
        times[pid] = sum(int(f) for f in stat[11:15]) / _CLK_TCK
        rss += int(stat[21]) * page
    return rss, times


def available() -> str:
    """Which accounting this runner can use: ``cgroup-v2``, ``cgroup-v1`` or ``sampling``."""
    if os.geteuid() != 0:
        return "sampling"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        if {"memory", "pids", "cpu"} <= set(controllers):
            return "cgroup-v2"
    mounts = _v1_mounts()
    if {"memory", "pids", "cpuacct"} <= set(mounts) and all(os.access(m, os.W_OK) for m in mounts.values()):
        return "cgroup-v1"
    return "sampling"


def for_step(memory_bytes: int, processes: int, kind: str | None = None) -> Accounting:
    """A fresh accounting group for one step, with its limits set."""
    kind = kind or available()
    name = uuid.uuid4().hex
    try:
        if kind == "cgroup-v2":
            return CgroupV2(name, memory_bytes, processes)
        if kind == "cgroup-v1":
            return CgroupV1(_v1_mounts(), name, memory_bytes, processes)
    except OSError as exc:
        lgr.warning("cgroup accounting unavailable (%s); sampling the process tree instead", exc)
    return TreeSampling(memory_bytes)

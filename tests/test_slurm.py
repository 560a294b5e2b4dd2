"""The Slurm backend against a real single-node Slurm (tests/slurm_cluster.py): same scores as the
local backend, the array throttle, failure classes, scancel, and a runner killed between submit and
collect. All in one xdist group: they share the session's cluster."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import DATA, sh

from jc_datalad import ledger, participant
from jc_datalad.backends.slurm import (
    Failure,
    classify,
    parse_sacct,
    parse_scontrol,
    sbatch_resources,
)
from jc_datalad.config import ConfigError, load_config
from jc_datalad.records import Status
from jc_datalad.runner import collect, run_once
from jc_datalad.spec import load_spec

pytestmark = [pytest.mark.xdist_group("slurm")]

#: a prediction that takes a while on the hidden inputs (4 items) and none on the public ones (2)
SLOW = """import sys, time
from pathlib import Path
if len(list(Path(sys.argv[1]).glob("*.tif"))) > 2:
    time.sleep(float(Path(__file__).with_name("delay.txt").read_text()))
exec(Path(__file__).with_name("real_predict.py").read_text())
"""


def _slurm_config(arena, name: str, **slurm) -> Path:
    """A second runner.yaml beside the arena's: same challenge and teams, its own ledger and work."""
    data = yaml.safe_load(arena.config_path.read_text())
    data.update(results=str(arena.root / f"results-{name}"), work=str(arena.root / f"work-{name}"),
                backend="slurm")
    scratch = arena.root / f"scratch-{name}"
    scratch.mkdir()
    os.chmod(scratch, 0o755)
    data["slurm"] = {"throttle": 4, "scratch": str(scratch), "wait": "5m", "poll": 1, **slurm}
    path = arena.root / f"runner-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _submit(arena, team: str, predict: Path, delay: float | None = None) -> None:
    repo = arena.team(team)
    clone = arena.clone(team)
    files: dict[str, str | Path] = {"code/predict.py": predict}
    if delay is not None:
        files = {"code/predict.py": _slow_script(arena, team), "code/real_predict.py": predict,
                 "code/delay.txt": str(delay)}
    participant.record_prediction(clone, files=files)
    participant.push_submission(clone, repo, "main")


def _slow_script(arena, team: str) -> Path:
    path = arena.root / f"slow-{team}.py"
    path.write_text(SLOW)
    return path


def _commits_of(results: Path, eid: str) -> int:
    return sh("git", "log", "--format=%s", cwd=results).count(f"Evaluate {eid.split('--')[0]} {eid.split('--')[1]}")


# -- pure functions: what the scheduler says -> failure class -------------------------------------

def test_failure_classes_from_states():
    assert classify("TIMEOUT") is Failure.TIMEOUT
    assert classify("OUT_OF_MEMORY") is Failure.OUT_OF_MEMORY
    assert classify("CANCELLED by 0") is Failure.CANCELLED
    assert classify("NODE_FAIL") is Failure.NODE_FAILURE
    assert classify("PREEMPTED") is Failure.PREEMPTED
    assert classify("FAILED") is Failure.FAILED
    assert classify("") is Failure.LOST
    states = parse_sacct("7_0|TIMEOUT|0:0\n7_1|CANCELLED by 0|0:15\n7_[2-4%2]|PENDING|0:0\n")
    assert states[("7", 0)].state == "TIMEOUT" and states[("7", 1)].state == "CANCELLED"
    assert states[("7", 4)].running and not states[("7", 0)].running
    line = ("JobId=9 ArrayJobId=8 ArrayTaskId=1 ArrayTaskThrottle=2 JobName=x JobState=OUT_OF_MEMORY "
            "Reason=OutOfMemory ExitCode=0:125\nJobId=8 ArrayJobId=8 ArrayTaskId=2-3%2 JobState=PENDING ExitCode=0:0")
    states = parse_scontrol(line)
    assert states[("8", 1)].state == "OUT_OF_MEMORY" and states[("8", 3)].running


def test_runner_yaml_slurm_section_is_validated(tmp_path, challenge):
    path = tmp_path / "runner.yaml"
    base = {"challenge": str(challenge.public), "private": str(challenge.private), "results": str(tmp_path / "r")}
    path.write_text(yaml.safe_dump({**base, "backend": "slurm", "slurm": {"partition": "gpu booster",
                                                                          "throttle": 0, "wiat": "1m"}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "slurm.partition" in text and "slurm.throttle" in text and "wiat" in text and "did you mean" in text
    assert f"{path}:" in text  # every problem with its line
    path.write_text(yaml.safe_dump({**base, "backend": "slurmm"}))
    with pytest.raises(ConfigError, match="backend"):
        load_config(path)
    path.write_text(yaml.safe_dump({**base, "backend": "slurm", "slurm": {"account": "jsc", "throttle": 8}}))
    cfg = load_config(path)
    assert cfg.slurm is not None and cfg.slurm.account == "jsc" and cfg.slurm.throttle == 8
    assert cfg.slurm.store == (tmp_path / ".jc-work" / "slurm-store").resolve()


def test_resources_per_step_type(challenge):
    spec = load_spec(challenge.public)
    options = sbatch_resources(spec)
    r = spec.resources
    assert f"--cpus-per-task={r.cpus}" in options
    assert any(o.startswith("--time=") and int(o.split("=")[1]) * 60 >= r.evaluation_time_s for o in options)
    assert not any(o.startswith("--gres") for o in options)  # no GPUs asked for
    from dataclasses import replace

    gpu = replace(spec, resources=replace(r, gpus=2))
    assert "--gres=gpu:2" in sbatch_resources(gpu)
    # a training challenge: its training step's own resources count too
    from jc_datalad.spec import Training

    training = Training(inputs="inputs/train", model="model",
                        resources=replace(r, gpus=1, cpus=r.cpus + 6, memory_bytes=64 * 2**30))
    options = sbatch_resources(replace(spec, training=training))
    assert "--gres=gpu:1" in options and f"--cpus-per-task={r.cpus + 6}" in options
    assert f"--mem={64 * 1024 + 1024}M" in options


# -- against the cluster -------------------------------------------------------------------------

@pytest.mark.slow
def test_slurm_gives_the_local_scores_and_the_throttle_holds(arena, slurm_cluster):
    _submit(arena, "alpha", DATA / "threshold_predict.py")
    _submit(arena, "beta", DATA / "empty_predict.py")
    _submit(arena, "gamma", DATA / "threshold_predict.py", delay=1)
    local = {ev.id: ev for ev in arena.run().evaluations}
    config = load_config(_slurm_config(arena, "one", throttle=1, wait=0))
    assert run_once(config).evaluations == []  # submitted; collected below, all three in one look
    (job,) = {str(e["job"]) for e in ledger.read_jobs(config.results).values()}
    deadline = time.monotonic() + 300
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline
        time.sleep(0.5)
    report = collect(config)  # one batch: ledger.commit_many, one commit per evaluation
    remote = {ev.id: ev for ev in report.evaluations}
    assert set(remote) == set(local) and len(remote) == 3
    for eid, ev in remote.items():
        assert ev.status is local[eid].status, ev.reason
        assert ev.metrics == local[eid].metrics and ev.public == local[eid].public
        assert ev.runner["backend"] == "slurm" and "_" in ev.runner["job"]
        assert _commits_of(config.results, eid) == 1
    assert any(ev.status is Status.EVALUATED for ev in remote.values())
    # throttle 1: the array's tasks never overlapped
    spans = sorted((ev.started, ev.finished) for ev in remote.values())
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, spans
    assert ledger.read_jobs(config.results) == {}
    assert not list(config.slurm.store.glob("*--*"))  # the output store is cleaned up once recorded
    assert run_once(config).evaluations == []  # nothing submitted again


def _wait_running(job: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job, "-t", "RUNNING", "-o", "%i"], capture_output=True,
                             text=True).stdout.split()
        if len(out) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"job {job}: {count} task(s) not running after {timeout} s")


def _task_pid(tasks_file: Path, index: int, timeout: float = 60) -> int:
    """The pid of `jc runner task` for one task of our own batch (found by its exact arguments)."""
    want = ["--tasks", str(tasks_file), "--index", str(index)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "task" in argv and all(w in argv for w in want) and argv[argv.index("--index") + 1] == str(index):
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no task process for {tasks_file} index {index}")


@pytest.mark.slow
def test_killed_task_is_retried_and_scancel_is_recorded(arena, slurm_cluster):
    _submit(arena, "killed", DATA / "threshold_predict.py", delay=60)
    _submit(arena, "cancelled", DATA / "threshold_predict.py", delay=60)
    config = load_config(_slurm_config(arena, "two", wait=0))
    first = run_once(config)
    assert first.evaluations == []  # submitted, not waited for
    jobs = ledger.read_jobs(config.results)
    assert len(jobs) == 2 and all(e["job"] for e in jobs.values())
    by_team = {e["task"]["team"]["name"]: e for e in jobs.values()}
    job = str(by_team["killed"]["job"])
    _wait_running(job, 2)
    batch = config.work / "slurm" / by_team["killed"]["batch"]
    os.kill(_task_pid(batch / "tasks.json", by_team["killed"]["index"]), signal.SIGKILL)  # the task dies mid-run
    subprocess.run(["scancel", f"{job}_{by_team['cancelled']['index']}"], check=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline
        time.sleep(0.5)
    report = collect(config)
    (cancelled,) = report.evaluations
    assert cancelled.team == "cancelled" and cancelled.status is Status.ERROR
    assert "cancelled" in cancelled.reason and cancelled.runner["failure"] == "cancelled"
    killed_id = next(eid for eid, e in jobs.items() if e["task"]["team"]["name"] == "killed")
    assert report.retry == [killed_id]  # a platform fault: not recorded, tried again
    assert killed_id not in ledger.committed_ids(config.results)
    assert ledger.read_jobs(config.results) == {}
    # the next pass submits it again and records it; the cancelled one is not submitted again
    again = run_once(load_config(_reconfigure(arena, "two", wait="5m")))
    (ev,) = again.evaluations
    assert ev.id == killed_id and ev.status is Status.EVALUATED, ev.reason
    assert _commits_of(config.results, killed_id) == 1


def _reconfigure(arena, name: str, **slurm) -> Path:
    path = arena.root / f"runner-{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data["slurm"].update(slurm)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_runner_killed_between_submit_and_collect(arena, slurm_cluster):
    _submit(arena, "first", DATA / "threshold_predict.py", delay=5)
    _submit(arena, "second", DATA / "threshold_predict.py", delay=5)
    path = _slurm_config(arena, "three")
    config = load_config(path)
    proc = subprocess.Popen([sys.executable, "-m", "jc_datalad.cli", "runner", "run", "--once", "--config",
                             str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (ledger.read_jobs(config.results) and all(e.get("job") for e in
                                                        ledger.read_jobs(config.results).values())):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the runner dies while its jobs run
    proc.wait()
    jobs = ledger.read_jobs(config.results)
    submitted = {e["job"] for e in jobs.values()}
    assert len(submitted) == 1
    # as if it had died between sbatch and noting the job id: the next pass finds the job by its name
    ledger.write_jobs(config.results, {eid: {**e, "job": None} for eid, e in jobs.items()})
    report = run_once(config, now=dt.datetime.now(dt.UTC))  # adopts the running jobs and waits for them
    assert sorted(ev.team for ev in report.evaluations) == ["first", "second"]
    assert all(ev.status is Status.EVALUATED for ev in report.evaluations), [ev.reason for ev in report.evaluations]
    batches = list((config.work / "slurm").iterdir())
    assert len(batches) == 1  # never submitted again
    for ev in report.evaluations:
        assert ev.runner["job"].split("_")[0] in submitted
        assert _commits_of(config.results, ev.id) == 1
    assert run_once(config).evaluations == []

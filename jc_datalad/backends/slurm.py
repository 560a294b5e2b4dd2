"""The Slurm backend: each pass submits one job array; each array task evaluates one submission.

Submitting (:meth:`SlurmBackend.submit`): the tasks of a pass are written to
``<work>/slurm/<batch>/tasks.json`` with a batch script, a job entry per evaluation is
kept in the ledger's incoming state (:func:`jc_datalad.ledger.write_jobs`) *before*
``sbatch --array=0-N%throttle`` runs, and the job id is added to it afterwards. A runner
killed in between finds its job by its name (the batch) on the next pass.

On the compute node (:func:`run_array_task`, ``jc runner task``): the task clones the
submission and stages the hidden inputs into node-local scratch, runs the one evaluation
code path (:func:`jc_datalad.runner.run_task`: the same sandbox as the local backend), and
publishes its finished folder to ``<store>/<id>/`` by copy and rename under ``flock``.

Collecting (:meth:`SlurmBackend.collect`): a published folder is the truth; it is copied
into the ledger's ``.incoming/`` and recorded once (a folder the ledger already holds,
left by a runner killed after recording it, is only cleaned up). A job that ended without
one gets a failure class from ``sacct`` (with slurmdbd) or ``scontrol show job`` and the
task's exit file: timeout and out of memory are recorded as failed, cancelled as an
error, node failure, preemption and lost jobs as platform faults, which the runner retries
and never counts against a quota. See docs/hpc.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import fcntl
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from jc_datalad import __version__, ledger, lock
from jc_datalad.backends import Finished, Say, Task
from jc_datalad.config import RunnerConfig, SlurmSettings
from jc_datalad.errors import JcError
from jc_datalad.gitutil import git_out
from jc_datalad.records import Evaluation, Status, utcnow
from jc_datalad.spec import ChallengeSpec, Resources, load_spec

lgr = logging.getLogger(__name__)

EXITS = ".exits"  #: ``<store>/.exits/<job>_<index>``: the exit status the batch script wrote
#: Room the task needs beside the steps' own limits: clone, staging, scoring, publishing.
MARGIN_S = 600
MARGIN_BYTES = 2**30
_RUNNING = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                      "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"})


class Failure(enum.StrEnum):
    """Why a job ended without publishing its evaluation."""

    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out of memory"
    CANCELLED = "cancelled"
    NODE_FAILURE = "node failure"
    PREEMPTED = "preempted"
    FAILED = "task failed"  #: the task itself exited non-zero: a platform fault (evaluate never raises)
    LOST = "lost"  #: neither the scheduler nor the task's exit file knows how it ended


_BY_STATE = {"TIMEOUT": Failure.TIMEOUT, "DEADLINE": Failure.TIMEOUT, "OUT_OF_MEMORY": Failure.OUT_OF_MEMORY,
             "CANCELLED": Failure.CANCELLED, "NODE_FAIL": Failure.NODE_FAILURE, "BOOT_FAIL": Failure.NODE_FAILURE,
             "PREEMPTED": Failure.PREEMPTED, "FAILED": Failure.FAILED, "COMPLETED": Failure.FAILED,
             "SPECIAL_EXIT": Failure.FAILED}
#: The record's status per class: the team's own limits count, the platform's faults are retried.
STATUS = {Failure.TIMEOUT: Status.FAILED, Failure.OUT_OF_MEMORY: Status.FAILED, Failure.CANCELLED: Status.ERROR,
          Failure.NODE_FAILURE: Status.INFRASTRUCTURE, Failure.PREEMPTED: Status.INFRASTRUCTURE,
          Failure.FAILED: Status.INFRASTRUCTURE, Failure.LOST: Status.INFRASTRUCTURE}


@dataclass(frozen=True)
class JobState:
    """One array task as the scheduler reports it."""

    state: str  #: Slurm's state name, e.g. RUNNING, TIMEOUT, CANCELLED
    exit_code: str = ""  #: ``rc:signal``
    source: str = ""  #: sacct or scontrol

    @property
    def running(self) -> bool:
        return self.state in _RUNNING


def classify(state: str) -> Failure:
    """The failure class of a job that ended in ``state`` without publishing its evaluation."""
    return _BY_STATE.get(state.split()[0].rstrip("+") if state.strip() else "", Failure.LOST)


# -- resources and submission -------------------------------------------------------------------

def step_resources(spec: ChallengeSpec) -> list[Resources]:
    """The resources of every step type the challenge runs: prediction, and training when it has one."""
    found = [spec.resources]
    training = getattr(spec, "training", None)
    if training is not None and isinstance(training.resources, Resources):
        found.append(training.resources)
    return found


def sbatch_resources(spec: ChallengeSpec) -> list[str]:
    """``--time``, ``--mem``, ``--cpus-per-task`` and ``--gres=gpu:N`` for one evaluation of ``spec``:
    the evaluation's one time limit (``resources.evaluation_time``, which covers a training step too),
    the largest memory, CPUs and GPUs of its step types, plus room for the runner's own work."""
    steps = step_resources(spec)
    minutes = math.ceil((spec.resources.evaluation_time_s + MARGIN_S) / 60)
    mem_mib = math.ceil((max(r.memory_bytes for r in steps) + MARGIN_BYTES) / 2**20)
    options = [f"--time={minutes}", f"--mem={mem_mib}M", f"--cpus-per-task={max(r.cpus for r in steps)}"]
    gpus = max(r.gpus for r in steps)
    if gpus > 0:
        options.append(f"--gres=gpu:{gpus}")
    return options


def _settings(config: RunnerConfig) -> SlurmSettings:
    return config.slurm or SlurmSettings(store=config.work / "slurm-store")


def batch_script(config: RunnerConfig, tasks_file: Path) -> str:
    """The script every array task of a batch runs: ``jc runner task``, then its exit file."""
    settings = _settings(config)
    if any(c in settings.scratch for c in '"`\\\n'):
        raise JcError(f"{config.path}: slurm.scratch {settings.scratch!r} may not hold quotes, backquotes, "
                      "backslashes or newlines (it is expanded by the batch script's shell)")
    exits = settings.store / EXITS
    q = shlex.quote
    return "\n".join([
        "#!/bin/bash",
        "# written by jc runner: one array task evaluates one submission (docs/hpc.md)",
        f"export PATH={q(str(Path(sys.executable).parent))}:\"$PATH\"",
        f"export JC_SCRATCH=\"{settings.scratch}\"",
        f"{q(sys.executable)} -m jc_datalad.cli runner task --config {q(str(config.path))} "
        f"--tasks {q(str(tasks_file))} --index \"$SLURM_ARRAY_TASK_ID\"",
        "rc=$?",
        f"mkdir -p {q(str(exits))}",
        f"echo \"$rc\" > {q(str(exits))}/\"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\"",
        "exit $rc",
        "",
    ])


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` (an array's indices stay below it); Slurm's default 1001."""
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", proc.stdout, re.M)
    return int(match.group(1)) if match else 1001


def _sbatch(args: list[str]) -> str:
    # without the writer's marks: the next writer ends the processes that carry them (lock.end_orphans),
    # and a job is no orphan of the pass that submitted it
    env = {k: v for k, v in os.environ.items() if k not in (lock.LEDGER_ENV, lock.PASS_ENV)}
    proc = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode:
        raise JcError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip()[-400:]}; check the slurm: "
                      "section of runner.yaml (partition, account, qos) with `sinfo` and `sacctmgr show assoc`")
    return proc.stdout.strip().split(";")[0]


# -- the scheduler's view of the jobs -----------------------------------------------------------

def _indices(spec: str) -> list[int]:
    """Array task ids from ``3``, ``[4-9%2]`` or ``1,3-5``."""
    out: list[int] = []
    for part in spec.strip("[]").split("%")[0].split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            out += range(int(low), int(high) + 1)
        elif part.isdigit():
            out.append(int(part))
    return out


def parse_sacct(text: str) -> dict[tuple[str, int], JobState]:
    """``sacct -n -P -X -o JobID,State,ExitCode`` lines -> (job, index) -> state."""
    found: dict[tuple[str, int], JobState] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 3 or "_" not in fields[0]:
            continue
        job, tasks = fields[0].split("_", 1)
        for index in _indices(tasks):
            found[(job, index)] = JobState(fields[1].split()[0] if fields[1].strip() else "", fields[2], "sacct")
    return found


def parse_scontrol(text: str) -> dict[tuple[str, int], JobState]:
    """``scontrol -o show job`` lines (one per array task, or one for its pending rest) -> states."""
    found: dict[tuple[str, int], JobState] = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "ArrayJobId" not in fields or "ArrayTaskId" not in fields:
            continue
        for index in _indices(fields["ArrayTaskId"]):
            found[(fields["ArrayJobId"], index)] = JobState(fields.get("JobState", ""), fields.get("ExitCode", ""),
                                                            "scontrol")
    return found


def job_states(jobs: set[str]) -> tuple[dict[tuple[str, int], JobState], set[str]]:
    """What the scheduler knows of ``jobs``, and the jobs it says it does not know at all: from sacct
    where slurmdbd keeps accounting (it forgets nothing), else from ``scontrol show job`` (which
    forgets a job MinJobAge seconds after it ended). A job the scheduler did not answer for is in
    neither: nothing is decided about it until it does."""
    if not jobs:
        return {}, set()
    proc = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(sorted(jobs)), "-o", "JobID,State,ExitCode"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        return parse_sacct(proc.stdout), set()
    found: dict[tuple[str, int], JobState] = {}
    gone: set[str] = set()
    for job in sorted(jobs):
        proc = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            found.update(parse_scontrol(proc.stdout))
        elif "Invalid job id" in proc.stderr:
            gone.add(job)
        else:
            lgr.warning("scontrol show job %s failed (%s): looked at again later", job, proc.stderr.strip()[:200])
    return found, gone


def _job_by_name(name: str) -> tuple[bool, str | None]:
    """(whether squeue answered, the queued or running job of that name, if any)."""
    proc = subprocess.run(["squeue", "-h", "--name", name, "-o", "%F"], capture_output=True, text=True, timeout=120)
    ids = {line.strip() for line in proc.stdout.splitlines() if line.strip().isdigit()}
    return proc.returncode == 0, (min(ids) if ids else None)


# -- the backend ------------------------------------------------------------------------------

class SlurmBackend:
    name = "slurm"

    def __init__(self, config: RunnerConfig, say: Say) -> None:
        self.config = config
        self.settings = _settings(config)
        self.say = say
        self._submitted = False
        self._looked = False
        self._entries: dict[str, dict] = {}
        self._spec: ChallengeSpec | None = None

    @property
    def spec(self) -> ChallengeSpec:
        if self._spec is None:
            self._spec = load_spec(self.config.challenge)
        return self._spec

    def pending(self) -> dict[str, Task]:
        return {eid: Task.from_dict(entry["task"]) for eid, entry in ledger.read_jobs(self.config.results).items()}

    def submit(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        limit = max(1, max_array_size() - 1)
        for start in range(0, len(tasks), limit):
            self._submit_batch(tasks[start:start + limit])
        self._submitted = True

    def _submit_batch(self, tasks: Sequence[Task]) -> None:
        settings = self.settings
        batch = f"jc-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        folder = self.config.work / "slurm" / batch
        folder.mkdir(parents=True)
        settings.store.mkdir(parents=True, exist_ok=True)
        tasks_file = folder / "tasks.json"
        tasks_file.write_text(json.dumps({"tasks": [t.as_dict() for t in tasks]}, sort_keys=True) + "\n")
        script = folder / "job.sh"
        script.write_text(batch_script(self.config, tasks_file))
        submitted = utcnow()
        entries = {t.eval_id: {"batch": batch, "job": None, "index": i, "task": t.as_dict(), "submitted": submitted}
                   for i, t in enumerate(tasks)}
        # kept before sbatch runs: a runner killed during sbatch finds the job by its name next pass
        ledger.write_jobs(self.config.results, entries)
        args = [f"--array=0-{len(tasks) - 1}%{settings.throttle}", f"--job-name={batch}", "--no-requeue",
                f"--output={folder}/%A_%a.out", *sbatch_resources(self.spec)]
        args += [f"--{key}={value}" for key, value in (("partition", settings.partition),
                                                        ("account", settings.account), ("qos", settings.qos)) if value]
        try:
            job = _sbatch([*args, str(script)])
        except BaseException:
            for eid in entries:
                ledger.remove_job(self.config.results, eid)
            raise
        ledger.write_jobs(self.config.results, {eid: {**e, "job": job} for eid, e in entries.items()})
        self.say(f"submitted Slurm job array {job} ({len(tasks)} evaluation(s), at most {settings.throttle} at once)")

    def collect(self) -> Iterator[list[Finished]]:
        """Finished evaluations of every job not collected yet. The first call looks once (a pass
        records what finished before it admits); later calls, and those after a submission, look
        until all are collected or ``slurm.wait`` has passed."""
        deadline = time.monotonic() + (self.settings.wait_s if self._submitted or self._looked else 0)
        self._looked = True
        while True:
            jobs = ledger.read_jobs(self.config.results)
            self._entries = dict(jobs)  # forget() drops from this copy while the loop below reads jobs
            if not jobs:
                return
            # the scheduler first, then the store: a task that publishes meanwhile is seen next time
            states, gone = job_states({str(e["job"]) for e in jobs.values() if e.get("job")})
            committed = ledger.committed_ids(self.config.results)
            found = [f for eid, entry in jobs.items()
                     if (f := self._look(eid, entry, states, gone, committed)) is not None]
            if found:
                yield found
            if time.monotonic() >= deadline:
                return
            time.sleep(self.settings.poll_s)

    def _look(self, eid: str, entry: dict, states: dict[tuple[str, int], JobState], gone: set[str],
              committed: set[str]) -> Finished | None:
        task = Task.from_dict(entry["task"])
        published = self.settings.store / eid
        record = _read(published / ledger.RECORD)
        if record is not None:
            if eid in committed and _same(self.config.results, eid, record):
                self.forget(eid)  # recorded by a runner that died before it cleaned up
                return None
            out = ledger.incoming_dir(self.config.results, eid)
            shutil.copytree(published, out, symlinks=True, dirs_exist_ok=True)
            return Finished(task, out, record, _command(self.config, task))
        job = entry.get("job")
        if not job:
            answered, job = _job_by_name(entry["batch"])
            if answered and job is None:
                lgr.warning("%s: its job was never submitted (the runner died in sbatch); decided again", eid)
                self.forget(eid)
            elif job is not None:  # adopted; its state is read on the next look
                self._entries[eid] = {**entry, "job": job}
                ledger.write_jobs(self.config.results, {eid: self._entries[eid]})
            return None
        state = states.get((str(job), int(entry["index"])))
        if state is None and str(job) not in gone:
            return None  # the scheduler did not answer for it (or has not recorded it yet): later
        if state is not None and state.running:
            return None
        failure, detail = self._failure(str(job), int(entry["index"]), state)
        ev = self._failed(task, entry, str(job), failure, detail)
        out = ledger.incoming_dir(self.config.results, eid)
        if ev.status is not Status.INFRASTRUCTURE:
            ledger.write_record(out, ev)  # as run_task does: a folder with a record is finished
        return Finished(task, out, ev, _command(self.config, task))

    def _failure(self, job: str, index: int, state: JobState | None) -> tuple[Failure, str]:
        exit_file = self.settings.store / EXITS / f"{job}_{index}"
        try:
            rc = exit_file.read_text().strip()
        except OSError:
            rc = ""
        if state is not None:
            failure = classify(state.state)
            return failure, f"Slurm state {state.state} (exit {state.exit_code or '?'}, from {state.source})"
        if rc:
            return Failure.FAILED, f"the task exited with status {rc[:12]} without publishing its evaluation"
        return Failure.LOST, "the scheduler no longer knows the job and the task left no exit file"

    def _failed(self, task: Task, entry: dict, job: str, failure: Failure, detail: str) -> Evaluation:
        status = STATUS[failure]
        what = {Failure.TIMEOUT: "ran past its time limit", Failure.OUT_OF_MEMORY: "ran out of memory",
                Failure.CANCELLED: "was cancelled on the cluster (scancel); an organizer can readmit it",
                Failure.NODE_FAILURE: "lost its node", Failure.PREEMPTED: "was preempted",
                Failure.FAILED: "failed", Failure.LOST: "was lost"}[failure]
        reason = f"Slurm job {job}_{entry['index']} {what} ({failure.value}; {detail})"
        if status is Status.INFRASTRUCTURE:
            reason = f"platform fault, retried: {reason}"
        commit = git_out(["rev-parse", "HEAD"], self.config.challenge)
        return Evaluation(
            id=task.eval_id, challenge={**self.spec.summary(), "commit": commit}, team=task.team.name,
            submission={"repository": task.team.repository, "commit": task.commit, **task.submission},
            phase=task.phase, split=task.split, status=status, reason=reason,
            runner={"version": __version__, "backend": "slurm", "job": f"{job}_{entry['index']}",
                    "failure": failure.value},
            started=str(entry.get("submitted", "")), finished=utcnow())

    def forget(self, eval_id: str) -> None:
        entry = self._entries.pop(eval_id, None)  # as the last look read it: one read per look, not per job
        ledger.remove_job(self.config.results, eval_id)
        shutil.rmtree(self.settings.store / eval_id, ignore_errors=True)
        if entry and entry.get("job"):
            (self.settings.store / EXITS / f"{entry['job']}_{entry['index']}").unlink(missing_ok=True)


def _read(path: Path) -> Evaluation | None:
    try:
        return Evaluation.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _same(results: Path, eid: str, record: Evaluation) -> bool:
    """Whether the ledger's record of ``eid`` is this one (same run: same start and end)."""
    held = _read(ledger.record_path(results, eid))
    return held is not None and (held.started, held.finished) == (record.started, record.finished)


def _command(config: RunnerConfig, task: Task) -> list[str]:
    from jc_datalad.runner import evaluate_command

    return evaluate_command(config, task.team.name, task.commit, task.phase, task.split, task.eval_id)


# -- on the compute node -------------------------------------------------------------------------

def run_array_task(config: RunnerConfig, tasks_file: Path, index: int) -> Evaluation:
    """Evaluate task ``index`` of a batch in node-local scratch and publish it to the output store."""
    from jc_datalad.evaluate import prepare
    from jc_datalad.gitutil import ensure_identity
    from jc_datalad.runner import run_task

    task = Task.from_dict(json.loads(tasks_file.read_text(encoding="utf-8"))["tasks"][index])
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or f"local{os.getpid()}"
    scratch = Path(os.environ.get("JC_SCRATCH") or "/tmp") / f"jc-{job}-{index}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.chmod(scratch, 0o755)  # the sandbox user reaches its work folder through it
    try:
        ensure_identity()
        local = replace(config, work=scratch / "work")  # clones, staged hidden inputs: all node-local
        ctx = prepare(local, [task.split])
        out = scratch / "out" / task.eval_id
        ev = run_task(local, ctx, task, out).evaluation
        ev = replace(ev, runner={**ev.runner, "backend": "slurm", "job": f"{job}_{index}"})
        ledger.write_record(out, ev)  # platform faults too: the runner retries them
        publish(out, _settings(config).store, task.eval_id, f"{job}_{index}")
        return ev
    finally:
        from jc_datalad import sandbox

        sandbox.release_mounts(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def publish(folder: Path, store: Path, eval_id: str, tag: str) -> Path:
    """Copy a finished evaluation folder to ``<store>/<eval_id>`` under the store's ``flock``: it
    appears there complete, by rename, replacing an older try."""
    store.mkdir(parents=True, exist_ok=True)
    final = store / eval_id
    with open(store / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tmp = store / f".{eval_id}.{tag}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp, symlinks=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    return final

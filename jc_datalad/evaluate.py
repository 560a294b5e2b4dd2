"""One evaluation: a submission head re-executed on hidden data and scored.

:func:`prepare` gathers what the organizer pins for a whole pass (challenge
commit, image, hidden data) once; :func:`evaluate` then takes one submission
through clone, inspection, provenance, sandboxed re-execution, collection and
scoring, and returns an :class:`~jc_datalad.records.Evaluation` whatever
happens to it: a broken submission is a record, never an exception.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import stat
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import scorers
from jc_datalad import __version__, launcher, logs, sandbox
from jc_datalad.config import RunnerConfig, Team, default_cache_dir
from jc_datalad.errors import JcError
from jc_datalad.fsutil import remove_tree
from jc_datalad.gitutil import (
    annex_key_of_link,
    check_team_repository,
    env_with_annex_on_path,
    git,
    git_out,
    printable,
    read_blobs,
)
from jc_datalad.inspection import (
    MAX_NAME_BYTES,
    AnnexLink,
    HistoryError,
    annex_target_key,
    commit_messages,
    commits_between,
    inspect_submission,
    merge_base,
    parse_key,
    verify_content,
)
from jc_datalad.provenance import (
    MAX_RECORD_BYTES,
    ProvenanceError,
    RecordedStep,
    call_prefix_pattern,
    expand_command,
    iter_steps,
)
from jc_datalad.records import Evaluation, Status, evaluation_id, utcnow
from jc_datalad.spec import ChallengeSpec, ChallengeType, load_spec

lgr = logging.getLogger(__name__)



class Refusal(JcError):
    """The submission breaks a rule; nothing of it runs. The message is the reason shown to everyone."""


@dataclass(frozen=True)
class Hidden:
    split: str
    inputs: Path  # staged copy: regular files, readable by the sandbox user
    labels: Path
    inputs_id: str
    inputs_commit: str
    labels_id: str
    labels_commit: str
    items: tuple[str, ...]
    public_items: frozenset[str]


@dataclass(frozen=True)
class Context:
    """What the organizer pins for a whole runner pass."""

    config: RunnerConfig
    spec: ChallengeSpec
    challenge_commit: str
    image_path: str
    image_key: str
    rootfs: Path
    cmdexec: str
    hidden: dict[str, Hidden] = field(default_factory=dict)
    #: type training: the staged hidden training set (:class:`jc_datalad.workflows.training.HiddenTrain`)
    hidden_train: Any = None

    @cached_property
    def prefix(self) -> re.Pattern[str]:
        return call_prefix_pattern(self.cmdexec, self.image_path)


def public_part(items: list[str] | tuple[str, ...], fraction: float, seed: int) -> frozenset[str]:
    """Kaggle-style public part of the hidden items: decided per item from a seeded hash.

    Adding items never moves an existing item between parts. At least one item is public
    and, with two or more items, at least one is private.
    """
    def u(name: str) -> float:
        digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    ranked = sorted(items, key=u)
    public = {name for name in items if u(name) < fraction}
    if not public and ranked:
        public = {ranked[0]}
    if len(items) >= 2 and len(public) == len(items):
        public.discard(ranked[-1])
    return frozenset(public)


def _dataset_identity(path: Path) -> tuple[str, str]:
    dsid = git(["config", "-f", str(path / ".datalad" / "config"), "datalad.dataset.id"], check=False)
    return dsid.stdout.strip(), git_out(["rev-parse", "HEAD"], path)


def stage_inputs(source: Path, staged: Path) -> Path:
    """Copy the input files of ``source`` to ``staged`` once: regular files only (annexed content
    followed), without git's and DataLad's own files, readable by the sandbox user. The runner
    stages hidden inputs this way, and ``jc submit check`` the public ones."""
    if not staged.is_dir():
        tmp = staged.with_name(staged.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, tmp, symlinks=False, ignore=shutil.ignore_patterns(".git", ".datalad",
                                                                                    ".gitattributes"))
        sandbox.make_readable(tmp)
        os.replace(tmp, staged)
    sandbox.make_readable(staged)
    return staged


def stage_hidden(config: RunnerConfig, spec: ChallengeSpec, split: str) -> Hidden:
    """Copy the hidden inputs of ``split`` once per version into the work folder."""
    if spec.type is ChallengeType.RESULTS:  # no hidden inputs: labels of the public test inputs
        from jc_datalad.workflows import results

        return results.stage_hidden(config, spec, split)
    base = config.private / "hidden" / split
    inputs, labels = base / "inputs", base / "labels"
    for path in (inputs, labels):
        if not path.is_dir():
            raise JcError(f"{path}: hidden split {split!r} is missing in the private dataset")
    inputs_id, inputs_commit = _dataset_identity(inputs)
    labels_id, labels_commit = _dataset_identity(labels)
    staged = stage_inputs(inputs, config.work / "hidden" / f"{split}-{inputs_commit[:12]}")
    items = tuple(sorted(p.name for p in labels.iterdir() if not p.name.startswith(".")))
    lb = spec.leaderboard
    return Hidden(split, staged, labels, inputs_id, inputs_commit, labels_id, labels_commit, items,
                  public_part(items, lb.public_fraction, lb.seed))


def prepare(config: RunnerConfig, splits: list[str]) -> Context:
    """Everything pinned by the organizer for a pass: never read from a submission."""
    spec = load_spec(config.challenge)
    name = spec.container
    image_rel = f".datalad/environments/{name}/image"
    image = config.challenge / image_rel
    if not os.path.lexists(image):
        raise JcError(f"{image}: the challenge has no image for container {name!r}")
    key = annex_key_of_link(os.readlink(image)) if image.is_symlink() else _sha256(image)
    cmdexec = git_out(["config", "-f", str(config.challenge / ".datalad" / "config"),
                       f"datalad.containers.{name}.cmdexec"], check=False)
    if not cmdexec:
        raise JcError(f"{config.challenge}: container {name!r} has no call format; re-run `jc challenge new`")
    cache = config.cache or default_cache_dir()
    rootfs = launcher.rootfs_for(image, cache_root=cache / "rootfs")
    config.work.mkdir(parents=True, exist_ok=True)
    ctx = Context(config, spec, git_out(["rev-parse", "HEAD"], config.challenge), image_rel, key, rootfs,
                  cmdexec)
    for split in splits:
        ctx.hidden[split] = stage_hidden(config, spec, split)
    if spec.training is not None:
        from jc_datalad.workflows import training

        ctx = replace(ctx, hidden_train=training.stage_hidden_train(config))
    return ctx


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return "SHA256-" + h.hexdigest()


class _Stages:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(self.times.get(name, 0.0) + time.perf_counter() - start, 4)


@dataclass
class _Job:
    ctx: Context
    team: Team
    commit: str
    phase: str
    split: str
    workdir: Path
    out: Path
    stages: _Stages = field(default_factory=_Stages)
    steps: list[dict] = field(default_factory=list)
    recorded: list[RecordedStep] = field(default_factory=list)
    logbook: logs.LogBook = field(default_factory=logs.LogBook)
    verification: dict = field(default_factory=dict)  #: results challenges with ``verify: rerun``

    @property
    def clone(self) -> Path:
        return self.workdir / "clone"


def evaluate(
    ctx: Context,
    team: Team,
    commit: str,
    *,
    phase: str,
    split: str,
    out: Path,
    submission: dict | None = None,
    reproduce: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    eval_id: str | None = None,
) -> Evaluation:
    """Evaluate ``team``'s ``commit`` into the folder ``out``; always returns a record.

    ``eval_id``: the record's id when it is not the submission's own (a re-run on another
    hidden-data version, :mod:`jc_datalad.rerun`); it also names the work folder and the logs.
    """
    eid = eval_id or evaluation_id(team.name, commit, phase)
    workdir = ctx.config.work / "eval" / eid
    sandbox.release_mounts(workdir)  # an output area a killed pass left mounted
    remove_tree(workdir)
    workdir.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(ctx, team, commit, phase, split, workdir, out)
    started = utcnow()
    status, reason = Status.EVALUATED, None
    metrics: dict = {}
    public: dict = {}
    private: dict = {}
    items: list[dict] = []
    try:
        _fetch(job)
        _check(job)
        status, reason = _execute(job)
        if status is Status.EVALUATED:
            metrics, public, private, items, reason = _score(job)
            if reason:
                status = Status.FAILED
    except (Refusal, ProvenanceError) as exc:
        status, reason = Status.REFUSED, str(exc)
    except sandbox.InfrastructureError as exc:
        status, reason = Status.INFRASTRUCTURE, f"platform fault, retried: {exc}"
    except JcError as exc:
        status, reason = Status.ERROR, str(exc)
    except Exception as exc:  # the two-channel rule: one broken submission is a record, not a crash
        lgr.exception("evaluation %s failed", eid)
        status = Status.ERROR
        reason = f"internal error: {type(exc).__name__}: {exc} ({traceback.extract_tb(exc.__traceback__)[-1].name})"
    finally:
        sandbox.release_mounts(workdir)
        remove_tree(workdir)
    hidden = ctx.hidden.get(split)
    # the record boundary: of steps that ran on hidden data only system facts are kept (docs/logs.md)
    sealed = logs.seal(
        job.logbook, eval_id=eid, visibility=ctx.spec.logs, store=ctx.config.logs, out=out,
        published=(ctx.config.results, ctx.config.challenge), team_keys=team.keys, status=status.value,
        reason=reason, items=items, steps=job.steps, output_format=ctx.spec.interface.format,
        header=(f"evaluation {eid}", f"team {team.name}, commit {commit}, phase {phase}, split {split}",
                f"challenge {ctx.spec.id} at {ctx.challenge_commit}"),
        keep_predictions=hidden.items if hidden else None)
    reason, items, job.steps = sealed.reason, sealed.items, sealed.steps
    return Evaluation(
        id=eid,
        challenge={**ctx.spec.summary(), "commit": ctx.challenge_commit},
        team=team.name,
        submission={"repository": team.repository, "commit": commit, **(submission or {}),
                    "steps": [s.as_dict() for s in job.recorded]},
        phase=phase,
        split=split,
        status=status,
        reason=reason,
        hidden={
            "inputs": {"dataset_id": hidden.inputs_id, "commit": hidden.inputs_commit} if hidden else {},
            "labels": {"dataset_id": hidden.labels_id, "commit": hidden.labels_commit} if hidden else {},
            "public_items": sorted(hidden.public_items) if hidden else [],
            **({"train": ctx.hidden_train.parts} if ctx.hidden_train is not None else {}),
        },
        image={"name": ctx.spec.container, "key": ctx.image_key, "path": ctx.image_path},
        scorer={"name": ctx.spec.metrics.scorer, "version": scorers.__version__,
                **({"options": dict(ctx.spec.metrics.options)} if ctx.spec.metrics.options else {})},
        runner={"version": __version__, "backend": "local", "sandbox": "bubblewrap"},
        metrics=metrics,
        public=public,
        private=private,
        items=items,
        steps=job.steps,
        stages=job.stages.times,
        started=started,
        finished=utcnow(),
        # a refused record's commands were never checked: no `datalad rerun` line is kept for them
        verification=job.verification,
        reproduce=(reproduce or []) if job.recorded else [
            line for line in reproduce or [] if "datalad rerun" not in line],
    )


def _fetch(job: _Job) -> None:
    """Clone without checkout; the challenge's history comes from the organizer, not the team."""
    protocols = job.ctx.config.protocols
    with job.stages("clone"):
        check_team_repository(job.team.repository)
        git(["clone", "--quiet", "--no-checkout", "--no-tags", "--no-recurse-submodules",
             job.team.repository, str(job.clone)], protocols=protocols, timeout=600)
        if git(["cat-file", "-e", f"{job.commit}^{{commit}}"], job.clone, check=False).returncode:
            raise Refusal(f"commit {job.commit[:12]} is no longer in the team repository")
        git(["fetch", "--quiet", "--no-tags", str(job.ctx.config.challenge), "+HEAD:refs/jc/challenge"],
            job.clone, protocols=("file",))


def _check(job: _Job) -> None:
    ctx, spec = job.ctx, job.ctx.spec
    with job.stages("inspect"):
        base = merge_base(job.clone, job.commit, "refs/jc/challenge")
        if base is None:
            raise Refusal("the submission does not build on the challenge's history; clone the challenge "
                          "and commit on top of it")
        # refused here, before anything is checked out: odd or deep paths, and checkout totals
        inspection = inspect_submission(job.clone, base, job.commit, spec)
        if not inspection.ok:
            raise Refusal("; ".join(inspection.problems))
    with job.stages("provenance"):
        commits = commits_between(job.clone, base, job.commit)
        runinfo = {link.path: link for link in inspection.annexed if link.path.startswith(".datalad/runinfo/")}

        def sidecar_of(commit: str, record_id: str) -> bytes:
            path = f".datalad/runinfo/{record_id}"
            if path in runinfo:
                link = runinfo[path]
                if link.size > MAX_RECORD_BYTES:
                    raise Refusal(f"{path}: the run record is {link.size} bytes; the limit is {MAX_RECORD_BYTES}")
                return _annex_get(job, [link])[link.path].read_bytes()
            size = git(["cat-file", "-s", f"{commit}:{path}"], job.clone, check=False)
            if size.returncode:
                raise Refusal(f"{path}: the sidecar run record named in commit {commit[:12]} is missing")
            if int(size.stdout) > MAX_RECORD_BYTES:  # never read into memory
                raise Refusal(f"{path}: the run record is {size.stdout.strip()} bytes; the limit is "
                              f"{MAX_RECORD_BYTES}")
            return git(["cat-file", "blob", f"{commit}:{path}"], job.clone, binary=True).stdout

        job.recorded = recorded_steps(job.clone, commits, spec, ctx.prefix, ctx.image_path, sidecar_of)
    with job.stages("checkout"):
        git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", job.commit], job.clone)
        outputs = {o for step in job.recorded for o in step.outputs}
        needed = [link for link in inspection.annexed
                  if not link.path.startswith(".datalad/")
                  and not any(link.path == o or link.path.startswith(o + "/") for o in outputs)]
        _annex_get(job, needed)
        # annexed files that came with the challenge and the submission left as they are (a starter kit's
        # weights): from the organizer's public dataset, never from the team repository
        shipped = challenge_annexed(job.clone, job.commit, "refs/jc/challenge",
                                    skip=(*outputs, *_input_paths(spec), *(link.path for link in needed)))
        annex_get_from_challenge(job.clone, shipped, ctx.config.challenge)


#: The remote that names the organizer's public dataset in the runner's clone.
CHALLENGE_REMOTE = "jc-challenge"


def _input_paths(spec: ChallengeSpec) -> tuple[str, ...]:
    """Paths where hidden data is bound: never fetched from anywhere."""
    return (spec.interface.inputs, *((spec.training.inputs,) if spec.training else ()))


def _tree_links(repo: Path, ref: str) -> dict[str, str]:
    """path -> blob id of every symlink in ``ref``'s tree (subdatasets not entered)."""
    out = git(["ls-tree", "-r", "-z", "--full-tree", ref], repo, binary=True).stdout
    links = {}
    for entry in out.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[0] == b"120000":
            links[path.decode("utf-8", errors="surrogateescape")] = parts[2].decode()
    return links


def challenge_annexed(repo: Path, head: str, challenge_ref: str, *, skip: Sequence[str] = ()) -> list[AnnexLink]:
    """Annexed files of ``head``'s tree that the challenge's own tree (``challenge_ref``) holds as they
    are: the same link (so the same key at the same depth). Only links the organizer's tree has are
    read, never a blob the submission made. Paths under ``skip`` and ``.datalad/`` are left out."""
    ours = _tree_links(repo, challenge_ref)
    by_blob: dict[str, str] = {}
    for path, blob in ours.items():
        by_blob.setdefault(blob, path)
    found = []
    theirs = {path: blob for path, blob in _tree_links(repo, head).items()
              if blob in by_blob and not path.startswith(".datalad/")
              and not any(path == s or path.startswith(s.rstrip("/") + "/") for s in skip)}
    blobs = sorted(set(theirs.values()))
    targets = dict(zip(blobs, read_blobs(repo, blobs), strict=True))
    for path, blob in sorted(theirs.items()):
        key = annex_target_key(path, targets[blob].decode("utf-8", errors="replace"))
        if key is None:
            continue
        try:
            _backend, size = parse_key(key)
        except ValueError:
            continue
        if size is not None:  # the organizer's keys have sizes (SHA256E); a key without one is not fetched
            found.append(AnnexLink(path, key, size))
    return found


def annex_get_from_challenge(clone: Path, links: Sequence[AnnexLink], challenge: Path,
                             **kwargs: Any) -> dict[str, Path]:
    """Fetch ``links`` from the organizer's public dataset at ``challenge`` (a second remote of ``clone``,
    file protocol only), with :func:`annex_get`'s bound and key checks."""
    if not links:
        return {}
    if git(["remote", "get-url", CHALLENGE_REMOTE], clone, check=False).returncode:
        git(["remote", "add", CHALLENGE_REMOTE, str(challenge)], clone)
    kwargs.setdefault("origin", "the challenge dataset")
    kwargs.setdefault("missing_fix", f"the organizer must `datalad get` it in the challenge dataset {challenge}")
    return annex_get(clone, links, ("file",), remote=CHALLENGE_REMOTE, **kwargs)


def recorded_steps(
    repo: Path,
    commits: list[str],
    spec: ChallengeSpec,
    prefix,
    image_path: str,
    sidecar_of: Callable[[str, str], bytes],
) -> list[RecordedStep]:
    """The checked run records of ``commits``, or :class:`Refusal` saying what is wrong."""
    try:
        messages = commit_messages(repo, commits)  # one git call, bounded; not one per commit
    except HistoryError as exc:
        raise Refusal(str(exc)) from None
    steps = iter_steps(commits, messages.__getitem__, sidecar_of, prefix=prefix, image=image_path,
                       denied=spec.denied_paths, input_root=spec.interface.inputs)
    if not steps:
        why = (f" (committed {spec.interface.outputs}/ are scored only with the run record that wrote them, "
               "their provenance)" if spec.type is ChallengeType.RESULTS else "")
        raise Refusal(
            f"no `datalad containers-run` record between the challenge and the submission head{why}: record "
            f'your prediction with `datalad containers-run -n {spec.container} --input '
            f'{spec.interface.inputs} --output {spec.interface.outputs} "..."`'
        )
    produced = {o for step in steps for o in step.outputs}
    if spec.interface.outputs not in produced:
        raise Refusal(f"no recorded step writes the interface output {spec.interface.outputs!r}; "
                      f"use --output {spec.interface.outputs}")
    if spec.type is ChallengeType.RESULTS:
        return steps  # nothing runs on hidden data; a rerun binds every public input
    inputs_top = PurePosixPath(spec.interface.inputs).parts[0]
    # type training: the training step reads training.inputs, where the hidden training set is bound
    replaced = (spec.interface.inputs, *((spec.training.inputs,) if spec.training else ()))
    for step in steps:
        for path in step.inputs:
            under_interface = any(path == r or path.startswith(r + "/") for r in replaced)
            parts = PurePosixPath(path).parts  # '.' (the whole dataset) has none
            if parts and parts[0] == inputs_top and not under_interface:
                raise Refusal(f"commit {step.commit[:12]}: step input {path!r} is not available at re-execution; only "
                              f"{' and '.join(replaced)} {'are' if len(replaced) > 1 else 'is'} replaced by hidden data")
    if spec.training is not None:
        from jc_datalad.workflows import training

        training.check_steps(steps, spec)
    return steps


#: Least file size git-annex may write while it fetches (its own index and logs), whatever the keys say.
ANNEX_WRITE_FLOOR = 32 * 2**20


def _annex_get(job: _Job, links: Sequence[AnnexLink]) -> dict[str, Path]:
    return annex_get(job.clone, links, job.ctx.config.protocols)


def annex_get(
    clone: Path,
    links: Sequence[AnnexLink],
    protocols: Sequence[str],
    *,
    origin: str = "the team repository",
    missing_fix: str = "push it with `datalad push --to <team> --force checkdatapresent`",
    remote: str = "origin",
) -> dict[str, Path]:
    """Fetch the content of ``links`` from ``clone``'s origin (the team's repository for the
    runner, the participant's dataset for ``jc submit check``) and check it against each key.

    git-annex runs with a file size limit of the largest key's size (and
    :data:`ANNEX_WRITE_FLOOR`), so content larger than its key claims is cut off
    while it arrives; then each object must have its key's size and checksum.
    Returns path -> the checked object file; raises :class:`Refusal` naming the
    first file that is missing or wrong.
    """
    if not links:
        return {}
    env = env_with_annex_on_path()
    if not (clone / ".git" / "annex").is_dir():
        # --no-autoenable: a participant's special remotes are never enabled
        git(["annex", "init", "--quiet", "--no-autoenable", "jc-runner"], clone)
    import signal
    import subprocess

    bound = max(ANNEX_WRITE_FLOOR, *(link.size for link in links))
    keys = sorted({link.key for link in links})
    cmd = ["git", "annex", "get", "--quiet", "--from", remote, "--batch-keys"]
    if shutil.which("prlimit"):  # util-linux; without it git-annex's own checks still refuse the content
        cmd = ["prlimit", f"--fsize={bound}", *cmd]
    proc = subprocess.run(cmd, cwd=clone, input="".join(f"{k}\n" for k in keys), text=True,
                          errors="replace", env={**env, "GIT_ALLOW_PROTOCOL": ":".join(protocols)},
                          capture_output=True, timeout=1800)
    # git-annex gets EFBIG at the limit (or is killed by SIGXFSZ)
    cut_off = "File too large" in proc.stderr or proc.returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ)
    located = git(["annex", "contentlocation", "--batch"], clone, check=False,
                  input="".join(f"{k}\n" for k in keys)).stdout.split("\n")
    where = dict(zip(keys, located, strict=False))
    found: dict[str, Path] = {}
    for link in links:
        location = where.get(link.key, "")
        if location:
            problem = verify_content(clone / location, link.key)
        elif cut_off:
            problem = (f"its annexed content arrived larger than its key says ({link.size} bytes) and was cut "
                       f"off at {bound} bytes")
        else:
            problem = f"content not in {origin}"
        if problem is not None:
            fix = (missing_fix if not (location or cut_off)
                   else "re-add the file with `datalad save` and push it again")
            raise Refusal(f"{printable(link.path)}: {problem}; {fix}")
        found[link.path] = clone / location
    return found


def _execute(job: _Job) -> tuple[Status, str | None]:
    if job.ctx.spec.type is ChallengeType.RESULTS:  # the committed predictions are scored as submitted
        from jc_datalad.workflows import results

        return results.execute(job)
    hidden = job.ctx.hidden[job.split]
    train = job.ctx.hidden_train
    replay = Replay(job.ctx.rootfs, job.ctx.spec, job.clone, hidden.inputs, tuple(job.recorded), job.workdir,
                    training_inputs=train.path if train is not None else None)

    def on_step(number: int, command: str, result: sandbox.StepResult) -> None:
        # the logs stay out of the ledger: the log book caps them, logs.seal() decides where they go
        job.logbook.add(number, result, replay.log_dir, f"step-{number}")
        job.steps.append(logs.step_facts(number, command, result))

    try:
        failed = replay_steps(replay, job.out / "predictions", max_files=2 * len(hidden.items) + 16,
                              on_step=on_step, stages=job.stages)
    finally:
        if job.ctx.spec.training is not None:  # each step's kind and limits, in the record
            from jc_datalad.workflows import training

            training.annotate_steps(job.steps, job.ctx.spec)
    return failed or (Status.EVALUATED, None)


@dataclass(frozen=True)
class Replay:
    """What recorded steps are replayed on: the runner's evaluations and ``jc submit check`` alike."""

    rootfs: Path  #: the organizer's image, unpacked
    spec: ChallengeSpec  #: the challenge's rules (limits, interface), from the organizer's commit
    checkout: Path  #: the submission at its head commit; the steps see it read-only
    inputs: Path  #: staged input files (:func:`stage_inputs`), bound at the interface input path
    steps: tuple[RecordedStep, ...]
    workdir: Path  #: step logs go to ``logs/``, the output areas to ``outputs/``
    #: type training: the training data bound at ``training.inputs`` for the training step only
    training_inputs: Path | None = None

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"


def step_limits(spec: ChallengeSpec) -> sandbox.Limits:
    """The sandbox limits of one step, from ``resources`` in challenge.yaml."""
    res = spec.resources
    return sandbox.Limits(time_s=res.time_s, memory_bytes=res.memory_bytes, file_bytes=res.output_bytes,
                          processes=res.processes, cpus=res.cpus)


def replay_steps(
    replay: Replay,
    predictions: Path,
    *,
    max_files: int,
    on_step: Callable[[int, str, sandbox.StepResult], None],
    stages: Callable[[str], AbstractContextManager[None]] | None = None,
) -> tuple[Status, str] | None:
    """Run every recorded step in the runner's sandbox, then copy the interface output back to
    ``predictions`` (:func:`collect_outputs`); ``on_step`` hears of each step as it ends.

    Returns the status and reason of the first step that fails, else None. Raises
    :class:`Refusal` for outputs that break the rules, :class:`sandbox.InfrastructureError` when
    no sandbox can be set up.
    """
    if replay.spec.training is not None:  # two steps, two sandboxes (docs/workflows/training.md)
        from jc_datalad.workflows import training

        return training.replay_training(replay, predictions, max_files=max_files, on_step=on_step, stages=stages)
    stage = stages or (lambda _name: nullcontext())
    limits = step_limits(replay.spec)
    with sandbox.identity() as who, \
            sandbox.output_area(replay.workdir / "outputs", limits.file_bytes, who) as outputs_root:
        with stage("execute"):
            failed = _run_steps(replay, limits, who, outputs_root, on_step)
        if failed:
            return failed
        with stage("collect"):
            collect_outputs(outputs_root / replay.spec.interface.outputs, predictions, limits.file_bytes,
                            max_files=max_files)
    return None


def _run_steps(replay: Replay, limits: sandbox.Limits, who: sandbox.Identity, outputs_root: Path,
               on_step: Callable[[int, str, sandbox.StepResult], None]) -> tuple[Status, str] | None:
    """Each recorded step in turn, in the sandbox; the status and reason of the first that fails."""
    spec, checkout = replay.spec, replay.checkout
    root = sandbox.SANDBOX_ROOT
    deadline = time.monotonic() + spec.resources.evaluation_time_s
    binds = [sandbox.Bind(checkout, root)]
    sandbox.prepare_mountpoint(checkout, spec.interface.inputs)
    binds.append(sandbox.Bind(replay.inputs, f"{root}/{spec.interface.inputs}"))
    bound: dict[str, Path] = {}
    for step in replay.steps:
        for out in step.outputs:
            if out in bound:
                continue
            host = outputs_root / out
            host.mkdir(parents=True, exist_ok=True)
            os.chown(host, who.uid, who.gid)
            sandbox.prepare_mountpoint(checkout, out)
            binds.append(sandbox.Bind(host, f"{root}/{out}", writable=True))
            bound[out] = host
    for number, step in enumerate(replay.steps, 1):
        left = deadline - time.monotonic()
        if left <= 0:
            return Status.FAILED, (f"the evaluation exceeded its time limit of "
                                   f"{spec.resources.evaluation_time_s:g} s for all steps before step {number}")
        inputs = _expand_inputs(step.inputs, checkout, replay.inputs, spec.interface.inputs)
        command = expand_command(step.inner, inputs, step.outputs)
        this_step = replace(limits, time_s=min(limits.time_s, left))
        result = sandbox.run(
            replay.rootfs, ["/bin/sh", "-c", command], binds=binds, workdir=root, limits=this_step,
            log_dir=replay.log_dir, name=f"step-{number}", who=who,
        )
        on_step(number, command, result)
        if result.status is sandbox.StepStatus.INFRASTRUCTURE:
            return Status.INFRASTRUCTURE, (f"step {number}: the sandbox could not be started (a platform "
                                           "fault, not the submission's; it is retried)")
        if result.status is not sandbox.StepStatus.OK:
            return Status.FAILED, _failure_reason(number, command, result, this_step)
    return None


def _failure_reason(number: int, command: str, result: sandbox.StepResult, limits: sandbox.Limits) -> str:
    """The failure class and the limit; never the command's output (it ran on hidden data)."""
    return logs.step_failure(number, result, time_s=limits.time_s, memory_bytes=limits.memory_bytes)


def _expand_inputs(inputs: tuple[str, ...], clone: Path, hidden: Path, interface: str) -> list[str]:
    """Expand globs in recorded inputs against what the sandbox will see."""
    out: list[str] = []
    for path in inputs:
        if not glob.has_magic(path):
            out.append(path)
            continue
        if path.startswith(interface + "/"):
            base, rel, prefix = hidden, path[len(interface) + 1:], interface + "/"
        else:
            base, rel, prefix = clone, path, ""
        matches = sorted(glob.glob(rel, root_dir=base))
        out.extend(prefix + m for m in matches)
    return out


#: Bounds on what one evaluation's outputs may hold, whatever the size limit allows.
MAX_OUTPUT_DEPTH = 8


def collect_outputs(source: Path, dest: Path, limit_bytes: int, max_files: int = 10_000) -> list[str]:
    """Copy the command's outputs back as regular files only; refuse links, special files, more
    than ``max_files`` files, folders deeper than :data:`MAX_OUTPUT_DEPTH`, names that are not
    printable UTF-8 (a name is shown to people and written to the ledger) and hidden names."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    copied: list[str] = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        rel_dir = Path(dirpath).relative_to(source)
        if len(rel_dir.parts) >= MAX_OUTPUT_DEPTH:
            raise Refusal(f"outputs: folders nested deeper than {MAX_OUTPUT_DEPTH} levels; write a flat folder")
        for name in [*dirnames, *filenames]:
            _check_output_name(name)
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                raise Refusal(f"outputs: {rel_dir / name} is a symlink; write regular files only")
            (dest / rel_dir / name).mkdir(exist_ok=True)
        for name in filenames:
            rel = rel_dir / name
            src = os.path.join(dirpath, name)
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                raise Refusal(f"outputs: {rel} is a symlink to {os.readlink(src)!r}; write regular files only")
            if not stat.S_ISREG(st.st_mode):
                raise Refusal(f"outputs: {rel} is not a regular file")
            total += st.st_size
            if total > limit_bytes:
                raise Refusal(f"outputs exceed the {limit_bytes}-byte output limit")
            if len(copied) >= max_files:
                raise Refusal(f"outputs hold more than {max_files} files; write one file per item")
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(dest / rel, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            copied.append(str(rel))
    return copied


def _check_output_name(name: str) -> None:
    """Refuse a name that is not printable UTF-8 (os.walk hands undecodable bytes over as surrogates)."""
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(f"outputs: a file name is not UTF-8 ({raw[:60]!r}); use plain names such as "
                      "item_001.tif") from None
    if len(raw) > MAX_NAME_BYTES or not text.isprintable():
        raise Refusal(f"outputs: file name {text[:60]!r} is too long or holds control characters; "
                      "use plain names such as item_001.tif")
    if text.startswith("."):
        # .git, .gitignore, .gitattributes or .datalad would keep predictions out of the ledger
        raise Refusal(f"outputs: {text[:60]!r} is a hidden name; write one plain file per item")


def _score(job: _Job) -> tuple[dict, dict, dict, list[dict], str | None]:
    """Score the copied predictions in a sandbox of their own that holds them and the labels only."""
    from jc_datalad import scoring  # imported here: this function is the module's only user

    ctx = job.ctx
    hidden = ctx.hidden[job.split]
    with job.stages("score"):
        labels = scoring.stage_labels(
            hidden.labels, hidden.items,
            ctx.config.work / "hidden" / f"{job.split}-labels-{hidden.labels_commit[:12]}")
        with sandbox.identity() as who:
            result = scoring.score_sealed(
                job.out / "predictions", labels, scorer=ctx.spec.metrics.scorer, items=hidden.items,
                public_items=hidden.public_items,
                limits=scoring.scoring_limits(ctx.spec.resources.memory_bytes),
                log_dir=job.workdir / "score", options=ctx.spec.metrics.options, who=who)
    if result.reason:
        return {}, {}, {}, [], result.reason
    items = [
        {"name": row.name, "part": "public" if row.name in hidden.public_items else "private",
         "metrics": row.metrics, "error": row.error}
        for row in result.items
    ]
    return result.metrics, result.public, result.private, items, None

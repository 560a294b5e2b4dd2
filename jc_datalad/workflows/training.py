"""Type ``training`` (Jülich options 2.2 and 2.3): the runner trains the submission, then predicts.

A training submission records exactly two steps: a training step that writes the model
folder of challenge.yaml (``training.model``), then the prediction step that writes the
interface output. The runner replays them in two sandboxes with different views
(docs/workflows/training.md):

- training step: the organizer's hidden training set (every ``hidden/train/<part>``,
  labels included) at ``training.inputs``; an empty writable model folder; the committed
  ``training.pretrained`` weights readable (option 2.2); its own limits
  (``training.resources``). The hidden test inputs and labels are not there.
- prediction step: the hidden test inputs at ``interface.inputs``; the model the training
  step just wrote, copied out as regular files, read-only at ``training.model``; the
  pretrained weights hidden; the limits of ``resources``.

Neither step sees the participant's committed model folder (an empty folder or the fresh
model is bound over it) nor git's object store, where small committed files also live.
One time limit (``resources.evaluation_time``) bounds both steps together.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jc_datalad import logs, sandbox
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError
from jc_datalad.evaluate import Refusal, Replay, collect_outputs, stage_inputs, step_limits
from jc_datalad.gitutil import git, git_out
from jc_datalad.provenance import RecordedStep, expand_command
from jc_datalad.records import Status
from jc_datalad.spec import ChallengeSpec, Resources

__all__ = ["KINDS", "HiddenTrain", "annotate_steps", "check_steps", "replay_training", "stage_hidden_train",
           "training_limits"]

lgr = logging.getLogger(__name__)

#: The two kinds of step a training submission records, in order.
KINDS = ("training", "prediction")
#: At most this many files in a trained model folder (checked when it is copied out).
MAX_MODEL_FILES = 10_000


@dataclass(frozen=True)
class HiddenTrain:
    """The organizer's hidden training set, staged once per version for the training step."""

    path: Path  #: staged copy: one folder per part, regular files readable by the sandbox user
    parts: dict[str, dict[str, str]]  #: part -> {"dataset_id", "commit"}, for the record


def _identity(path: Path) -> dict[str, str]:
    dsid = git(["config", "-f", str(path / ".datalad" / "config"), "datalad.dataset.id"], check=False)
    return {"dataset_id": dsid.stdout.strip(), "commit": git_out(["rev-parse", "HEAD"], path)}


def stage_hidden_train(config: RunnerConfig) -> HiddenTrain:
    """Copy every ``hidden/train/<part>`` of the private dataset, labels included, into the work
    folder once per version; the copy is what the training step sees at ``training.inputs``
    (``<training.inputs>/<part>/...``, mirroring the public training data)."""
    base = config.private / "hidden" / "train"
    parts = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []
    if not parts:
        raise JcError(f"{base}: a training challenge needs the hidden training set here (hidden/train/<part>, "
                      "labels included); make it with `jc challenge new` from a training template")
    identity = {part.name: _identity(part) for part in parts}
    for part in parts:
        for dirpath, dirnames, filenames in os.walk(part):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".datalad")]
            missing = [f for f in filenames if not os.path.exists(os.path.join(dirpath, f))]
            if missing:
                raise JcError(f"{os.path.join(dirpath, missing[0])}: content not here; "
                              f"`datalad get -r {base}` in the private dataset")
    version = "-".join(identity[p.name]["commit"][:12] for p in parts)
    staged = config.work / "hidden" / f"train-{version}"
    if not staged.is_dir():
        tmp = staged.with_name(staged.name + ".parts")
        for part in parts:
            stage_inputs(part, tmp / part.name)
        sandbox.make_readable(tmp)
        os.replace(tmp, staged)
    return HiddenTrain(staged, identity)


def training_limits(spec: ChallengeSpec) -> sandbox.Limits:
    """The training step's sandbox limits, from ``training.resources``."""
    assert spec.training is not None
    return _limits(spec.training.resources)


def _limits(res: Resources) -> sandbox.Limits:
    return sandbox.Limits(time_s=res.time_s, memory_bytes=res.memory_bytes, file_bytes=res.output_bytes,
                          processes=res.processes, cpus=res.cpus)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_steps(steps: Sequence[RecordedStep], spec: ChallengeSpec) -> None:
    """Exactly one training step (writes ``training.model``), then the prediction step (writes the
    interface output); else :class:`Refusal` saying what to record."""
    training = spec.training
    assert training is not None
    how = (f"record two steps: `datalad containers-run -n {spec.container} --input {training.inputs} --output "
           f"{training.model} \"python code/train.py ...\"`, then `datalad containers-run -n {spec.container} "
           f"--input {spec.interface.inputs} --input {training.model} --output {spec.interface.outputs} "
           f"\"python code/predict.py ...\"`")
    if len(steps) != 2:
        raise Refusal(f"a training challenge takes exactly two recorded steps, training then prediction; found "
                      f"{len(steps)}: {how}")
    train, predict = steps
    if training.model not in train.outputs:
        raise Refusal(f"commit {train.commit[:12]}: the first recorded step must be the training step, whose "
                      f"outputs include the model folder {training.model!r}; {how}")
    if spec.interface.outputs not in predict.outputs:
        raise Refusal(f"commit {predict.commit[:12]}: the second recorded step must be the prediction step, "
                      f"whose outputs include {spec.interface.outputs!r}; {how}")
    for out in train.outputs:
        if _under(out, spec.interface.outputs) or _under(spec.interface.outputs, out):
            raise Refusal(f"commit {train.commit[:12]}: the training step writes {out!r}; the predictions "
                          f"are the prediction step's alone; {how}")
    for out in predict.outputs:
        if _under(out, training.model) or _under(training.model, out):
            raise Refusal(f"commit {predict.commit[:12]}: the prediction step writes {out!r}; it reads the "
                          f"trained model {training.model!r} and never changes it; {how}")
    for path in predict.inputs:
        if _under(path, training.inputs):
            raise Refusal(f"commit {predict.commit[:12]}: the prediction step reads {path!r}; the training "
                          f"data is the training step's alone; {how}")
    for path in train.inputs:
        if _under(path, spec.interface.inputs):
            raise Refusal(f"commit {train.commit[:12]}: the training step reads the test inputs {path!r}; "
                          f"train on {training.inputs} only; {how}")


def annotate_steps(steps: list[dict[str, Any]], spec: ChallengeSpec) -> None:
    """Add each executed step's kind and the resources it was given to its record entry."""
    assert spec.training is not None
    given = (spec.training.resources, spec.resources)
    for entry in steps:
        number = entry.get("number")
        if isinstance(number, int) and 1 <= number <= len(KINDS):
            res = given[number - 1]
            entry["kind"] = KINDS[number - 1]
            entry["resources"] = {"time_s": res.time_s, "memory_bytes": res.memory_bytes, "cpus": res.cpus,
                                  "gpus": res.gpus, "output_bytes": res.output_bytes,
                                  "processes": res.processes}


def _expand(paths: Sequence[str], checkout: Path, mounted: dict[str, Path]) -> list[str]:
    """Globs in recorded inputs expanded against what the step's sandbox will see."""
    out: list[str] = []
    for path in paths:
        if not glob.has_magic(path):
            out.append(path)
            continue
        base, rel, prefix = checkout, path, ""
        for at, host in mounted.items():
            if path.startswith(at + "/"):
                base, rel, prefix = host, path[len(at) + 1:], at + "/"
                break
        out.extend(prefix + m for m in sorted(glob.glob(rel, root_dir=base)))
    return out


def _empty(workdir: Path, name: str) -> Path:
    path = workdir / "empty" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def replay_training(
    replay: Replay,
    predictions: Path,
    *,
    max_files: int,
    on_step: Callable[[int, str, sandbox.StepResult], None],
    stages: Callable[[str], AbstractContextManager[None]] | None = None,
) -> tuple[Status, str] | None:
    """The training step, then the prediction step with the model it wrote; the interface output is
    copied back to ``predictions``. Returns, raises and reports as
    :func:`jc_datalad.evaluate.replay_steps`."""
    spec, training = replay.spec, replay.spec.training
    assert training is not None
    if replay.training_inputs is None:
        raise JcError("a training replay needs the training data to bind at training.inputs")
    check_steps(replay.steps, spec)
    stage = stages or (lambda _name: nullcontext())
    train_step, predict_step = replay.steps
    train_limits, predict_limits = training_limits(spec), step_limits(spec)
    root, checkout = sandbox.SANDBOX_ROOT, replay.checkout
    deadline = time.monotonic() + spec.resources.evaluation_time_s
    for path in {spec.interface.inputs, training.inputs, training.model, ".git/objects",
                 *train_step.outputs, *predict_step.outputs, *([training.pretrained] if training.pretrained else [])}:
        sandbox.prepare_mountpoint(checkout, path)
    # git's object store holds every committed file, the committed model's small files included
    hide_git = sandbox.Bind(_empty(replay.workdir, "git-objects"), f"{root}/.git/objects")
    model_copy = replay.workdir / "trained-model"

    def run(number: int, step: RecordedStep, binds: list[sandbox.Bind], limits: sandbox.Limits,
            mounted: dict[str, Path]) -> tuple[Status, str] | None:
        left = deadline - time.monotonic()
        if left <= 0:
            # the runner's own wording (logs.SYSTEM_REASONS): a reason of system facts stays public
            return Status.FAILED, (f"the evaluation exceeded its time limit of "
                                   f"{spec.resources.evaluation_time_s:g} s for all steps before step {number}")
        command = expand_command(step.inner, _expand(step.inputs, checkout, mounted), step.outputs)
        this_step = replace(limits, time_s=min(limits.time_s, left))
        result = sandbox.run(replay.rootfs, ["/bin/sh", "-c", command], binds=binds, workdir=root,
                             limits=this_step, log_dir=replay.log_dir, name=f"step-{number}", who=who)
        on_step(number, command, result)
        if result.status is sandbox.StepStatus.INFRASTRUCTURE:
            return Status.INFRASTRUCTURE, (f"step {number}: the sandbox could not be started (a platform "
                                           "fault, not the submission's; it is retried)")
        if result.status is not sandbox.StepStatus.OK:
            return Status.FAILED, logs.step_failure(number, result, time_s=this_step.time_s,
                                                    memory_bytes=this_step.memory_bytes)
        return None

    with sandbox.identity() as who:
        with sandbox.output_area(replay.workdir / "outputs-training", train_limits.file_bytes, who) as area:
            binds = [sandbox.Bind(checkout, root), hide_git,
                     sandbox.Bind(replay.training_inputs, f"{root}/{training.inputs}")]
            for out in dict.fromkeys(train_step.outputs):
                host = area / out
                host.mkdir(parents=True, exist_ok=True)
                os.chown(host, who.uid, who.gid)
                binds.append(sandbox.Bind(host, f"{root}/{out}", writable=True))
            with stage("execute"):
                failed = run(1, train_step, binds, train_limits, {training.inputs: replay.training_inputs})
            if failed:
                return failed
            with stage("collect"):
                try:
                    collect_outputs(area / training.model, model_copy, train_limits.file_bytes,
                                    max_files=MAX_MODEL_FILES)
                except Refusal as exc:
                    raise Refusal(f"the training step's model folder {training.model!r}: "
                                  f"{str(exc).removeprefix('outputs: ')}") from None
        sandbox.make_readable(model_copy)
        with sandbox.output_area(replay.workdir / "outputs", predict_limits.file_bytes, who) as area:
            binds = [sandbox.Bind(checkout, root), hide_git,
                     sandbox.Bind(replay.inputs, f"{root}/{spec.interface.inputs}"),
                     sandbox.Bind(model_copy, f"{root}/{training.model}"),
                     # the training data and the starting weights are the training step's alone
                     sandbox.Bind(_empty(replay.workdir, "no-training-data"), f"{root}/{training.inputs}")]
            if training.pretrained:
                binds.append(sandbox.Bind(_empty(replay.workdir, "no-pretrained"), f"{root}/{training.pretrained}"))
            for out in dict.fromkeys(predict_step.outputs):
                host = area / out
                host.mkdir(parents=True, exist_ok=True)
                os.chown(host, who.uid, who.gid)
                binds.append(sandbox.Bind(host, f"{root}/{out}", writable=True))
            with stage("execute"):
                failed = run(2, predict_step, binds, predict_limits,
                             {spec.interface.inputs: replay.inputs, training.model: model_copy})
            if failed:
                return failed
            with stage("collect"):
                collect_outputs(area / spec.interface.outputs, predictions, predict_limits.file_bytes,
                                max_files=max_files)
    return None


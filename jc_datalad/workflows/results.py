"""Submission type ``results`` (the Jülich whitepaper's option 1): predictions scored as submitted.

The participant's committed predictions (the ``interface.outputs`` folder at the submitted
commit) are scored against the hidden labels of the public test inputs; nothing is
re-executed on hidden data, because there is none: a results challenge publishes its test
inputs and keeps only their labels. The run record that wrote the predictions is still
required (it is their provenance; :func:`jc_datalad.evaluate.recorded_steps` refuses a
submission without one).

With ``verify: rerun`` in challenge.yaml the runner also re-executes the recorded steps in
its sandbox on the same public inputs and compares what they write, byte for byte, with the
committed predictions; the record's ``verification`` says whether they were reproduced and
names the first file that differs.

Committed predictions are hostile like any output: they are materialised from the checkout
without following a link (annexed content is fetched from the team's repository and checked
against its key) and copied with :func:`jc_datalad.evaluate.collect_outputs`, which bounds
their size, count, depth and names exactly as it does for outputs of the sandbox.
"""

from __future__ import annotations

import dataclasses
import filecmp
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from jc_datalad import logs, sandbox
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError
from jc_datalad.evaluate import (
    Hidden,
    Refusal,
    Replay,
    annex_get,
    collect_outputs,
    replay_steps,
    stage_inputs,
)
from jc_datalad.fsutil import remove_tree
from jc_datalad.gitutil import git_out
from jc_datalad.inspection import AnnexLink, annex_target_key, parse_key
from jc_datalad.records import Status
from jc_datalad.spec import ChallengeSpec, Verify

if TYPE_CHECKING:
    from jc_datalad.evaluate import _Job

lgr = logging.getLogger(__name__)

__all__ = ["committed_predictions", "execute", "first_difference", "public_inputs_spec", "stage_hidden",
           "verification"]

#: Longest relative path kept in a record's ``first_difference`` (it is the participant's file name).
MAX_DIFFERENCE_CHARS = 255


def public_inputs_spec(spec: ChallengeSpec) -> ChallengeSpec:
    """``spec`` with the whole public input folder (``inputs/``) as its interface input.

    A rerun binds every public input the recorded steps may read (``inputs/train`` to fit,
    ``inputs/test`` to predict), read-only, where the participant's clone has them.
    """
    top = PurePosixPath(spec.interface.inputs).parts[0]
    return dataclasses.replace(spec, interface=dataclasses.replace(spec.interface, inputs=top))


def stage_hidden(config: RunnerConfig, spec: ChallengeSpec, split: str) -> Hidden:
    """The labels of ``split`` and, for a rerun, the challenge's public inputs staged once.

    A results challenge has no hidden inputs: ``hidden/<split>/labels`` hold the truth of the
    public test inputs. The record names the public test inputs' dataset as the inputs scored.
    """
    from jc_datalad.evaluate import _dataset_identity, public_part

    labels = config.private / "hidden" / split / "labels"
    if not labels.is_dir():
        raise JcError(f"{labels}: hidden labels of split {split!r} are missing in the private dataset")
    public_test = config.challenge / spec.interface.inputs
    if not public_test.is_dir():
        raise JcError(f"{public_test}: the public test inputs are missing in the challenge dataset")
    inputs_id, inputs_commit = _dataset_identity(public_test)
    labels_id, labels_commit = _dataset_identity(labels)
    inputs = config.challenge / public_inputs_spec(spec).interface.inputs
    if spec.verify is Verify.RERUN:
        missing = _missing_content(inputs)
        if missing:
            raise JcError(f"{missing}: content of the public inputs is not in the challenge dataset; "
                          f"`datalad get -r {inputs}`")
        commit = git_out(["rev-parse", "HEAD"], config.challenge)
        inputs = stage_inputs(inputs, config.work / "public" / f"inputs-{commit[:12]}")
    items = tuple(sorted(p.name for p in labels.iterdir() if not p.name.startswith(".")))
    lb = spec.leaderboard
    return Hidden(split, inputs, labels, inputs_id, inputs_commit, labels_id, labels_commit, items,
                  public_part(items, lb.public_fraction, lb.seed))


def _missing_content(folder: Path) -> Path | None:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".datalad")]
        for name in filenames:
            if not os.path.exists(os.path.join(dirpath, name)):
                return Path(dirpath) / name
    return None


def committed_predictions(
    checkout: Path,
    outputs: str,
    dest: Path,
    *,
    limit_bytes: int,
    max_files: int,
    protocols: Sequence[str],
    origin: str = "the team repository",
    missing_fix: str = "push it with `datalad push --to <team> --force checkdatapresent`",
) -> list[str]:
    """Copy the predictions committed at ``checkout/outputs`` to ``dest`` as regular files.

    Annexed files (links into ``.git/annex/objects``, whose keys the inspection checked) are
    fetched from ``checkout``'s origin and checked against their keys; any other link is
    kept as a link, so that :func:`collect_outputs` refuses it. Nothing is opened through a
    link. Returns the relative paths copied; raises :class:`Refusal` with the reason.
    """
    source = checkout
    for part in PurePosixPath(outputs).parts:
        source = source / part
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise Refusal(f"{outputs}/: not in the submitted commit; commit the predictions your recorded "
                          "run wrote (`datalad containers-run` saves them)") from None
        if not stat.S_ISDIR(st.st_mode):
            raise Refusal(f"{outputs}: '{source.relative_to(checkout)}' is not a folder in the submitted "
                          "commit; commit the predictions as plain files in a folder")
    links = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                continue
            rel = os.path.relpath(full, checkout)
            key = annex_target_key(rel, os.readlink(full))
            if key is None:
                continue  # left a link: collect_outputs names and refuses it
            try:
                _, size = parse_key(key)
            except ValueError:
                continue
            links.append(AnnexLink(rel, key, size or 0))
    fetched = annex_get(checkout, links, protocols, origin=origin, missing_fix=missing_fix)
    staging = dest.with_name(dest.name + ".committed")
    remove_tree(staging)
    try:
        _mirror(source, staging, checkout, fetched)
        try:
            return collect_outputs(staging, dest, limit_bytes, max_files=max_files)
        except Refusal as exc:  # its reasons say "outputs"; these are the committed predictions
            raise Refusal(f"committed {outputs}/: {str(exc).removeprefix('outputs: ')}") from None
    finally:
        remove_tree(staging)


def _mirror(source: Path, staging: Path, checkout: Path, fetched: dict[str, Path]) -> None:
    """``source`` as a tree of hard links (copies across file systems), annexed files replaced by
    their checked content; other links are recreated as links, never followed."""
    staging.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = staging / Path(dirpath).relative_to(source)
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            target = here / name
            content = fetched.get(os.path.relpath(full, checkout))
            if content is not None:
                _link_or_copy(content, target)
            elif os.path.islink(full):
                os.symlink(os.readlink(full), target)
            elif name in dirnames:
                target.mkdir()
            elif stat.S_ISREG(os.lstat(full).st_mode):
                _link_or_copy(Path(full), target)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fin, open(target, "wb") as fout:
            while chunk := fin.read(2**20):
                fout.write(chunk)


def first_difference(committed: Path, rerun: Path) -> str | None:
    """The first relative path, in sorted order, present in only one tree or with other bytes."""
    a, b = _files(committed), _files(rerun)
    for rel in sorted(a.keys() | b.keys()):
        if rel not in a or rel not in b or not filecmp.cmp(a[rel], b[rel], shallow=False):
            return rel
    return None


def _files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = path
    return found


def verification(reproduced: bool, first: str | None, reason: str | None = None) -> dict[str, Any]:
    """The record's ``verification`` field; ``reason`` says why a rerun did not finish."""
    out: dict[str, Any] = {"mode": Verify.RERUN.value, "reproduced": reproduced,
                           "first_difference": None if first is None else first[:MAX_DIFFERENCE_CHARS]}
    if reason is not None:
        out["reason"] = reason
    return out


def execute(job: _Job) -> tuple[Status, str | None]:
    """The runner's evaluation step for a results submission: collect the committed predictions
    into ``job.out/predictions`` (what is scored) and, with ``verify: rerun``, re-execute the
    recorded steps on the public inputs and compare."""
    ctx, spec = job.ctx, job.ctx.spec
    hidden = ctx.hidden[job.split]
    max_files = 2 * len(hidden.items) + 16
    with job.stages("collect"):
        committed_predictions(job.clone, spec.interface.outputs, job.out / "predictions",
                              limit_bytes=spec.resources.output_bytes, max_files=max_files,
                              protocols=ctx.config.protocols)
    if spec.verify is not Verify.RERUN:
        return Status.EVALUATED, None
    replay = Replay(ctx.rootfs, public_inputs_spec(spec), job.clone, hidden.inputs, tuple(job.recorded),
                    job.workdir)

    def on_step(number: int, command: str, result: sandbox.StepResult) -> None:
        job.logbook.add(number, result, replay.log_dir, f"step-{number}")
        job.steps.append(logs.step_facts(number, command, result))

    rerun = job.workdir / "rerun"
    try:
        failed = replay_steps(replay, rerun, max_files=max_files, on_step=on_step, stages=job.stages)
    except Refusal as exc:  # the rerun's outputs break a rule: not reproduced, still scored as submitted
        job.verification = verification(False, None, f"the re-executed steps' outputs were refused: {exc}")
        return Status.EVALUATED, None
    if failed is not None:
        status, reason = failed
        if status is Status.INFRASTRUCTURE:
            return failed  # the platform's fault: retried on a later pass
        job.verification = verification(False, None, f"the re-executed steps failed: {reason}")
        return Status.EVALUATED, None
    with job.stages("compare"):
        first = first_difference(job.out / "predictions", rerun)
    job.verification = verification(first is None, first)
    return Status.EVALUATED, None

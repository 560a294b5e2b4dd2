"""``jc reproduce submission`` and ``jc reproduce score``: a reader redoes a published submission.

Level (a) of docs/reproduce.md (``submission``):

Anyone who can clone the public archive of submissions (:mod:`jc_datalad.archive`) runs this
on their own machine: it clones the archive at ``refs/submissions/<id>``, gets the public
inputs and the container image from it, replays the submission's checked run records with the
runner's own code (the launcher's image, the runner's sandbox, the inner commands only, on the
public development inputs) and compares what they write, byte for byte, with the predictions
the participant committed. No organizer file is needed, and no recorded interpreter path is
used, so records made with the older absolute-interpreter call format replay as well.

Level (c) (``score``), once the organizers released the hidden data (:mod:`jc_datalad.release`):
the same replay on the released hidden inputs, then the challenge's scorer in the runner's
scoring sandbox against the released labels; the scores are compared with the recorded ones.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jc_datalad.errors import JcError
from jc_datalad.evaluate import Refusal, annex_get, recorded_steps
from jc_datalad.gitutil import git, git_out, printable
from jc_datalad.inspection import Inspection, commits_between, inspect_submission, merge_base
from jc_datalad.provenance import ProvenanceError, RecordedStep, call_prefix_pattern
from jc_datalad.spec import SPEC_FILE, ChallengeSpec, ChallengeType, parse_spec

lgr = logging.getLogger(__name__)

REF_PREFIX = "refs/submissions/"
#: Transports a reader's clone of the archive may use.
_PROTOCOLS = ("file", "https", "ssh")


@dataclass(frozen=True)
class ReaderVerdict:
    """What a reader's rerun of a published submission found."""

    evaluation: str
    commit: str
    identical: bool
    first_difference: str | None  #: ``<outputs>/<file>`` that differs or is missing on one side
    problem: str | None = None  #: why the rerun did not finish (then ``identical`` is False)

    def as_dict(self) -> dict:
        return {"evaluation": self.evaluation, "commit": self.commit, "identical": self.identical,
                "first_difference": self.first_difference, "problem": self.problem}

    def line(self) -> str:
        if self.identical:
            return (f"identical: the recorded steps of {self.evaluation} ({self.commit[:12]}), rerun on the public "
                    "inputs, write the committed predictions byte for byte")
        if self.problem:
            return f"not reproduced: {self.problem}"
        return f"not reproduced: first difference {printable(self.first_difference or '', 200)}"


@dataclass(frozen=True)
class _Opened:
    """A reader's clone of the archive at one evaluation, its rules and checked run records."""

    into: Path
    base: str
    head: str
    spec: ChallengeSpec
    image_path: str
    inspection: Inspection
    steps: list[RecordedStep]


def _open(archive: str, eval_id: str, into: Path) -> _Opened:
    """Clone ``archive`` at ``refs/submissions/<eval_id>`` into ``into``; read the rules from the
    challenge commit it builds on and check its run records as the runner does; get its annexed
    content and the container image from the archive."""
    if into.exists() and any(into.iterdir()):
        raise JcError(f"{into}: exists and is not empty; choose another folder with --into")
    ref = f"{REF_PREFIX}{eval_id}"
    git(["clone", "--quiet", "--no-checkout", archive, str(into)], protocols=_PROTOCOLS)
    if git(["fetch", "--quiet", "--no-tags", "origin", f"+{ref}:{ref}"], into, check=False,
           protocols=_PROTOCOLS).returncode:
        raise JcError(f"{archive} has no submission {eval_id} ({ref}): it is not published (yet); the "
                      "challenge's submission.publish setting says when it will be")
    head = git_out(["rev-parse", f"{ref}^{{commit}}"], into)
    git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", head], into)
    base = merge_base(into, head, "refs/remotes/origin/HEAD")
    if base is None:
        raise JcError(f"{eval_id}: the archived commit does not build on the challenge in {archive}")
    spec = parse_spec(yaml.safe_load(git_out(["show", f"{base}:{SPEC_FILE}"], into)), f"{base[:12]}:{SPEC_FILE}")
    with tempfile.NamedTemporaryFile("w", suffix=".config") as cfg:
        cfg.write(git_out(["show", f"{base}:.datalad/config"], into))
        cfg.flush()
        cmdexec = git_out(["config", "-f", cfg.name, f"datalad.containers.{spec.container}.cmdexec"], check=False)
    image_path = f".datalad/environments/{spec.container}/image"
    inspection = inspect_submission(into, base, head, spec)
    if not inspection.ok:
        raise JcError("; ".join(inspection.problems))

    def sidecar_of(commit: str, record_id: str) -> bytes:
        return git(["cat-file", "blob", f"{commit}:.datalad/runinfo/{record_id}"], into, binary=True).stdout

    try:
        steps = recorded_steps(into, commits_between(into, base, head), spec,
                               call_prefix_pattern(cmdexec, image_path), image_path, sidecar_of)
    except (Refusal, ProvenanceError) as exc:
        raise JcError(f"{eval_id}: the run records cannot be replayed: {exc}") from None
    annex_get(into, list(inspection.annexed), _PROTOCOLS, origin="the archive",
              missing_fix="the archive lacks it; tell the organizers")
    git(["annex", "get", "--quiet", "--", image_path], into, timeout=3600)
    return _Opened(into, base, head, spec, image_path, inspection, steps)


def _committed(opened: _Opened, dest: Path, count: int) -> None:
    from jc_datalad.workflows import results

    results.committed_predictions(opened.into, opened.spec.interface.outputs, dest,
                                  limit_bytes=opened.spec.resources.output_bytes, max_files=2 * count + 16,
                                  protocols=_PROTOCOLS, origin="the archive", missing_fix="the archive lacks it")


def _rerun(opened: _Opened, dest: Path) -> str | None:
    """Replay the recorded steps with the runner's code on ``into/<interface inputs>``; None when
    they finished, else why not."""
    from jc_datalad import submit
    from jc_datalad.workflows import results

    spec = results.public_inputs_spec(opened.spec) if opened.spec.type is ChallengeType.RESULTS else opened.spec
    history = submit._History.read(opened.into, opened.base, opened.head)
    done = submit._replay(opened.into, opened.base, opened.head, spec, opened.image_path, opened.inspection,
                          opened.steps, history, predictions=dest)
    return "; ".join(done.problems)[:2000] if done.problems else None


def reproduce_submission(archive: str, eval_id: str, into: Path) -> ReaderVerdict:
    """Clone ``archive`` at evaluation ``eval_id`` into ``into`` and rerun its recorded steps."""
    from jc_datalad.workflows import results

    opened = _open(archive, eval_id, into)
    spec = opened.spec
    _get_inputs(into, archive, spec.interface.inputs.split("/")[0], opened.head)
    label = spec.interface.outputs
    work = Path(tempfile.mkdtemp(prefix="jc-reproduce-"))
    try:
        committed = work / "committed"
        _committed(opened, committed, sum(1 for p in (into / spec.interface.inputs).iterdir()
                                          if not p.name.startswith(".")))
        rerun = work / "rerun"
        problem = _rerun(opened, rerun)
        if problem:
            return ReaderVerdict(eval_id, opened.head, False, None, problem)
        first = results.first_difference(committed, rerun)
        return ReaderVerdict(eval_id, opened.head, first is None, None if first is None else f"{label}/{first}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class ScoreVerdict:
    """What a reader's rescoring of a published submission on the released hidden data found."""

    evaluation: str
    split: str
    metrics: dict[str, Any]  #: over every hidden item of the split, as the record's ``metrics``
    public: dict[str, Any]
    private: dict[str, Any]
    expected: dict[str, float]
    #: metric names whose value differs from the expected one (or is missing)
    differs: tuple[str, ...]
    problem: str | None = None

    @property
    def identical(self) -> bool:
        return self.problem is None and not self.differs

    def as_dict(self) -> dict:
        return {"evaluation": self.evaluation, "split": self.split, "metrics": self.metrics, "public": self.public,
                "private": self.private, "expected": self.expected, "differs": list(self.differs),
                "identical": self.identical, "problem": self.problem}

    def line(self) -> str:
        scores = ", ".join(f"{k}={v!r}" for k, v in sorted(self.metrics.items()))
        if self.problem:
            return f"not reproduced: {self.problem}"
        if not self.expected:
            return f"scored {self.evaluation} on the released {self.split} data: {scores}"
        if self.identical:
            return f"identical: {self.evaluation} scores {scores} on the released {self.split} data, as recorded"
        return (f"not reproduced: {', '.join(self.differs)} differ; here {scores}; recorded "
                + ", ".join(f"{k}={v!r}" for k, v in sorted(self.expected.items())))


def reproduce_score(archive: str, eval_id: str, released: str, split: str, into: Path,
                    expected: dict[str, float] | None = None) -> ScoreVerdict:
    """Rerun a published submission on the released hidden inputs of ``split`` and score it
    against the released labels with the challenge's scorer, in the runner's scoring sandbox."""
    from jc_datalad import sandbox, scoring
    from jc_datalad.evaluate import public_part

    opened = _open(archive, eval_id, into)
    spec = opened.spec
    if spec.training is not None:
        raise JcError(f"{spec.id} is a training challenge: its hidden training set is not released, so a "
                      "score cannot be reproduced outside the organizers (level b)")
    work = Path(tempfile.mkdtemp(prefix="jc-reproduce-score-"))
    try:
        hidden = work / "released"
        git(["clone", "--quiet", released, str(hidden)], protocols=_PROTOCOLS)
        base = hidden / "hidden" / split
        if not (base / "inputs").is_dir() or not (base / "labels").is_dir():
            raise JcError(f"{released} holds no hidden/{split}/inputs and labels: that split is not released (yet)")
        proc = git(["annex", "get", "--quiet", "--", f"hidden/{split}"], hidden, check=False, protocols=_PROTOCOLS,
                   timeout=3600)
        if proc.returncode:
            raise JcError(f"hidden/{split}: could not be got from {released}: {proc.stderr.strip()[-400:]}")
        items = tuple(sorted(p.name for p in (base / "labels").iterdir() if not p.name.startswith(".")))
        predictions = work / "predictions"
        if spec.type is ChallengeType.RESULTS:  # scored as submitted: the committed predictions
            _get_inputs(into, archive, spec.interface.inputs.split("/")[0], opened.head)
            _committed(opened, predictions, len(items))
        else:  # the hidden inputs where the runner binds them, in place of the public ones
            inputs = into / spec.interface.inputs
            shutil.rmtree(inputs, ignore_errors=True)
            shutil.copytree(base / "inputs", inputs, symlinks=False,
                            ignore=shutil.ignore_patterns(".git", ".datalad", ".gitattributes"))
            problem = _rerun(opened, predictions)
            if problem:
                return ScoreVerdict(eval_id, split, {}, {}, {}, expected or {}, (), problem)
        labels = scoring.stage_labels(base / "labels", items, work / "labels")
        lb = spec.leaderboard
        with sandbox.identity() as who:
            result = scoring.score_sealed(predictions, labels, scorer=spec.metrics.scorer, items=items,
                                          public_items=public_part(items, lb.public_fraction, lb.seed),
                                          limits=scoring.scoring_limits(spec.resources.memory_bytes),
                                          log_dir=work / "score", who=who, options=spec.metrics.options)
        if result.reason:
            return ScoreVerdict(eval_id, split, {}, {}, {}, expected or {}, (), result.reason)
        metrics = dict(result.metrics)
        differs = tuple(sorted(k for k, v in (expected or {}).items() if metrics.get(k) != v))
        return ScoreVerdict(eval_id, split, metrics, dict(result.public), dict(result.private), expected or {},
                            differs)
    finally:
        sandbox.release_mounts(work)
        shutil.rmtree(work, ignore_errors=True)


def _get_inputs(clone: Path, archive: str, top: str, head: str) -> None:
    """The public input subdatasets under ``top``, cloned from the archive (whose clone of the
    challenge has them installed, with their content) at the commits ``head`` records.

    Cloned with the project's git environment rather than ``datalad get``: the archive may belong
    to another user on this machine, and the protocols stay those of the archive's address.
    """
    listed = git(["config", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$"], clone, check=False)
    paths = [line.split(" ", 1)[1] for line in listed.stdout.splitlines() if " " in line]
    for path in sorted(p for p in paths if p == top or p.startswith(top + "/")):
        sha = git(["rev-parse", f"{head}:{path}"], clone, check=False).stdout.strip()
        if not sha:
            continue
        dest = clone / path
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        source = f"{archive.rstrip('/')}/{path}"
        if git(["clone", "--quiet", "--no-checkout", source, str(dest)], check=False, protocols=_PROTOCOLS,
               timeout=3600).returncode:
            raise JcError(f"{path}: the public inputs could not be cloned from {source}")
        git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha], dest)
        git(["annex", "init", "--quiet", "--no-autoenable", "jc-reader"], dest, check=False)
        proc = git(["annex", "get", "--quiet", "--from", "origin", "."], dest, check=False, protocols=_PROTOCOLS,
                   timeout=3600)
        if proc.returncode:
            raise JcError(f"{path}: the public inputs' content could not be got from {source}: "
                          f"{proc.stderr.strip()[-400:]}")

"""``jc reproduce submission``: a reader redoes a published submission (level a of docs/reproduce.md).

Anyone who can clone the public archive of submissions (:mod:`jc_datalad.archive`) runs this
on their own machine: it clones the archive at ``refs/submissions/<id>``, gets the public
inputs and the container image from it, replays the submission's checked run records with the
runner's own code (the launcher's image, the runner's sandbox, the inner commands only, on the
public development inputs) and compares what they write, byte for byte, with the predictions
the participant committed. No organizer file is needed, and no recorded interpreter path is
used, so records made with the older absolute-interpreter call format replay as well.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from jc_datalad.errors import JcError
from jc_datalad.evaluate import Refusal, annex_get, recorded_steps
from jc_datalad.gitutil import git, git_out, printable
from jc_datalad.inspection import commits_between, inspect_submission, merge_base
from jc_datalad.provenance import ProvenanceError, call_prefix_pattern
from jc_datalad.spec import SPEC_FILE, ChallengeType, parse_spec

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


def reproduce_submission(archive: str, eval_id: str, into: Path) -> ReaderVerdict:
    """Clone ``archive`` at evaluation ``eval_id`` into ``into`` and rerun its recorded steps."""
    from jc_datalad import submit
    from jc_datalad.workflows import results

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
    # the code and committed predictions, the image and the public inputs, all from the archive
    annex_get(into, list(inspection.annexed), _PROTOCOLS, origin="the archive",
              missing_fix="the archive lacks it; tell the organizers")
    git(["annex", "get", "--quiet", "--", image_path], into, timeout=3600)
    _get_inputs(into, archive, spec.interface.inputs.split("/")[0], head)
    label = spec.interface.outputs
    history = submit._History.read(into, base, head)
    work = Path(tempfile.mkdtemp(prefix="jc-reproduce-"))
    try:
        committed = work / "committed"
        count = sum(1 for p in (into / spec.interface.inputs).iterdir() if not p.name.startswith("."))
        results.committed_predictions(into, label, committed, limit_bytes=spec.resources.output_bytes,
                                      max_files=2 * count + 16, protocols=_PROTOCOLS,
                                      origin="the archive", missing_fix="the archive lacks it")
        rerun = work / "rerun"
        replay_spec = results.public_inputs_spec(spec) if spec.type is ChallengeType.RESULTS else spec
        done = submit._replay(into, base, head, replay_spec, image_path, inspection, steps, history,
                              predictions=rerun)
        if done.problems:
            return ReaderVerdict(eval_id, head, False, None, "; ".join(done.problems)[:2000])
        first = results.first_difference(committed, rerun)
        return ReaderVerdict(eval_id, head, first is None, None if first is None else f"{label}/{first}")
    finally:
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

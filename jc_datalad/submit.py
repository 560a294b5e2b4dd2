"""``jc submit check``: what the runner would do with a participant's dataset, done on their machine.

It inspects the changes since the challenge commit the dataset builds on and parses the run
records exactly as the runner will. Then, unless asked not to, it replays the recorded steps
through the runner's own code (:func:`jc_datalad.evaluate.replay_steps`): in the runner's
sandbox, on a read-only checkout of the head commit, with the public inputs where the runner
puts the hidden ones and an empty writable folder per recorded output; a step that writes
anywhere else fails here as it fails there. The outputs copied back are validated with the
challenge scorer's own readers. Every problem names the commit at fault and how to fix the
history.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jc_datalad import launcher, sandbox
from jc_datalad.config import default_cache_dir
from jc_datalad.errors import JcError
from jc_datalad.evaluate import (
    Refusal,
    Replay,
    annex_get,
    challenge_annexed,
    recorded_steps,
    replay_steps,
    stage_inputs,
)
from jc_datalad.fsutil import remove_tree
from jc_datalad.gitutil import git, git_out, printable
from jc_datalad.inspection import Inspection, commits_between, inspect_submission, merge_base
from jc_datalad.provenance import ProvenanceError, RecordedStep, call_prefix_pattern
from jc_datalad.records import Status
from jc_datalad.spec import SPEC_FILE, ChallengeSpec, ChallengeType, Verify, parse_spec
from scorers.files import ItemError, read_labels, read_mask, read_table, table_column

lgr = logging.getLogger(__name__)

#: Lines of a failed step's output shown to the participant (their own run on public data).
TAIL_LINES = 12


@dataclass(frozen=True)
class StepOutcome:
    """One recorded step as the check ran it."""

    number: int
    commit: str
    command: str
    status: str  #: a :class:`jc_datalad.sandbox.StepStatus` value
    exit_code: int | None
    wall_s: float

    def as_dict(self) -> dict:
        return {"number": self.number, "commit": self.commit, "command": self.command, "status": self.status,
                "exit_code": self.exit_code, "wall_s": self.wall_s}


@dataclass(frozen=True)
class SubmitCheck:
    """What the runner would say about the dataset's current head."""

    head: str
    base: str | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    steps: tuple[RecordedStep, ...] = field(default=())
    #: the recorded steps were replayed in the runner's sandbox (False: ``--no-run``, or nothing to run)
    ran: bool = False
    executed: tuple[StepOutcome, ...] = ()
    #: the runner's own reason for the first step that failed (``step 1 exited with code 1``)
    failure: str | None = None
    #: the challenge's ``type`` and ``verify``: what the runner does with an accepted submission
    type: str = ChallengeType.INFERENCE.value
    verify: str = Verify.NONE.value
    #: results with ``verify: rerun``: whether the replay here wrote the committed predictions again
    #: (None: not replayed)
    reproduced: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"head": self.head, "base": self.base, "ok": self.ok, "ran": self.ran, "failure": self.failure,
                "type": self.type, "verify": self.verify, "reproduced": self.reproduced,
                "problems": list(self.problems), "warnings": list(self.warnings),
                "steps": [s.as_dict() for s in self.steps], "executed": [s.as_dict() for s in self.executed]}


@dataclass(frozen=True)
class _History:
    """The commits ``base..head`` with their short names and subjects, for the messages."""

    dataset: Path
    base: str
    names: dict[str, str]  #: full sha -> 'abc1234 ("subject")'

    @classmethod
    def read(cls, dataset: Path, base: str, head: str) -> _History:
        out = git(["log", "--format=%H%x00%h%x00%s", f"{base}..{head}"], dataset).stdout
        names = {}
        for line in out.splitlines():
            full, short, subject = (line.split("\0") + ["", ""])[:3]
            names[full] = f'{short} ("{printable(subject, 80)}")'
        return cls(dataset, base, names)

    def name(self, sha: str) -> str:
        full = next((c for c in self.names if c.startswith(sha)), sha)
        return self.names.get(full, sha[:12])

    def short(self, sha: str) -> str:
        return self.name(sha).split(" ", 1)[0]

    @property
    def rebase(self) -> str:
        return f"git rebase -i {self.base[:12]}"

    def touching(self, path: str) -> list[str]:
        """The commits since the challenge commit that change ``path``, oldest first."""
        out = git(["log", "--reverse", "--format=%H", f"{self.base}..HEAD", "--", f":(literal){path}"],
                  self.dataset, check=False).stdout
        return out.split()


def _upstream(repo: Path) -> str | None:
    for ref in ("refs/remotes/origin/HEAD", "refs/remotes/origin/main", "refs/remotes/origin/master"):
        if git(["rev-parse", "--verify", "--quiet", ref], repo, check=False).returncode == 0:
            return ref
    return None


def check_submission(dataset: Path, *, run: bool = False) -> SubmitCheck:
    """The runner's inspection and provenance checks on ``dataset``'s HEAD, and its outputs validated
    with the scorer's readers: with ``run`` (what ``jc submit check`` does) the outputs of the
    runner's replay of the recorded steps on the public inputs, else the committed ones."""
    import yaml

    dataset = dataset.resolve()
    if not (dataset / ".git").exists():
        raise JcError(f"{dataset}: not a git/DataLad dataset; run this in your clone of the challenge")
    head = git_out(["rev-parse", "HEAD"], dataset)
    upstream = _upstream(dataset)
    if upstream is None:
        raise JcError(f"{dataset}: no 'origin' remote pointing at the challenge; clone it with `datalad clone`")
    base = merge_base(dataset, head, upstream)
    if base is None:
        return SubmitCheck(head, None, ("the dataset does not build on the challenge's history: clone the "
                                        "challenge again and commit your work on top of it",))
    # the rules come from the challenge commit, never from the participant's edits
    spec_text = git_out(["show", f"{base}:{SPEC_FILE}"], dataset)
    spec = parse_spec(yaml.safe_load(spec_text), f"{base[:12]}:{SPEC_FILE}")
    with tempfile.NamedTemporaryFile("w", suffix=".config") as cfg:
        cfg.write(git_out(["show", f"{base}:.datalad/config"], dataset))
        cfg.flush()
        cmdexec = git_out(["config", "-f", cfg.name, f"datalad.containers.{spec.container}.cmdexec"],
                          check=False)
    image_path = f".datalad/environments/{spec.container}/image"
    history = _History.read(dataset, base, head)
    warnings = []
    if git_out(["status", "--porcelain", "--untracked-files=no"], dataset):
        warnings.append("uncommitted changes: the runner sees only what is committed and pushed")

    inspection = inspect_submission(dataset, base, head, spec)
    problems = [_blame_path(p, inspection, history) for p in inspection.problems]
    if spec.submission.signed:
        header = git_out(["cat-file", "commit", head], dataset).split("\n\n", 1)[0]
        if "\ngpgsig" not in header and "\ngpgsig-sha256" not in header:
            problems.append(f"the head commit {history.name(head)} is not signed: the challenge counts only "
                            "commits signed with your team's registered SSH key; sign it with `git commit "
                            "--amend -S --no-edit` (docs/signing.md)")
    steps: list[RecordedStep] = []

    def sidecar_of(commit: str, record_id: str) -> bytes:
        path = dataset / ".datalad" / "runinfo" / record_id
        if not path.exists():
            raise Refusal(f".datalad/runinfo/{record_id}: sidecar content missing; `datalad get` it")
        return path.read_bytes()

    if cmdexec:
        try:
            steps = recorded_steps(dataset, commits_between(dataset, base, head), spec,
                                   call_prefix_pattern(cmdexec, image_path), image_path, sidecar_of)
        except (Refusal, ProvenanceError) as exc:
            problems.append(_blame_record(str(exc), history, spec))
    else:
        problems.append(f"the challenge registers no container {spec.container!r}")

    if not steps:
        return SubmitCheck(head, base, tuple(problems), tuple(warnings), type=spec.type.value, verify=spec.verify.value)
    if spec.type is ChallengeType.RESULTS:  # the committed predictions are what is scored
        done, notes = _check_results(dataset, base, head, spec, image_path, inspection, steps, history, run=run)
        return SubmitCheck(head, base, tuple(problems + done.problems), tuple(warnings + notes), tuple(steps),
                           ran=bool(done.executed), executed=tuple(done.executed), failure=done.failure,
                           reproduced=done.reproduced, type=spec.type.value, verify=spec.verify.value)
    if not run:
        found = validate_outputs(spec, dataset / spec.interface.inputs, dataset / spec.interface.outputs,
                                 spec.interface.outputs)
        problems += [_blame_output(p, steps, history, spec) for p in found]
        return SubmitCheck(head, base, tuple(problems), tuple(warnings), tuple(steps), type=spec.type.value, verify=spec.verify.value)
    replayed = _replay(dataset, base, head, spec, image_path, inspection, steps, history)
    return SubmitCheck(head, base, tuple(problems + replayed.problems), tuple(warnings), tuple(steps),
                       ran=True, executed=tuple(replayed.executed), failure=replayed.failure, type=spec.type.value, verify=spec.verify.value)


@dataclass
class _Replayed:
    problems: list[str] = field(default_factory=list)
    executed: list[StepOutcome] = field(default_factory=list)
    failure: str | None = None
    reproduced: bool | None = None


def _replay(dataset: Path, base: str, head: str, spec: ChallengeSpec, image_path: str,
            inspection: Inspection, steps: list[RecordedStep], history: _History,
            predictions: Path | None = None) -> _Replayed:
    """The runner's replay of ``steps`` on a read-only checkout of ``head`` with the public inputs;
    its outputs are copied to ``predictions`` (default: a temporary folder, removed after)."""
    done = _Replayed()
    inputs = dataset / spec.interface.inputs
    missing = _missing_inputs(inputs, spec.interface.inputs)
    if missing:
        done.problems.append(missing)
        return done
    work = Path(tempfile.mkdtemp(prefix="jc-submit-check-"))
    try:
        rootfs = launcher.rootfs_for(_challenge_image(dataset, base, image_path, work),
                                     cache_root=default_cache_dir() / "rootfs")
        checkout = work / "checkout"
        git(["clone", "--quiet", "--no-checkout", "--no-tags", "--no-recurse-submodules", str(dataset),
             str(checkout)], protocols=("file",))
        git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", head], checkout)
        outputs = {o for step in steps for o in step.outputs}
        needed = [link for link in inspection.annexed
                  if not link.path.startswith(".datalad/")
                  and not any(link.path == o or link.path.startswith(o + "/") for o in outputs)]
        annex_get(checkout, needed, ("file",), origin="your dataset",
                  missing_fix="get it with `datalad get`; the runner fetches it from your team repository")
        # annexed files the challenge ships that you left unchanged: the runner fetches them from the
        # challenge dataset; here they come from your dataset, where `datalad get` puts them
        shipped = challenge_annexed(checkout, head, base, skip=(
            *outputs, spec.interface.inputs, *((spec.training.inputs,) if spec.training else ()),
            *(link.path for link in needed)))
        annex_get(checkout, shipped, ("file",), origin="your dataset",
                  missing_fix="get it with `datalad get` (it came with the challenge; the runner fetches it from "
                              "the challenge dataset)")
        staged = stage_inputs(inputs, work / "inputs")
        items = [p.name for p in staged.iterdir()]
        train = None
        if spec.training is not None:  # the public training data where the runner binds the hidden set
            missing = _missing_inputs(dataset / spec.training.inputs, spec.training.inputs)
            if missing:
                done.problems.append(missing)
                return done
            train = stage_inputs(dataset / spec.training.inputs, work / "train")
        replay = Replay(rootfs, spec, checkout, staged, tuple(steps), work / "work", training_inputs=train)

        def on_step(number: int, command: str, result: sandbox.StepResult) -> None:
            lgr.info("step %d: %s (%.1f s)", number, result.status.value, result.wall_s)
            done.executed.append(StepOutcome(number, steps[number - 1].commit, command, result.status.value,
                                             result.exit_code, result.wall_s))

        try:
            failed = replay_steps(replay, predictions or work / "predictions", max_files=2 * len(items) + 16,
                                  on_step=on_step)
        except Refusal as exc:  # the outputs break a rule (links, names, size)
            done.problems.append(_blame_output(str(exc), steps, history, spec))
            return done
        if failed is not None:
            status, reason = failed
            m = re.search(r"step (\d+)", reason)
            number = int(m.group(1)) if m else len(steps)
            if status is Status.INFRASTRUCTURE:
                tail = _tail(replay.log_dir / f"step-{number}.stderr")
                # this machine's fault, not the submission's: the check cannot proceed
                raise sandbox.InfrastructureError(
                    f"the sandbox cannot be started on this machine ({tail or 'no message'}); "
                    "`jc submit check --no-run` checks without running the steps")
            done.failure = reason
            done.problems.append(_step_failed(reason, steps[number - 1], replay.log_dir, number, history, spec))
            return done
        found = validate_outputs(spec, staged, predictions or work / "predictions", spec.interface.outputs)
        done.problems += [_blame_output(p, steps, history, spec) for p in found]
        return done
    except Refusal as exc:
        done.problems.append(str(exc))
        return done
    except sandbox.InfrastructureError:
        raise
    except JcError as exc:  # a mount point that is a file or a link in the submission, a command too long
        done.problems.append(f"the steps cannot be replayed: {exc}")
        return done
    finally:
        sandbox.release_mounts(work)
        remove_tree(work)


def _check_results(dataset: Path, base: str, head: str, spec: ChallengeSpec, image_path: str,
                   inspection: Inspection, steps: list[RecordedStep], history: _History,
                   *, run: bool) -> tuple[_Replayed, list[str]]:
    """A results submission: the committed predictions collected as the runner collects them and
    validated by the scorer's readers (no labels here); with ``verify: rerun`` and ``run``, the
    recorded steps replayed on the public inputs and compared byte for byte, as the runner does.
    A rerun that differs or fails is a warning: the runner still scores the committed predictions."""
    from jc_datalad.workflows import results

    done, notes = _Replayed(), list[str]()
    label = spec.interface.outputs
    tests = dataset / spec.interface.inputs
    count = sum(1 for p in tests.iterdir() if not p.name.startswith(".")) if tests.is_dir() else 0
    work = Path(tempfile.mkdtemp(prefix="jc-submit-check-"))
    try:
        checkout = work / "checkout"
        git(["clone", "--quiet", "--no-checkout", "--no-tags", "--no-recurse-submodules", str(dataset),
             str(checkout)], protocols=("file",))
        git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", head], checkout)
        committed = work / "committed"
        try:
            results.committed_predictions(
                checkout, label, committed, limit_bytes=spec.resources.output_bytes, max_files=2 * count + 16,
                protocols=("file",), origin="your dataset",
                missing_fix="get it with `datalad get`; the runner fetches it from your team repository")
        except Refusal as exc:
            done.problems.append(_blame_output(str(exc), steps, history, spec))
            return done, notes
        done.problems += [_blame_output(p, steps, history, spec)
                          for p in validate_outputs(spec, tests, committed, label)]
        if not run or spec.verify is not Verify.RERUN:
            return done, notes
        rerun = work / "rerun"
        replayed = _replay(dataset, base, head, results.public_inputs_spec(spec), image_path, inspection, steps,
                           history, predictions=rerun)
        done.executed, done.failure = replayed.executed, replayed.failure
        done.reproduced = False
        if replayed.problems:
            notes += [f"not reproduced: the runner re-executes your recorded steps on the public inputs "
                      f"(verify: rerun), and here they did not finish: {p}" for p in replayed.problems]
            return done, notes
        first = results.first_difference(committed, rerun)
        if first is not None:
            notes.append(f"not reproduced: re-executing your recorded steps on the public inputs (verify: rerun) "
                         f"writes a different {label}/{printable(first, 200)} than the one you committed; the "
                         "leaderboard will mark this entry 'not reproduced' (the committed predictions are "
                         "still scored). Record the run again with the same `datalad containers-run` command "
                         "instead of editing predictions, and keep the code deterministic")
        else:
            done.reproduced = True
        return done, notes
    finally:
        sandbox.release_mounts(work)
        remove_tree(work)


def _challenge_image(dataset: Path, base: str, image_path: str, work: Path) -> Path:
    """The container image as the challenge commit has it (the runner's), in the participant's annex."""
    target = git(["cat-file", "blob", f"{base}:{image_path}"], dataset, check=False).stdout.strip()
    mode = git_out(["ls-tree", "--format=%(objectmode)", base, "--", image_path], dataset, check=False)
    here = dataset / image_path
    if mode != "120000" or not target:
        return here  # an image kept in git: the inspection names any change to it
    content = Path(os.path.normpath(here.parent / target))
    if not content.is_file():
        raise JcError(f"{image_path}: the challenge's container image is not here; `datalad get {image_path}`")
    if here.is_symlink() and os.readlink(here) == target:
        return here
    # the image was changed since (the inspection names that): a link to the challenge's content,
    # so that the root filesystem cache is still keyed by its annex key
    link = work / "image"
    link.symlink_to(content)
    return link


def _missing_inputs(inputs: Path, label: str) -> str | None:
    if not inputs.is_dir() or not any(p for p in inputs.iterdir() if not p.name.startswith(".")):
        return f"{label}: the public inputs are not installed; `datalad get {label}`"
    for dirpath, dirnames, filenames in os.walk(inputs):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".datalad")]
        for name in filenames:
            if not os.path.exists(os.path.join(dirpath, name)):
                rel = os.path.relpath(os.path.join(dirpath, name), inputs)
                return f"{label}/{rel}: content not here; `datalad get {label}`"
    return None


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


# -- naming the commit at fault and the fix -------------------------------------------------------


def _rerecord(spec: ChallengeSpec) -> str:
    return (f'`datalad containers-run -n {spec.container} --input {spec.interface.inputs} --output '
            f'{spec.interface.outputs} "..."`')


def _drop(sha: str, history: _History) -> str:
    return (f"remove commit {history.short(sha)} from your branch (`{history.rebase}`, then delete its line; "
            "the runner replays every recorded step since the challenge commit, so a new record does not "
            "replace an old one)")


def _blame_path(problem: str, inspection: Inspection, history: _History) -> str:
    """``problem`` of the inspection, with the commits that made it and how to undo them."""
    path = max((p for p in inspection.changed if problem.startswith(printable(p) + ":")), key=len, default=None)
    if path is None:
        return problem
    commits = history.touching(path)
    if not commits:
        return problem
    named = ", ".join(history.name(c) for c in commits[:3]) + (" and more" if len(commits) > 3 else "")
    shorts = " ".join(history.short(c) for c in reversed(commits[:3]))
    if "changes a protected path" in problem or "subdataset" in problem:
        fix = (f"undo it with `git revert {shorts}` (a new commit that takes the change back), or drop "
               f"the commit with `{history.rebase}` (delete its line)")
    else:
        fix = f"fix the file in a new commit, or drop the commit with `{history.rebase}` (delete its line)"
    return f"{problem}. Made in commit {named}: {fix}"


_COMMIT = re.compile(r"commit ([0-9a-f]{7,40})")


def _blame_record(problem: str, history: _History, spec: ChallengeSpec) -> str:
    """A run record the runner refuses: which commit holds it, and how to record it again."""
    m = _COMMIT.search(problem)
    if m is None:
        return problem
    sha = m.group(1)
    return (f"{problem}. The record is commit {history.name(sha)}: {_drop(sha, history)}, and record the run "
            f"again with {_rerecord(spec)}")


def _writer(steps: list[RecordedStep], spec: ChallengeSpec) -> RecordedStep:
    """The last step that writes the interface output."""
    return [s for s in steps if spec.interface.outputs in s.outputs][-1] if any(
        spec.interface.outputs in s.outputs for s in steps) else steps[-1]


def _blame_output(problem: str, steps: list[RecordedStep], history: _History, spec: ChallengeSpec) -> str:
    step = _writer(steps, spec)
    return (f"{problem}. Written by the step recorded in commit {history.name(step.commit)}: fix the code, "
            f"{_drop(step.commit, history)}, and record the run again with {_rerecord(spec)}")


def _step_failed(reason: str, step: RecordedStep, log_dir: Path, number: int, history: _History,
                 spec: ChallengeSpec) -> str:
    tail = _tail(log_dir / f"step-{number}.stderr") or _tail(log_dir / f"step-{number}.stdout")
    hint = ""
    if "Read-only file system" in tail:
        hint = (f" It writes outside its outputs: the runner replays it on a read-only copy of your dataset, "
                f"where only {', '.join(step.outputs)} (and /tmp) can be written.")
    shown = "\n    ".join(tail.splitlines()) if tail else "(nothing)"
    return (f"{reason} (the runner would record: failed). The step is recorded in commit "
            f"{history.name(step.commit)}: {step.inner}.{hint} What it printed last:\n    {shown}\n"
            f"  To fix: change the code and commit it (the runner replays every recorded step with the "
            f"files of your head commit); if the recorded command itself is wrong, "
            f"{_drop(step.commit, history)}, and record the run again with {_rerecord(spec)}")


# -- validating the outputs with the scorer's own readers -----------------------------------------


def validate_outputs(spec: ChallengeSpec, inputs: Path, outputs: Path, label: str) -> list[str]:
    """The outputs read as the challenge's scorer reads them; one message per bad file."""
    if spec.interface.format == "label-tiff":
        reader = read_mask if spec.metrics.scorer == "pixel_masks" else read_labels
        return validate_label_tiffs(inputs, outputs, label, reader=reader, name_of=spec.interface.prediction_name)
    return validate_tables(outputs, label, spec.metrics.scorer, intervals=spec.interface.format == "intervals-csv")


def _same_name(name: str) -> str | None:
    return name if name.lower().endswith((".tif", ".tiff")) else None


def validate_label_tiffs(inputs: Path, outputs: Path, label: str,
                         reader: Callable[..., object] = read_labels,
                         name_of: Callable[[str], str | None] = _same_name) -> list[str]:
    """Every input has its prediction, named by ``name_of`` (the challenge's ``interface.names``;
    by default the input's own name) and of the input's frame shape, read by the scorer's ``reader``.
    The scorer matches predictions to the hidden labels by these names."""
    if not inputs.is_dir():
        return [f"{inputs}: the public inputs are not installed; `datalad get {inputs.name}` them"]
    expected = {}  # prediction name -> input name
    for p in sorted(inputs.iterdir()):
        target = name_of(p.name)
        if target is not None and not p.name.startswith("."):
            expected[target] = p.name
    if not outputs.is_dir():
        return [f"{label}/: missing; your recorded command must write it"]
    problems = []
    written = {p.name for p in outputs.iterdir()}
    missing = [n for n in expected if n not in written]
    if missing:
        source = expected[missing[0]]
        of = f" (the prediction of {source})" if source != missing[0] else ""
        problems.append(f"{label}/{missing[0]} missing{of}: the command wrote {len(expected) - len(missing)} of "
                        f"{len(expected)} expected files")
    for extra in sorted(written - set(expected)):
        problems.append(f"{label}/{printable(extra)}: not expected (no input it is the prediction of)")
    for name, source in expected.items():
        if name in missing:
            continue
        try:
            shape = _frame_shape(inputs / source)  # the organizer's public input
        except Exception as exc:  # any unreadable file is a per-file problem
            problems.append(f"{source}: the public input is unreadable ({exc}); `datalad get` it again")
            continue
        try:
            # the runner's own reader and checks: no file a prediction names is ever opened
            reader(_annexed_content(outputs / name), expect_shape=shape)
        except ItemError as exc:
            problems.append(f"{label}/{name}: {exc}")
    return problems


def _frame_shape(path: Path) -> tuple[int, ...]:
    """The shape a prediction of the input ``path`` has: a TIFF's own shape; an RGB(A) or grey image
    of another format (PNG, JPEG) is one frame of its height and width."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return tuple(tif.series[0].shape)
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return (height, width)


def validate_tables(outputs: Path, label: str, scorer: str, *, intervals: bool = False) -> list[str]:
    """Every CSV the command wrote, read by the scorer's table reader, with the value columns it takes.

    Without the hidden truth the ids cannot be matched; the runner names missing or unknown ids.
    """
    if not outputs.is_dir():
        return [f"{label}/: missing; your recorded command must write it"]
    tables = sorted(p for p in outputs.iterdir() if p.suffix.lower() == ".csv")
    if not tables:
        return [f"{label}/: holds no .csv file; the scorer reads CSV tables"]
    problems = []
    for path in tables:
        try:
            frame = read_table(_annexed_content(path))
            if intervals or scorer == "coverage_score":
                for column in ("p16", "p84"):
                    table_column(frame, column, numeric=True, role="prediction")
            elif frame.shape[1] == 1:  # the one value column the scorer takes
                table_column(frame, None, numeric=scorer == "regression", role="prediction")
        except ItemError as exc:
            problems.append(f"{label}/{path.name}: {exc}")
    return problems


def _annexed_content(path: Path) -> Path:
    """The annex object behind a saved output (a link into ``.git/annex/objects``), else ``path``:
    the runner gets that content as a regular file; any other link is read as the link it is."""
    if path.is_symlink():
        target = path.resolve()
        if "/.git/annex/objects/" in str(target) and target.is_file():
            return target
    return path

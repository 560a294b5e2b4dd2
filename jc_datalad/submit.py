"""``jc submit check``: the runner's own checks, run by a participant on their dataset.

It inspects the changes since the challenge commit the dataset builds on,
parses the run records exactly as the runner will, and validates the
recorded outputs on the public development inputs. Nothing is executed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jc_datalad.errors import JcError
from jc_datalad.evaluate import Refusal, recorded_steps
from jc_datalad.gitutil import git, git_out
from jc_datalad.inspection import commits_between, inspect_submission, merge_base
from jc_datalad.provenance import ProvenanceError, RecordedStep, call_prefix_pattern
from jc_datalad.spec import SPEC_FILE, parse_spec
from scorers.files import ItemError, read_labels


@dataclass(frozen=True)
class SubmitCheck:
    """What the runner would say about the dataset's current head."""

    head: str
    base: str | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    steps: tuple[RecordedStep, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"head": self.head, "base": self.base, "ok": self.ok, "problems": list(self.problems),
                "warnings": list(self.warnings), "steps": [s.as_dict() for s in self.steps]}


def _upstream(repo: Path) -> str | None:
    for ref in ("refs/remotes/origin/HEAD", "refs/remotes/origin/main", "refs/remotes/origin/master"):
        if git(["rev-parse", "--verify", "--quiet", ref], repo, check=False).returncode == 0:
            return ref
    return None


def check_submission(dataset: Path) -> SubmitCheck:
    """Run the runner's inspection and provenance checks on ``dataset``'s HEAD."""
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
        return SubmitCheck(head, None, ("the dataset does not build on the challenge's history",))
    # the rules come from the challenge commit, never from the participant's edits
    spec_text = git_out(["show", f"{base}:{SPEC_FILE}"], dataset)
    spec = parse_spec(yaml.safe_load(spec_text), f"{base[:12]}:{SPEC_FILE}")
    with tempfile.NamedTemporaryFile("w", suffix=".config") as cfg:
        cfg.write(git_out(["show", f"{base}:.datalad/config"], dataset))
        cfg.flush()
        cmdexec = git_out(["config", "-f", cfg.name, f"datalad.containers.{spec.container}.cmdexec"],
                          check=False)
    image_path = f".datalad/environments/{spec.container}/image"
    warnings = []
    if git_out(["status", "--porcelain", "--untracked-files=no"], dataset):
        warnings.append("uncommitted changes: the runner sees only what is committed and pushed")

    inspection = inspect_submission(dataset, base, head, spec)
    problems = list(inspection.problems)
    if spec.submission.signed:
        header = git_out(["cat-file", "commit", head], dataset).split("\n\n", 1)[0]
        if "\ngpgsig" not in header and "\ngpgsig-sha256" not in header:
            problems.append(f"the head commit {head[:12]} is not signed: the challenge counts only commits "
                            "signed with your team's registered SSH key (docs/signing.md)")
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
            problems.append(str(exc))
    else:
        problems.append(f"the challenge registers no container {spec.container!r}")

    if steps and spec.interface.format == "label-tiff":
        problems += validate_label_tiffs(dataset / spec.interface.inputs, dataset / spec.interface.outputs,
                                         spec.interface.outputs)
    return SubmitCheck(head, base, tuple(problems), tuple(warnings), tuple(steps))


def validate_label_tiffs(inputs: Path, outputs: Path, label: str) -> list[str]:
    """Every input has a prediction of the same name and frame shape, with integer labels."""
    import tifffile

    if not inputs.is_dir():
        return [f"{inputs}: the public inputs are not installed; `datalad get {inputs.name}` them"]
    names = sorted(p.name for p in inputs.iterdir() if p.suffix in (".tif", ".tiff"))
    if not outputs.is_dir():
        return [f"{label}/: missing; your recorded command must write it"]
    problems = []
    written = {p.name for p in outputs.iterdir()}
    missing = [n for n in names if n not in written]
    if missing:
        problems.append(f"{label}/{missing[0]} missing: the command wrote {len(names) - len(missing)} of "
                        f"{len(names)} expected files")
    for extra in sorted(written - set(names)):
        problems.append(f"{label}/{extra}: not expected (no input of that name)")
    for name in names:
        if name in missing:
            continue
        try:
            with tifffile.TiffFile(inputs / name) as tif:  # the organizer's public input
                shape = tuple(tif.series[0].shape)
        except Exception as exc:  # any unreadable file is a per-file problem
            problems.append(f"{name}: the public input is unreadable ({exc}); `datalad get` it again")
            continue
        try:
            # the runner's own reader and checks: no file a prediction names is ever opened
            read_labels(_annexed_content(outputs / name), expect_shape=shape)
        except ItemError as exc:
            problems.append(f"{label}/{name}: {exc}")
    return problems


def _annexed_content(path: Path) -> Path:
    """The annex object behind a saved output (a link into ``.git/annex/objects``), else ``path``:
    the runner gets that content as a regular file; any other link is read as the link it is."""
    if path.is_symlink():
        target = path.resolve()
        if "/.git/annex/objects/" in str(target) and target.is_file():
            return target
    return path

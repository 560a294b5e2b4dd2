"""What a participant does, with nothing but ``datalad`` and ``git`` commands.

The demo, the benchmark and the tests use these functions to play
participants. Every step is a plain command line (the same ones that
``docs/participants.md`` shows); no jc-datalad code touches the participant's
dataset.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from jc_datalad.errors import JcError
from jc_datalad.gitutil import env_with_annex_on_path


def sh(args: Sequence[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env_with_annex_on_path(), capture_output=True, text=True)
    if proc.returncode:
        raise JcError(f"`{' '.join(args)}` failed in {cwd}: {(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


#: What a team repository wants (a git-annex preferred-content expression): everything a
#: participant annexes except the challenge's own content under ``.datalad/`` (the container
#: image) and ``inputs/`` (the public data). The runner takes those from the organizer's challenge
#: and fetches from a team only annexed files the submission itself added or changed; sidecar run
#: records (``.datalad/runinfo/``) are the participant's and stay wanted. With it, a plain
#: ``datalad push --to <team>`` copies models and predictions but not the 200 MB image.
TEAM_WANTED = "include=.datalad/runinfo/* or (exclude=.datalad/* and exclude=inputs/*)"


def make_team_repository(path: Path, wanted: str = TEAM_WANTED) -> Path:
    """A bare git repository with git-annex initialised, wanting only the team's work: one per team.

    ``wanted`` is recorded in the repository's git-annex branch; a participant's clone learns it
    when it fetches the sibling (``datalad siblings add --fetch``), and ``datalad push`` then
    copies only the annexed files it matches.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sh(["git", "init", "--quiet", "--bare", str(path)])
    sh(["git", "annex", "init", "--quiet", "team repository"], cwd=path)
    sh(["git", "annex", "wanted", ".", wanted], cwd=path)
    return path


def clone_challenge(url: str | Path, path: Path, inputs: str = "inputs/test") -> Path:
    sh(["datalad", "clone", str(url), str(path)])
    sh(["datalad", "get", "--recursive", inputs], cwd=path)
    return path


def _write_files(clone: Path, files: Mapping[str, str | Path] | None, message: str) -> None:
    """Put ``files`` (relative path -> text or a file to copy) into the clone and save them."""
    for rel, content in (files or {}).items():
        target = clone / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)
    if files:
        sh(["datalad", "save", "-m", message], cwd=clone)


def record_prediction(
    clone: Path,
    *,
    container: str = "jc-env",
    inputs: str = "inputs/test",
    outputs: str = "predictions",
    command: str = "python code/predict.py {inputs} {outputs}",
    files: Mapping[str, str | Path] | None = None,
    message: str = "My solution",
) -> None:
    """Change the code, save it, and record the prediction run with ``datalad containers-run``."""
    record_steps(clone, [Step((inputs,), (outputs,), command)], container=container, files=files,
                 message=message)


@dataclass(frozen=True)
class Step:
    """One run a participant records: ``datalad containers-run --input .. --output .. command``."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: str

    def args(self, container: str) -> list[str]:
        args = ["datalad", "containers-run", "-n", container]
        for path in self.inputs:
            args += ["--input", path]
        for path in self.outputs:
            args += ["--output", path]
        return [*args, self.command]


_STEP_KEYS = ("inputs", "outputs", "command")


def _check_paths(where: str, key: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}.{key}: {value!r} is not a non-empty list of paths; write e.g. {key}: [inputs/test]")
        return ()
    paths: list[str] = []
    for item in value:
        pure = PurePosixPath(item) if isinstance(item, str) and item.strip() else None
        if pure is None or pure.is_absolute() or ".." in pure.parts or str(pure) in (".", ""):
            problems.append(f"{where}.{key}: {item!r} is not a relative path inside the dataset "
                            "(no leading /, no ..)")
        else:
            paths.append(str(pure))
    return tuple(paths)


def parse_steps(data: Any, source: str = "participant.yaml") -> tuple[Step, ...]:
    """The steps of a participant.yaml document, or one error listing every problem in it.

    ``data`` is the parsed document (``{"steps": [...]}``) or the list of steps itself; each step
    is ``{inputs: [paths], outputs: [paths], command: str}``.
    """
    raw = data.get("steps") if isinstance(data, Mapping) else data
    if isinstance(data, Mapping) and set(data) - {"steps"}:
        unknown = ", ".join(sorted(map(str, set(data) - {"steps"})))
        raise JcError(f"{source}: unknown top-level key(s) {unknown}; only 'steps' is read")
    if not isinstance(raw, list) or not raw:
        raise JcError(f"{source}: 'steps' must be a non-empty list of "
                      "{inputs: [..], outputs: [..], command: ..}; found " + repr(raw)[:200])
    problems: list[str] = []
    steps: list[Step] = []
    for index, item in enumerate(raw):
        where = f"steps[{index}]"
        if isinstance(item, Step):
            steps.append(item)
            continue
        if not isinstance(item, Mapping):
            problems.append(f"{where}: {item!r} is not a mapping with keys {', '.join(_STEP_KEYS)}")
            continue
        for key in sorted(map(str, set(item) - set(_STEP_KEYS))):
            problems.append(f"{where}: unknown key {key!r}; a step has only {', '.join(_STEP_KEYS)}")
        for key in _STEP_KEYS:
            if key not in item:
                problems.append(f"{where}: missing {key!r}")
        inputs = _check_paths(where, "inputs", item.get("inputs"), problems) if "inputs" in item else ()
        outputs = _check_paths(where, "outputs", item.get("outputs"), problems) if "outputs" in item else ()
        command = item.get("command")
        if "command" in item and (not isinstance(command, str) or not command.strip()):
            problems.append(f"{where}.command: {command!r} is not a non-empty command line")
        if isinstance(command, str) and "\n" in command.strip():
            problems.append(f"{where}.command: one command line per step (found a line break); "
                            "add another step instead")
        steps.append(Step(inputs, outputs, command.strip() if isinstance(command, str) else ""))
    if problems:
        raise JcError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return tuple(steps)


def load_steps(path: Path) -> tuple[Step, ...]:
    """The validated steps of a participant.yaml file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JcError(f"{path}: cannot read the participant steps ({exc.strerror}); "
                      "every template has a participant.yaml") from exc
    except yaml.YAMLError as exc:
        raise JcError(f"{path}: not valid YAML: {exc}") from exc
    return parse_steps(data, str(path))


def template_steps(template: str | Path) -> tuple[Step, ...]:
    """The steps of a template (its name, its folder, or a participant.yaml file)."""
    path = Path(template)
    if isinstance(template, str) and "/" not in template and not path.exists():
        from jc_datalad.challenge import TEMPLATES
        from jc_datalad.templates import templates_folder

        if template not in TEMPLATES:
            raise JcError(f"unknown template {template!r}; available: {', '.join(TEMPLATES)}")
        path = templates_folder() / template
    return load_steps(path / "participant.yaml" if path.is_dir() else path)


def record_steps(
    clone: Path,
    template_or_steps: str | Path | Sequence[Step | Mapping[str, Any]],
    *,
    files: Mapping[str, str | Path] | None = None,
    message: str = "My solution",
    container: str = "jc-env",
) -> tuple[Step, ...]:
    """Change the code, save it, and record each step with ``datalad containers-run``, in order.

    ``template_or_steps`` is a template name or folder, a participant.yaml file, or the steps
    themselves (:class:`Step` or ``{inputs, outputs, command}`` mappings); they are validated
    before anything changes in the clone. One run record (one commit) per step. Returns the steps.
    """
    if isinstance(template_or_steps, (str, Path)):
        steps = template_steps(template_or_steps)
    else:
        steps = parse_steps(list(template_or_steps), "steps")
    _write_files(clone, files, message)
    for step in steps:
        sh(step.args(container), cwd=clone)
    return steps


def push_submission(clone: Path, team_repository: Path | str, branch: str, remote: str = "team") -> str:
    """Push the current head as ``branch`` to the team's repository; return the commit."""
    remotes = sh(["git", "remote"], cwd=clone).split()
    if remote not in remotes:
        # --fetch: the clone learns the repository's wanted expression before the first push,
        # which would otherwise copy every annexed file present here, the challenge image included
        sh(["datalad", "siblings", "add", "-s", remote, "--url", str(team_repository), "--fetch"], cwd=clone)
    current = sh(["git", "branch", "--show-current"], cwd=clone).strip()
    if current != branch:
        sh(["git", "checkout", "-q", "-B", branch], cwd=clone)
    sh(["datalad", "push", "--to", remote], cwd=clone)
    return sh(["git", "rev-parse", "HEAD"], cwd=clone).strip()


def make_key(path: Path, comment: str) -> Path:
    """An SSH key pair for signing (``path`` and ``path.pub``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def configure_signing(clone: Path, key: Path) -> None:
    """The git configuration of docs/signing.md: sign every commit and tag with ``key``."""
    for name, value in (("gpg.format", "ssh"), ("user.signingkey", str(key)), ("commit.gpgsign", "true"),
                        ("tag.gpgsign", "true")):
        sh(["git", "config", name, value], cwd=clone)

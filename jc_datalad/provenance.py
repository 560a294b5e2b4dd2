"""Parse a submission's recorded provenance: DataLad run records, checked.

A run record is JSON in a commit message (inline) or in a sidecar file under
``.datalad/runinfo/`` that the message names. Each record must come from the
challenge's container: its command must start with the organizer's call format
(taken from the organizer's own challenge, never from the submission), run at
the dataset root, and use no placeholder but ``{inputs}`` and ``{outputs}``.
What is kept is the *inner* command, which the runner alone executes, in its
sandbox.
"""

from __future__ import annotations

import json
import lzma
import re
import shlex
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from jc_datalad.errors import JcError

_RECORD = re.compile(
    r"^.*?\[DATALAD RUNCMD\] (?P<title>.*?)\n+=== Do not change lines below ===\n(?P<json>.*)\n\^\^\^ Do not change lines above \^\^\^",
    re.DOTALL,
)
ALLOWED_PLACEHOLDERS = frozenset({"inputs", "outputs"})
_SHELL_META = set("();<>|&")


class ProvenanceError(JcError):
    """A run record that the runner will not re-execute; the message says why."""


@dataclass(frozen=True)
class RecordedStep:
    """One ``datalad containers-run`` step of a submission, as the runner will replay it."""

    commit: str
    cmd: str
    inner: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "commit": self.commit,
            "recorded_cmd": self.cmd,
            "command": self.inner,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
        }


def call_prefix_pattern(cmdexec: str, image: str) -> re.Pattern[str]:
    """A regex matching the organizer's container call format with ``{cmd}`` captured.

    ``{python}`` is the participant's interpreter (any single word), ``{img_dspath}``
    is ``.`` for a record made at the dataset root.
    """
    parts: list[str] = []
    for literal, name, spec, conversion in string.Formatter().parse(cmdexec):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if spec or conversion:
            raise JcError(f"container call format {cmdexec!r}: unsupported placeholder {{{name}}}")
        if name == "python":
            parts.append(r"\S+")
        elif name == "img_dspath":
            parts.append(r"\.")
        elif name == "img":
            parts.append(re.escape(image))
        elif name == "img_dirpath":
            parts.append(re.escape(str(PurePosixPath(image).parent)))
        elif name == "cmd":
            parts.append(r"(?P<cmd>.+)")
        else:
            raise JcError(f"container call format {cmdexec!r}: unknown placeholder {{{name}}}")
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def parse_message(message: str) -> dict | str | None:
    """The run record in a commit message: a dict (inline), a sidecar id (str), or None."""
    m = _RECORD.match(message)
    if not m:
        return None
    try:
        value = json.loads(m.group("json"))
    except json.JSONDecodeError as exc:
        raise ProvenanceError(f"run record is not valid JSON: {exc}") from None
    if not isinstance(value, dict | str):
        raise ProvenanceError("run record must be a JSON object or a sidecar id")
    return value


def load_sidecar(data: bytes) -> dict:
    """A sidecar record file: xz-compressed (as datalad writes it) or plain JSON lines."""
    if data[:6] == b"\xfd7zXZ\x00":
        data = lzma.decompress(data)
    text = data.decode("utf-8").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = json.loads(text.splitlines()[0])
    if isinstance(value, list):
        value = value[0] if value else {}
    if not isinstance(value, dict):
        raise ProvenanceError("sidecar run record is not a JSON object")
    return value


def check_inner_command(inner: str) -> None:
    """Refuse placeholders other than {inputs}/{outputs} and shell control operators."""
    try:
        fields = list(string.Formatter().parse(inner))
    except ValueError as exc:
        raise ProvenanceError(f"command {inner!r}: malformed placeholder ({exc}); double literal braces") from None
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in ALLOWED_PLACEHOLDERS or spec or conversion:
            raise ProvenanceError(
                f"command uses the placeholder {{{name}}}; only {{inputs}} and {{outputs}} are allowed"
            )
    if "`" in inner or "$(" in inner:
        raise ProvenanceError("command uses shell command substitution; not allowed")
    lexer = shlex.shlex(inner, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ProvenanceError(f"command {inner!r} cannot be parsed: {exc}") from None
    for token in tokens:
        if token and set(token) <= _SHELL_META:
            raise ProvenanceError(
                f"command contains the shell operator {token!r}: on your machine that part ran outside "
                "the container; wrap the whole command as sh -c '...'"
            )


def _paths(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ProvenanceError(f"run record field '{what}' must be a list of paths")
    out = []
    for item in value:
        p = PurePosixPath(item)
        if p.is_absolute() or ".." in p.parts:
            raise ProvenanceError(f"run record {what} path {item!r} must be relative, inside the dataset")
        out.append(str(p))
    return tuple(out)


def check_record(
    record: dict,
    commit: str,
    *,
    prefix: re.Pattern[str],
    image: str,
    denied: Sequence[str],
    input_root: str,
) -> RecordedStep:
    """Validate one run record; return the step to replay or raise :class:`ProvenanceError`."""
    cmd = record.get("cmd")
    if isinstance(cmd, list):
        cmd = " ".join(shlex.quote(c) for c in cmd)
    if not isinstance(cmd, str) or not cmd.strip():
        raise ProvenanceError(f"commit {commit[:12]}: run record has no command")
    if record.get("pwd", ".") != ".":
        raise ProvenanceError(f"commit {commit[:12]}: run from {record.get('pwd')!r}; run from the dataset root")
    m = prefix.match(cmd)
    if not m:
        raise ProvenanceError(
            f"commit {commit[:12]}: not recorded with the challenge's container "
            f"(`datalad containers-run -n <container> ...`); found: {cmd[:200]}"
        )
    inner = m.group("cmd").strip()
    extra = _paths(record.get("extra_inputs"), "extra_inputs")
    if image not in extra:
        raise ProvenanceError(f"commit {commit[:12]}: the record does not name the challenge image as input")
    check_inner_command(inner)
    inputs = _paths(record.get("inputs"), "inputs")
    outputs = _paths(record.get("outputs"), "outputs")
    for path in outputs:
        top = PurePosixPath(path).parts[0]
        if top in denied or path == input_root or path.startswith(input_root + "/"):
            raise ProvenanceError(f"commit {commit[:12]}: output {path!r} lies under a protected path")
    if not outputs:
        raise ProvenanceError(f"commit {commit[:12]}: the record names no outputs; add --output")
    return RecordedStep(commit=commit, cmd=cmd, inner=inner, inputs=inputs, outputs=outputs)


def iter_steps(
    commits: Sequence[str],
    message_of: Callable[[str], str],
    sidecar_of: Callable[[str, str], bytes],
    **checks,
) -> list[RecordedStep]:
    """Every run record in ``commits`` (oldest first), checked.

    ``sidecar_of(commit, record_id)`` returns the bytes of ``.datalad/runinfo/<id>``.
    """
    steps = []
    for commit in commits:
        value = parse_message(message_of(commit))
        if value is None:
            continue
        if isinstance(value, str):
            if not re.fullmatch(r"[0-9a-f]{32}", value):
                raise ProvenanceError(f"commit {commit[:12]}: sidecar record id {value!r} is malformed")
            value = load_sidecar(sidecar_of(commit, value))
        steps.append(check_record(value, commit, **checks))
    return steps


def expand_command(inner: str, inputs: Sequence[str], outputs: Sequence[str]) -> str:
    """Fill ``{inputs}``/``{outputs}`` as ``datalad run`` does: quoted, space-separated."""
    quoted_in = " ".join(shlex.quote(p) for p in inputs)
    quoted_out = " ".join(shlex.quote(p) for p in outputs)
    return inner.format(inputs=quoted_in, outputs=quoted_out)

"""Parse a submission's recorded provenance: DataLad run records, checked.

A run record is JSON in a commit message (inline) or in a sidecar file under
``.datalad/runinfo/`` that the message names. Each record must come from the
challenge's container: its command must be exactly the organizer's call format
(taken from the organizer's own challenge, never from the submission) with a
plain path as interpreter, run at the dataset root, and use no placeholder but
``{inputs}`` and ``{outputs}``. What is kept is the *inner* command, which the
runner alone executes, in its sandbox. Records are untrusted bytes: their size,
JSON nesting, number of paths and decompressed size are bounded here, and
anything beyond a bound is refused with the reason.
"""

from __future__ import annotations

import itertools
import json
import lzma
import re
import shlex
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from jc_datalad.errors import JcError

# What ``datalad rerun`` takes for a run record (datalad/local/rerun.py, get_run_info): the
# message starts with _RUNCMD, the JSON lies between the last _BELOW and the last _ABOVE after
# it. A commit is a record for the runner exactly when it is one for a reader's rerun, so no
# record escapes the checks here and still runs on a reader's machine.
_RUNCMD = "[DATALAD RUNCMD] "
_BELOW = "=== Do not change lines below ===\n"
_ABOVE = "\n^^^ Do not change lines above ^^^"
ALLOWED_PLACEHOLDERS = frozenset({"inputs", "outputs"})
_SHELL_META = set("();<>|&")

# Bounds on what a submission's run records may hold. ``datalad containers-run`` writes records
# of a few kB with a handful of paths; these leave room for any honest one and stop a record
# from costing the runner memory, time or a traceback.
#: bytes of one record: the inline JSON of a commit message, or a sidecar after decompression
MAX_RECORD_BYTES = 2**20
#: nesting of JSON arrays and objects in a record (datalad's records nest 2 deep)
MAX_JSON_DEPTH = 16
#: memory the xz decoder of a sidecar may use (datalad writes them with an 8 MiB dictionary)
XZ_MEMORY_LIMIT = 2**26
#: paths in each of a record's inputs, outputs and extra_inputs
MAX_PATHS = 1000
#: characters of one recorded path
MAX_PATH_CHARS = 1024
#: characters of a recorded command, and of the inner command once its placeholders are filled
#: (the kernel refuses one argument over 128 KiB, MAX_ARG_STRLEN)
MAX_COMMAND_CHARS = 64 * 1024
#: run records between the challenge and a submission head
MAX_STEPS = 100
#: the interpreter word ``{python}`` of the call format: a plain absolute or relative path.
#: Anything else (quotes, ``$``, backticks, spaces, ``;``) would run on a reader's machine
#: when the record is re-executed with ``datalad rerun``.
PLAIN_PATH = r"[A-Za-z0-9_.+/][A-Za-z0-9_.+/-]*"
_PLAIN_PATH = re.compile(PLAIN_PATH)
#: The interpreter word of the portable call format (jc_datalad.challenge.CALL_FORMAT): found on
#: the PATH of whoever re-executes a record, so a record names no machine's folders.
PORTABLE_INTERPRETER = "python3"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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

    ``{python}`` is the participant's interpreter, a plain path (:data:`PLAIN_PATH`);
    ``{img_dspath}`` is ``.`` for a record made at the dataset root. Every other part
    must be the organizer's text exactly. A format that starts with the portable
    interpreter word (:data:`PORTABLE_INTERPRETER`) also matches records made before
    the challenge took it up, whose first word is the recording machine's interpreter
    path: such records keep being evaluated.
    """
    if cmdexec.startswith(PORTABLE_INTERPRETER + " "):
        cmdexec = "{python}" + cmdexec[len(PORTABLE_INTERPRETER):]
    parts: list[str] = []
    for literal, name, spec, conversion in string.Formatter().parse(cmdexec):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if spec or conversion:
            raise JcError(f"container call format {cmdexec!r}: unsupported placeholder {{{name}}}")
        if name == "python":
            parts.append(f"(?:{PLAIN_PATH})")
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
    """The run record in a commit message: a dict (inline), a sidecar id (str), or None.

    A commit is a record exactly when ``datalad rerun`` takes it for one.
    """
    body = record_json(message)
    if body is None:
        return None
    value = _loads(body, "run record")
    if not isinstance(value, dict | str):
        raise ProvenanceError("run record must be a JSON object or a sidecar id")
    return value


def record_json(message: str) -> str | None:
    """The JSON part of a run record message as ``datalad rerun`` finds it; None for another message.

    datalad matches ``\\[DATALAD RUNCMD\\] (.*)=== Do not change lines below ===\\n(.*)\\n\\^\\^\\^ Do not
    change lines above \\^\\^\\^`` (greedy, DOTALL) at the start of the message. The same
    result is found here with two ``rfind`` calls: that expression backtracks quadratically
    on a message of many markers, which would stall a pass.
    """
    if not message.startswith(_RUNCMD):
        return None
    above = message.rfind(_ABOVE)
    if above < 0:
        return None
    below = message.rfind(_BELOW, len(_RUNCMD), above)
    if below < 0:
        return None
    return message[below + len(_BELOW):above]


def _loads(text: str, what: str) -> object:
    """JSON of a bounded size and nesting depth, or :class:`ProvenanceError` saying which bound."""
    if len(text) > MAX_RECORD_BYTES:
        raise ProvenanceError(f"{what} is {len(text)} characters; the limit is {MAX_RECORD_BYTES}")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ProvenanceError(f"{what} nests JSON {depth} levels deep; the limit is {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProvenanceError(f"{what} is not valid JSON: {exc}") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets inside strings do not count).

    Read without parsing, so that a 100,000-deep document costs a scan, not a recursion.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def load_sidecar(data: bytes) -> dict:
    """A sidecar record file: xz-compressed (as datalad writes it) or plain JSON lines.

    Decompression stops at :data:`MAX_RECORD_BYTES` of output and :data:`XZ_MEMORY_LIMIT`
    of decoder memory, so a small file cannot grow into a large one in the runner.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise ProvenanceError(f"sidecar run record is {len(data)} bytes; the limit is {MAX_RECORD_BYTES}")
    if data[:6] == b"\xfd7zXZ\x00":
        decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMORY_LIMIT)
        try:
            data = decoder.decompress(data, max_length=MAX_RECORD_BYTES + 1)
        except lzma.LZMAError as exc:
            raise ProvenanceError(f"sidecar run record is not valid xz data ({exc})") from None
        if len(data) > MAX_RECORD_BYTES:
            raise ProvenanceError(f"sidecar run record decompresses to more than {MAX_RECORD_BYTES} bytes; "
                                  "a run record is a few kB")
        if not decoder.eof or decoder.unused_data:
            raise ProvenanceError("sidecar run record is not one complete xz stream")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ProvenanceError("sidecar run record is not UTF-8 text") from None
    try:
        value = _loads(text, "sidecar run record")
    except ProvenanceError:
        # JSON lines, as datalad writes them: datalad rerun reads the first line
        value = _loads(text.splitlines()[0] if text else "", "sidecar run record")
    if isinstance(value, list):
        value = value[0] if value else {}
    if not isinstance(value, dict):
        raise ProvenanceError("sidecar run record is not a JSON object")
    return value


def check_inner_command(inner: str) -> None:
    """Refuse placeholders other than {inputs}/{outputs}, shell control operators and newlines."""
    if _CONTROL.search(inner):
        raise ProvenanceError(
            "command contains a newline or another control character: the shell reads a newline as a "
            "command separator, so that part ran outside the container on your machine; write one "
            "command on one line, or wrap it as sh -c '...'"
        )
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


def _paths(value: object, what: str, *, root: bool = False) -> tuple[str, ...]:
    """Recorded paths, checked: relative, inside the dataset, printable, bounded in number and length.

    ``root``: whether ``.`` (the whole dataset) may be named.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ProvenanceError(f"run record field '{what}' must be a list of paths")
    if len(value) > MAX_PATHS:
        raise ProvenanceError(f"run record field '{what}' names {len(value)} paths; the limit is {MAX_PATHS}: "
                              "name folders or glob patterns instead of every file")
    out = []
    for item in value:
        if len(item) > MAX_PATH_CHARS or _CONTROL.search(item) or not item.strip():
            shown = item[:80].encode("unicode_escape").decode("ascii")
            raise ProvenanceError(f"run record {what} path {shown!r} is empty, longer than {MAX_PATH_CHARS} "
                                  "characters or holds a control character")
        p = PurePosixPath(item)
        if p.is_absolute() or ".." in p.parts:
            raise ProvenanceError(f"run record {what} path {item!r} must be relative, inside the dataset")
        if not p.parts and not root:
            raise ProvenanceError(f"run record {what} path {item!r} names the whole dataset; name the folder "
                                  "the command writes, such as the interface output")
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
    if isinstance(cmd, list) and all(isinstance(c, str) for c in cmd):
        cmd = " ".join(shlex.quote(c) for c in cmd)
    if not isinstance(cmd, str) or not cmd.strip():
        raise ProvenanceError(f"commit {commit[:12]}: run record has no command")
    if len(cmd) > MAX_COMMAND_CHARS:
        raise ProvenanceError(f"commit {commit[:12]}: the recorded command is {len(cmd)} characters; "
                              f"the limit is {MAX_COMMAND_CHARS}")
    if _CONTROL.search(cmd):
        check_inner_command(cmd)  # raises: says why a newline is refused
    if record.get("pwd", ".") != ".":
        raise ProvenanceError(f"commit {commit[:12]}: run from {record.get('pwd')!r}; run from the dataset root")
    m = prefix.match(cmd)
    if not m:
        word = cmd.split(" ", 1)[0]
        why = ("" if _PLAIN_PATH.fullmatch(word) else
               f"; its first word {word[:80]!r} is not a plain path to an interpreter (letters, digits and "
               ". _ + - / only), and `datalad rerun` would run it on a reader's machine")
        raise ProvenanceError(
            f"commit {commit[:12]}: not recorded with the challenge's container "
            f"(`datalad containers-run -n <container> ...`) in exactly the organizer's call format{why}; "
            f"found: {cmd[:200]!r}"
        )
    inner = m.group("cmd").strip()
    extra = _paths(record.get("extra_inputs"), "extra_inputs", root=True)
    if image not in extra:
        raise ProvenanceError(f"commit {commit[:12]}: the record does not name the challenge image as input")
    check_inner_command(inner)
    inputs = _paths(record.get("inputs"), "inputs", root=True)
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
    steps: list[RecordedStep] = []
    for commit in commits:
        value = parse_message(message_of(commit))
        if value is None:
            continue
        if len(steps) >= MAX_STEPS:
            raise ProvenanceError(f"more than {MAX_STEPS} run records between the challenge and the head; "
                                  "squash your history into the steps that make the prediction")
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
    command = inner.format(inputs=quoted_in, outputs=quoted_out)
    if len(command) > MAX_COMMAND_CHARS:
        raise ProvenanceError(f"the command is {len(command)} characters once its inputs and outputs are "
                              f"filled in; the limit is {MAX_COMMAND_CHARS}: name folders, not every file")
    return command

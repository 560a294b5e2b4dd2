"""Leak-safe failure reports: what is said in public about steps that ran on hidden data.

A submission's steps see the hidden inputs, so whatever they print, every
exception message and every file name they make may carry those inputs. The
public record (and so the site) therefore holds only system facts about them:
the failure class (time limit, memory, exit code N, invalid output or refused,
with the rule), and the resources used. What they printed, with the runner's
full messages, goes to :class:`LogBook` and from there

- always to the organizer's private store (``runner.yaml`` ``logs:``, never the
  results dataset): ``<store>/<evaluation id>/logs.txt``;
- with ``logs: team-encrypted`` also into the ledger as ``logs.age``, encrypted
  to the team's registered SSH keys (age format, ASCII armour), so only the
  team can read it, with ``age -d -i ~/.ssh/id_ed25519 logs.age``;
- with ``logs: public`` (development phases on public inputs) into the ledger
  as ``logs.txt``, shown on the evaluation page.

Caps apply per evaluation, never per step: :class:`LogCaps` bounds the bytes of
all steps' output together (head and tail of each stream kept within that
total) and the number of steps whose logs and resources are kept.

:func:`seal` is the one boundary: the evaluation calls it once, after scoring,
and records only what it returns.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jc_datalad.errors import JcError
from jc_datalad.sandbox import StepResult, StepStatus
from jc_datalad.spec import LogVisibility

lgr = logging.getLogger(__name__)

LOGS_TXT = "logs.txt"  #: the capped logs: in the private store, and in the ledger with ``logs: public``
LOGS_AGE = "logs.age"  #: the capped logs encrypted to the team's keys, in the ledger (``team-encrypted``)
#: The runner's own messages about one evaluation (full reason, per-item scorer errors) are kept up to here.
DETAIL_BYTES = 16 * 2**10
#: age keys that pyrage (and age) accept as recipients
AGE_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")


@dataclass(frozen=True)
class LogCaps:
    """Bounds on one evaluation's logs, all steps together."""

    total_bytes: int  #: stdout and stderr of every kept step, together
    steps: int  #: steps whose logs (and, in public, resources) are kept: the first ``steps - 1`` and the last

    def __post_init__(self) -> None:
        if self.total_bytes < 0 or self.steps < 1:
            raise ValueError(f"log caps {self}: total_bytes >= 0 and steps >= 1")


#: What the organizer's private store keeps of one evaluation.
PRIVATE_CAPS = LogCaps(total_bytes=4 * 2**20, steps=32)
#: What is published (encrypted to the team, or in public): less, since the ledger keeps it for ever.
PUBLISHED_CAPS = LogCaps(total_bytes=256 * 2**10, steps=16)


# -- what the public record says ------------------------------------------------------------------

def step_failure(number: int, result: StepResult, *, time_s: float, memory_bytes: int) -> str:
    """The public reason a step failed: its failure class and the limit, never what it printed."""
    status = result.status
    if status is StepStatus.TIMEOUT:
        return f"step {number} exceeded the time limit of {time_s:g} s and was stopped"
    if status is StepStatus.MEMORY:
        return f"step {number} ran out of memory (limit {memory_bytes / 2**30:.1f} GiB)"
    if status is StepStatus.INFRASTRUCTURE:
        return f"step {number}: the sandbox could not be set up (a fault of the platform, not of the submission)"
    code = result.exit_code
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"step {number} was killed by {name}"
    if isinstance(code, int):
        return f"step {number} exited with code {code}"
    return f"step {number} failed ({status.value})"


#: Step result fields that are text, yet organizer-made (enum values), so safe to publish.
_SYSTEM_TEXT = frozenset({"status", "accounting"})


def _numbers_only(value: Any) -> Any:
    """``value`` if it is a number, bool, None, or a mapping of such; else None (text is never a fact)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        kept = {str(k): _numbers_only(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None}
    return None


def step_facts(number: int, command: str, result: StepResult) -> dict[str, Any]:
    """The record's entry for one executed step: status and resources; no output of it.

    ``command`` is the participant's recorded command with the organizer's paths put in;
    it was written before the step saw hidden data.
    """
    facts: dict[str, Any] = {"number": number, "command": command}
    for key, value in result.as_dict().items():
        if key in _SYSTEM_TEXT and isinstance(value, str):
            facts[key] = value
        elif key not in facts:
            kept = _numbers_only(value)
            if kept is not None or value is None:
                facts[key] = kept
    return facts


def cap_steps(steps: Sequence[dict[str, Any]], caps: LogCaps = PUBLISHED_CAPS) -> list[dict[str, Any]]:
    """The record's steps with resources kept for at most ``caps.steps`` of them.

    Resource figures are chosen by the submission too (a step can sleep or allocate on
    purpose), so they are a narrow channel; unbounded steps would widen it without limit.
    The first ``steps - 1`` and the last step keep their figures; the others keep number,
    command and status, and their total CPU and wall seconds are added to the last kept
    step under ``left_out`` (so the energy estimate still counts them).
    """
    if len(steps) <= caps.steps:
        return [dict(s) for s in steps]
    head, middle, last = steps[:caps.steps - 1], steps[caps.steps - 1:-1], steps[-1]
    out = [dict(s) for s in head]
    out += [{k: s[k] for k in ("number", "command", "status") if k in s} for s in middle]

    def total(key: str) -> float:
        return round(sum(float(s[key]) for s in middle
                         if isinstance(s.get(key), int | float) and not isinstance(s.get(key), bool)), 2)

    out.append({**last, "left_out": {"steps": len(middle), "cpu_s": total("cpu_s"), "wall_s": total("wall_s")}})
    return out


#: Classes of invalid predictions: (what the scorer's message says, the rule shown in public).
#: Matching only picks organizer text; what the message quotes is never shown.
ITEM_RULES: tuple[tuple[str, str], ...] = (
    ("unexpected file", "unexpected files (write only files named like the inputs)"),
    ("missing: the command wrote", "missing prediction files (one per input, named like it)"),
    ("refers to another file", "files that refer to other files (write single-file TIFFs)"),
    ("is a symlink", "symbolic links (write regular files)"),
    ("not a regular file", "files that are not regular files"),
    ("compression bomb", "compressed blocks that inflate beyond their size"),
    ("is not accepted", "a compression that is not accepted (write uncompressed or zlib)"),
    ("compressed block is corrupt", "corrupt files"),
    ("lies outside the file", "corrupt files"),
    ("differs from the truth", "wrong shape (one value per truth pixel, same frame count)"),
    ("pages differ", "pages that differ in shape or data type"),
    ("pages;", "too many pages"),
    ("bytes of pixels", "images over the size bound"),
    ("byte bound for a table", "tables over the size bound"),
    ("over the bound of", "tables over the size bound"),
    ("rows; write one row", "tables over the size bound"),
    ("not utf-8", "tables that are not UTF-8 text"),
    ("sample format", "an unsupported sample format"),
    ("unreadable", "unreadable files"),
    ("cannot be opened", "unreadable files"),
    ("neither an image", "wrong number of dimensions"),
    ("is empty", "empty images"),
    ("not a label type", "wrong data type for labels (uint16; uint8, uint32, int32 accepted)"),
    ("not a mask type", "wrong data type for masks (0/1)"),
    ("a mask holds only", "masks with values other than 0 and 1"),
    ("label ids must be", "negative label ids"),
    ("id column", "tables without an id and a value column"),
    ("no rows", "tables without rows"),
    ("more than once", "duplicate ids"),
    ("several value columns", "several value columns"),
    ("has no column", "a missing value column"),
    ("non-numeric or infinite", "missing, non-numeric or infinite values"),
    ("missing values", "missing values"),
    ("id(s) missing", "ids missing"),
    ("unknown id(s)", "unknown ids"),
)

#: Refusals of outputs after the steps ran: (what the message says, the rule shown in public).
OUTPUT_RULES: tuple[tuple[str, str], ...] = (
    ("symlink", "outputs must be regular files, not symbolic links"),
    ("not a regular file", "outputs must be regular files"),
    ("output limit", "the outputs must fit in the output limit"),
    ("more than", "the outputs must not hold more files than the limit (one file per item)"),
    ("nested deeper", "the outputs must not nest folders beyond the limit (write a flat folder)"),
    ("not utf-8", "output file names must be UTF-8 (plain names such as the inputs')"),
    ("too long or holds control", "output file names must be short, without control characters"),
    ("hidden name", "output file names must not start with a dot"),
    (".git", "outputs must not hold .git or .gitignore files"),
)

#: Reasons made by the runner from system facts alone (numbers in organizer text): kept as they are.
#: Every other reason for a run on hidden data is replaced by its class and rule.
SYSTEM_REASONS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"step \d+ exceeded the time limit of [\d.e+]+ s and was stopped",
    r"step \d+ ran out of memory \(limit [\d.]+ GiB\)",
    r"step \d+: the sandbox could not be (?:set up|started) \([a-z ,;'.]+\)",
    r"step \d+ was killed by (?:SIG[A-Z0-9]+|signal \d+)",
    r"step \d+ exited with code \d+",
    r"step \d+ failed \([a-z]+\)",
    r"the evaluation exceeded its time limit of [\d.e+]+ s for all steps before step \d+",
    # jc_datalad.scoring: the sealed scorer stopped at a limit on these predictions
    r"scoring the predictions exceeded its time limit of [\d.e+]+ s; write predictions of the size and type "
    r"the challenge asks for",
    r"scoring the predictions ran out of memory \([\d.]+ GiB\); write predictions of the size and type "
    r"the challenge asks for",
))

#: Further reasons after the steps ran: (what the message says, the rule shown in public).
FAILURE_RULES: tuple[tuple[str, str], ...] = (
    ("time limit", "the evaluation exceeded its time limit"),
    ("memory", "the evaluation ran out of memory"),
    ("output limit", "the outputs exceeded the output limit"),
)

_INTERNAL = re.compile(r"internal error: ([A-Za-z_][A-Za-z0-9_.]{0,60}):")


_QUOTED = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|(?<!\w)\"[^\"\n]*\"(?!\w)")  # not an apostrophe (truth's)


def _classes(text: str, rules: Iterable[tuple[str, str]]) -> list[str]:
    # what a message quotes (names, ids, bytes the submission made) does not choose the class
    low = _QUOTED.sub("''", text).lower()
    return [rule for needle, rule in rules if needle.lower() in low]


def public_item_error(error: Any) -> str | None:
    """One item's scorer error as its class (None stays None)."""
    if error is None or error == "":
        return None
    found = _classes(str(error), ITEM_RULES)
    return "invalid prediction: " + (found[0] if found else "it breaks the output format")


def public_reason(status: str, reason: str | None, *, output_format: str) -> str | None:
    """The reason shown in public for an evaluation whose steps ran on hidden data.

    A reason made from system facts alone (:data:`SYSTEM_REASONS`) is kept. Anything
    else is replaced by its class and rule: it may quote what the steps printed or the
    names of files they made. The classes are organizer text, chosen by matching the
    message; what the message quotes is never shown.
    """
    if reason is None or any(p.fullmatch(reason) for p in SYSTEM_REASONS):
        return reason
    status = str(status)
    if reason.startswith("invalid predictions"):
        found = _classes(reason, ITEM_RULES)
        what = "; ".join(dict.fromkeys(found)) if found else "the predictions break the output rules"
        return f"invalid output ({output_format}): {what}; the full messages are in the logs"
    if status == "refused":
        found = _classes(reason, OUTPUT_RULES)
        rule = found[0] if found else "the outputs break a rule of the challenge"
        return f"refused after the steps ran: {rule}; the full message is in the logs"
    if status == "failed":
        found = _classes(reason, FAILURE_RULES)
        return f"failed after the steps ran: {found[0] if found else 'see the logs'}"
    match = _INTERNAL.match(reason)
    kind = f" ({match.group(1)})" if match else ""
    return f"{status} after the steps ran on hidden data{kind}; the organizers have the details"


# -- what the logs keep ---------------------------------------------------------------------------

@dataclass
class _Stream:
    """One output stream, capped: its size, and its first and last bytes (all of it if it fits)."""

    size: int
    head: bytes
    tail: bytes = b""

    @property
    def kept(self) -> int:
        return len(self.head) + len(self.tail)

    def trimmed(self, keep: int) -> _Stream:
        """At most ``keep`` bytes: half from the start, half from the end."""
        if self.kept <= keep:
            return self
        if not self.tail:  # all of it was kept so far
            data = self.head
            front = keep // 2
            return _Stream(self.size, data[:front], data[len(data) - (keep - front):] if keep > front else b"")
        front = min(keep // 2, len(self.head))
        back = keep - front
        return _Stream(self.size, self.head[:front], self.tail[len(self.tail) - back:] if back else b"")


def _read_capped(path: Path, keep: int) -> _Stream:
    """The head and tail of a file within ``keep`` bytes, read without reading the middle."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= keep:
                return _Stream(size, fh.read(keep))
            front = keep // 2
            head = fh.read(front)
            fh.seek(size - (keep - front))
            return _Stream(size, head, fh.read(keep - front))
    except FileNotFoundError:
        return _Stream(0, b"")


def _shares(sizes: Sequence[int], total: int) -> list[int]:
    """Water-filling: each stream gets what it needs up to an equal share of what is left."""
    shares = [0] * len(sizes)
    left = total
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    for rank, i in enumerate(order):
        share = min(sizes[i], left // (len(order) - rank))
        shares[i] = share
        left -= share
    return shares


@dataclass
class _StepLog:
    number: int
    facts: str  # a system-fact summary line: status, exit code, wall time
    streams: dict[str, _Stream]


@dataclass
class LogBook:
    """The logs of one evaluation's steps, capped as they arrive.

    :meth:`add` reads each step's log files (left by the sandbox in the work folder) into
    memory within ``caps`` and removes them, so neither memory nor disk grows with the
    number of steps. It also remembers whether any step ran on hidden data.
    """

    caps: LogCaps = PRIVATE_CAPS
    steps: list[_StepLog] = field(default_factory=list)
    left_out: list[int] = field(default_factory=list)
    ran: bool = False

    def add(self, number: int, result: StepResult, log_dir: Path, name: str) -> None:
        self.ran = True
        facts = (f"status {result.status.value}, exit code {result.exit_code}, "
                 f"{result.wall_s:.2f} s wall, {result.cpu_s:.2f} s CPU, "
                 f"{result.peak_rss_bytes / 2**20:.1f} MiB peak memory")
        streams = {}
        for stream in ("stdout", "stderr"):
            path = log_dir / f"{name}.{stream}"
            streams[stream] = _read_capped(path, self.caps.total_bytes)
            path.unlink(missing_ok=True)
        if len(self.steps) >= self.caps.steps:
            dropped = self.steps.pop()  # the last kept step makes room for the newest one
            self.left_out.append(dropped.number)
        self.steps.append(_StepLog(number, facts, streams))
        self._trim(self.caps.total_bytes)

    def _trim(self, total: int) -> None:
        streams = [s for step in self.steps for s in step.streams.values()]
        for stream, share in zip(streams, _shares([s.size for s in streams], total), strict=True):
            trimmed = stream.trimmed(share)
            stream.size, stream.head, stream.tail = trimmed.size, trimmed.head, trimmed.tail

    def render(self, caps: LogCaps, *, header: Sequence[str], detail: str) -> str:
        """The logs as one text: a header, each kept step's streams, then the runner's messages."""
        kept = self.steps
        left_out = list(self.left_out)
        if len(kept) > caps.steps:
            left_out += [s.number for s in kept[caps.steps - 1:-1]]
            kept = [*kept[:caps.steps - 1], kept[-1]]
        streams = [(step, name, s) for step in kept for name, s in step.streams.items()]
        shares = _shares([s.size for _, _, s in streams], caps.total_bytes)
        lines = [*header, f"caps: {caps.total_bytes} bytes of step output in all, logs of {caps.steps} steps", ""]
        by_step: dict[int, list[str]] = {}
        for (step, name, stream), share in zip(streams, shares, strict=True):
            part = stream.trimmed(share)
            if part.kept >= stream.size:
                title = f"-- {name} ({stream.size} bytes) --"
                body = _text(part.head + part.tail)
            else:
                title = f"-- {name} ({stream.size} bytes; the first {len(part.head)} and last {len(part.tail)} kept) --"
                body = (_text(part.head) + f"\n[... {stream.size - part.kept} bytes left out ...]\n"
                        + _text(part.tail))
            by_step.setdefault(step.number, []).extend([title, body.rstrip("\n"), ""])
        for step in kept:
            lines += [f"== step {step.number}: {step.facts} ==", *by_step.get(step.number, [])]
        if left_out:
            lines += [f"== logs of steps {_ranges(sorted(left_out))} left out (at most {caps.steps} steps) ==", ""]
        if detail:
            lines += ["== the runner's messages ==", _text(detail.encode()[:DETAIL_BYTES]).rstrip("\n"), ""]
        return "\n".join(lines) + "\n"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _text(data: bytes) -> str:
    """Bytes as text anyone can open: UTF-8 with replacements, carriage returns as new lines,
    other control characters replaced (no terminal escapes, no characters HTML forbids)."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("\ufffd", text)


def _ranges(numbers: Sequence[int]) -> str:
    out: list[str] = []
    for n in numbers:
        if out and out[-1].rsplit("-", 1)[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


# -- encryption to the team's keys ----------------------------------------------------------------

def age_recipients(keys: Iterable[str]) -> list[Any]:
    """The team's SSH keys that age accepts (ssh-ed25519, ssh-rsa); others are skipped."""
    import pyrage

    found = []
    for key in keys:
        words = str(key).split()
        if len(words) < 2 or words[0] not in AGE_KEY_TYPES:
            continue
        try:
            found.append(pyrage.ssh.Recipient.from_str(f"{words[0]} {words[1]}"))
        except pyrage.RecipientError as exc:  # one bad key never stops the others
            lgr.warning("a registered %s key cannot be used for encryption: %s", words[0], exc)
    return found


def encrypt_armored(data: bytes, recipients: Sequence[Any]) -> str:
    """``data`` encrypted to ``recipients`` in the age format, ASCII-armoured (text, so git keeps it)."""
    import pyrage

    raw = base64.b64encode(pyrage.encrypt(data, list(recipients))).decode("ascii")
    lines = [raw[i:i + 64] for i in range(0, len(raw), 64)]
    return "-----BEGIN AGE ENCRYPTED FILE-----\n" + "\n".join(lines) + "\n-----END AGE ENCRYPTED FILE-----\n"


def decrypt_command(path: str = LOGS_AGE, key: str = "~/.ssh/id_ed25519") -> str:
    """The command a participant runs to read their logs."""
    return f"age -d -i {key} {path} > logs.txt"


# -- the record boundary --------------------------------------------------------------------------

@dataclass(frozen=True)
class Sealed:
    """What the record may keep of an evaluation whose steps ran on hidden data."""

    reason: str | None
    items: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    published: str | None  #: the logs file written next to the record (``logs.age``/``logs.txt``), if any


def check_store(store: Path, published: Iterable[Path]) -> None:
    """Refuse a private log store inside a dataset that is published."""
    where = store.resolve()
    for folder in published:
        if where.is_relative_to(folder.resolve()):
            raise JcError(f"runner.yaml logs: {store} lies inside {folder}, which is published; "
                          "choose a folder outside the challenge and results datasets")


def seal(
    book: LogBook,
    *,
    eval_id: str,
    visibility: LogVisibility,
    store: Path,
    out: Path,
    published: Sequence[Path],
    team_keys: Sequence[str],
    status: str,
    reason: str | None,
    items: Sequence[dict[str, Any]],
    steps: Sequence[dict[str, Any]],
    output_format: str,
    header: Sequence[str] = (),
    keep_predictions: Iterable[str] | None = None,
) -> Sealed:
    """The record boundary: what the public record keeps, and the logs written where they belong.

    ``out`` is the evaluation's folder in the ledger; ``published`` the datasets that are
    published (the private ``store`` must lie outside them). Nothing ran on hidden data
    (``book.ran`` false): the record keeps everything as it is. Otherwise the reason and
    item errors become classes with their rule, steps keep system facts for at most
    :data:`PUBLISHED_CAPS` steps, the full messages go into the logs, the logs go to
    ``store/<eval_id>/logs.txt`` and, by ``visibility``, into ``out``; and prediction
    files not named in ``keep_predictions`` (what the scorer reads) are removed from
    ``out/predictions``, so that the ledger keeps no other output made on hidden data.
    A disk problem while writing the logs is logged, never raised: the record is sealed.
    """
    # left by an earlier evaluation into the same folder (``jc runner evaluate``), or by the old layout
    shutil.rmtree(out / "logs", ignore_errors=True)
    for name in (LOGS_TXT, LOGS_AGE):
        (out / name).unlink(missing_ok=True)
    if not book.ran:
        return Sealed(reason, [dict(i) for i in items], [dict(s) for s in steps], None)
    detail_lines = [f"status: {status}", f"reason: {reason or '-'}"]
    detail_lines += [f"{i.get('name')}: {i.get('error')}" for i in items if i.get("error")]
    if keep_predictions is not None:
        removed = _prune(out / "predictions", set(keep_predictions))
        if removed:
            detail_lines.append(f"{removed} output file(s) not named like a hidden item were not kept")
    detail = "\n".join(detail_lines)
    sealed_reason = public_reason(status, reason, output_format=output_format)
    sealed_items = [{**i, "error": public_item_error(i.get("error"))} for i in items]
    written = None
    try:
        check_store(store, published)
        _write_atomic(store / eval_id / LOGS_TXT, book.render(book.caps, header=header, detail=detail))
        text = book.render(PUBLISHED_CAPS, header=header, detail=detail)
        if visibility is LogVisibility.PUBLIC:
            _write_atomic(out / LOGS_TXT, text)
            written = LOGS_TXT
        elif visibility is LogVisibility.TEAM_ENCRYPTED:
            recipients = age_recipients(team_keys)
            if recipients:
                _write_atomic(out / LOGS_AGE, encrypt_armored(text.encode("utf-8"), recipients))
                written = LOGS_AGE
            else:
                lgr.warning("%s: the team has no ssh-ed25519 or ssh-rsa key; its logs stay private", eval_id)
    except (OSError, JcError) as exc:
        lgr.error("%s: the logs could not be stored: %s", eval_id, exc)
    return Sealed(sealed_reason, sealed_items, cap_steps(steps), written)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _prune(folder: Path, keep: set[str]) -> int:
    """Remove from ``folder`` everything but the top-level files named in ``keep``; count the removed."""
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(folder):
        if entry.name in keep and entry.is_file(follow_symlinks=False):
            continue
        removed += 1
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    return removed

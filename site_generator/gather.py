"""Gather every record of the ledger first, checked once, before any page is rendered.

A record that cannot be read or fails a check becomes a :class:`BadRecord`
with every problem listed; it never stops the build. The same goes for the
final standings of ended phases (``standings/<phase>-final.json``): a file that
cannot be read or fails a check is reported and left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jc_datalad.ledger import EVALUATIONS, RECORD
from jc_datalad.provenance import PLAIN_PATH, ProvenanceError, check_inner_command
from jc_datalad.records import Evaluation, Status
from jc_datalad.standings import Row, Standings

# Ids become file and folder names of the site: no separators, no leading dot, and short enough
# that every file named after one ('<id>.html', 'leaderboard-<phase>.json') stays under NAME_MAX.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_RESERVED_CHALLENGE_IDS = {"static"}

#: Bytes of one record file the site reads; the runner writes a few kB to a few MB.
MAX_RECORD_FILE_BYTES = 64 * 2**20
# A JSON string escape of a UTF-16 surrogate: the only way a record file can hold a lone surrogate
# (e.g. a file name that was not UTF-8), which no page could be written with.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

#: The runner writes ``<phase>-final.json`` here once a phase has ended.
STANDINGS = "standings"
FINAL_SUFFIX = "-final.json"


@dataclass(frozen=True)
class BadRecord:
    """A record the site cannot show normally; it gets an error page where it has an id."""

    path: str  # relative to the results dataset, posix
    problems: tuple[str, ...]
    eval_id: str | None = None
    challenge_id: str | None = None
    team: str | None = None
    phase: str | None = None

    @property
    def page(self) -> str | None:
        if self.eval_id is None or self.challenge_id is None:
            return None
        return f"{self.challenge_id}/evaluations/{self.eval_id}.html"


@dataclass(frozen=True)
class Gathered:
    evaluations: tuple[Evaluation, ...]  # every good record, sorted by id
    paths: Mapping[str, str]  # evaluation id -> record path relative to the results dataset
    bad: tuple[BadRecord, ...]  # sorted by path
    problems: tuple[str, ...]  # "<record path>: <what is wrong>"
    finals: tuple[Standings, ...] = ()  # checked final standings, sorted by phase
    final_paths: Mapping[str, str] = field(default_factory=dict)  # phase -> file relative to results
    digests: Mapping[str, str] = field(default_factory=dict)  # evaluation id -> digest of its record file


def safe_challenge_id(value: object) -> bool:
    return (isinstance(value, str) and bool(_SAFE_ID.match(value))
            and value not in _RESERVED_CHALLENGE_IDS and not value.endswith(".html"))


def safe_eval_id(value: object) -> bool:
    return isinstance(value, str) and bool(_SAFE_ID.match(value))


def parse_time(value: str) -> dt.datetime:
    """An ISO 8601 time from the ledger; a time without a zone is taken as UTC."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def gather(results: Path, *, known_good: Set[str] = frozenset()) -> Gathered:
    """Read and check every record of ``results``; nothing here raises for one bad record.

    ``known_good``: digests (see :attr:`Gathered.digests`) of records an earlier
    build found good with this same code; such a record is not checked again.
    """
    good: dict[str, Evaluation] = {}
    paths: dict[str, str] = {}
    digests: dict[str, str] = {}
    bad: list[BadRecord] = []
    problems: list[str] = []
    for path, folder, digest, record in _read_records(results):
        rel = f"{EVALUATIONS}/{folder}/{RECORD}"
        if isinstance(record, Exception):
            found = [f"cannot be read: {type(record).__name__}: {record}"]
            bad.append(_salvage(path, rel, found))
        else:
            found = [] if digest in known_good else check(record, folder=folder)
            if not found and record.id in good:
                found = [f"repeats the id {record.id!r} of {paths[record.id]}; only the first is shown"]
            if found:
                bad.append(_bad_from(record, rel, found))
            else:
                good[record.id] = record
                paths[record.id] = rel
                digests[record.id] = digest
        problems.extend(f"{path}: {p}" for p in found)
    finals, final_paths = _gather_finals(results, problems)
    return Gathered(
        evaluations=tuple(good[k] for k in sorted(good)),
        paths=paths,
        bad=tuple(sorted(bad, key=lambda b: b.path)),
        problems=tuple(problems),
        finals=finals,
        final_paths=final_paths,
        digests=digests,
    )


def _read_records(results: Path) -> Iterator[tuple[str, str, str, Evaluation | Exception]]:
    """Every record file, in folder order: its path, folder, digest and record (or the error reading it).

    The digest hashes the folder name and the file's bytes: two records with one
    digest are the same record in the same place, so they pass the same checks.
    """
    evaluations = os.path.join(results, EVALUATIONS)
    try:
        folders = sorted(os.listdir(evaluations))
    except OSError:
        return
    for folder in folders:
        path = os.path.join(evaluations, folder, RECORD)  # no Path: this runs for every record of every build
        h = hashlib.sha256(folder.encode("utf-8", "surrogateescape") + b"\0")
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_RECORD_FILE_BYTES + 1)
            h.update(data)
            if len(data) > MAX_RECORD_FILE_BYTES:
                raise ValueError(f"larger than {MAX_RECORD_FILE_BYTES} bytes; the site does not read it")
            parsed = json.loads(data)
            if _SURROGATE_ESCAPE.search(data):  # rare: only then is every string looked at
                parsed = escape_surrogates(parsed)
            record: Evaluation | Exception = Evaluation.from_dict(parsed)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            record = exc
        yield path, folder, h.hexdigest(), record


def _escaped(text: str) -> str:
    """``text`` with each lone surrogate written as an escape: ``\\xNN`` for the byte that
    ``surrogateescape`` stood for, ``\\uDNNN`` for any other."""
    def one(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _LONE_SURROGATE.sub(one, text)


def escape_surrogates(value: Any) -> Any:
    """A JSON value with every string (keys too) free of lone surrogates, so pages can be written in UTF-8.

    Iterative, since the value may nest as deep as the JSON parser allowed.
    """
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return _escaped(v)
        if isinstance(v, dict):
            return {}
        if isinstance(v, list):
            return [None] * len(v)
        return v

    root = clean(value)
    todo = [(value, root)]
    while todo:
        source, target = todo.pop()
        if isinstance(source, dict):
            for k, v in source.items():
                target[_escaped(k)] = new = clean(v)
                if isinstance(v, dict | list):
                    todo.append((v, new))
        elif isinstance(source, list):
            for i, v in enumerate(source):
                target[i] = new = clean(v)
                if isinstance(v, dict | list):
                    todo.append((v, new))
    return root


def _gather_finals(results: Path, problems: list[str]) -> tuple[tuple[Standings, ...], dict[str, str]]:
    """Every readable ``standings/<phase>-final.json``; each bad one adds to ``problems``."""
    folder = results / STANDINGS
    if not folder.is_dir():
        return (), {}
    finals: dict[str, Standings] = {}
    paths: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(FINAL_SUFFIX):
            continue
        phase = path.name[: -len(FINAL_SUFFIX)]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict | list):
                data = escape_surrogates(data)
        except (OSError, ValueError, RecursionError) as exc:
            problems.append(f"{path}: cannot be read: {type(exc).__name__}: {exc}; "
                            "its final leaderboard is not shown")
            continue
        found = check_standings(data, phase=phase)
        if found:
            problems.extend(f"{path}: {p}; its final leaderboard is not shown" for p in found)
            continue
        finals[phase] = _standings(data)
        paths[phase] = path.relative_to(results).as_posix()
    return tuple(finals[p] for p in sorted(finals)), paths


def _standings(data: Mapping[str, Any]) -> Standings:
    """A checked standings object, keeping only the fields the site knows."""
    rows = tuple(
        Row(rank=r["rank"], team=r["team"], evaluation_id=r["evaluation_id"], score=float(r["score"]),
            first_seen=r["first_seen"], submissions=r["submissions"], previous_rank=r.get("previous_rank"),
            selected=tuple(r["selected"]))
        for r in data["rows"]
    )
    return Standings(phase=data["phase"], part=data["part"], final=data["final"], rows=rows,
                     rule=data["rule"])


def is_count(value: object, least: int = 0) -> bool:
    """An int (no bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_standings(data: Any, *, phase: str) -> list[str]:
    """Every reason the site cannot show a final standings file of ``phase``.

    Scores are private: a check names the key but never echoes a score.
    """
    if not isinstance(data, dict):
        return [f"must be a JSON object, not {type(data).__name__}"]
    found: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    need(phase != "", "the file name must be <phase>-final.json with a phase name")
    need(data.get("phase") == phase, f"phase {_shown(data.get('phase'))}: must be {_shown(phase)}, as in the file name")
    need(data.get("part") == "private", f"part {_shown(data.get('part'))}: must be 'private'")
    need(data.get("final") is True, f"final {_shown(data.get('final'))}: must be true")
    need(isinstance(data.get("rule"), str), f"rule {_shown(data.get('rule'))}: must be a string")
    rows = data.get("rows")
    if not isinstance(rows, list):
        found.append(f"rows: must be a list, not {type(rows).__name__}")
        return found
    teams: set[str] = set()
    for n, row in enumerate(rows):
        where = f"rows[{n}]"
        if not isinstance(row, dict):
            found.append(f"{where}: must be an object")
            continue
        need(row.get("rank") == n + 1 and is_count(row.get("rank"), 1),
             f"{where}.rank {_shown(row.get('rank'))}: must be {n + 1} (ranks are 1, 2, 3, ... in row order)")
        team = row.get("team")
        need(isinstance(team, str) and team != "", f"{where}.team {_shown(team)}: must be a non-empty string")
        need(team not in teams, f"{where}.team {_shown(team)}: repeats a team ranked above")
        if isinstance(team, str):
            teams.add(team)
        need(safe_eval_id(row.get("evaluation_id")),
             f"{where}.evaluation_id {_shown(row.get('evaluation_id'))}: must be an evaluation id")
        need(is_number(row.get("score")), f"{where}.score: must be a finite number")
        need(isinstance(row.get("first_seen"), str), f"{where}.first_seen: must be a string")
        need(is_count(row.get("submissions"), 0),
             f"{where}.submissions {_shown(row.get('submissions'))}: must be a count")
        previous = row.get("previous_rank")
        need(previous is None or is_count(previous, 1),
             f"{where}.previous_rank {_shown(previous)}: must be a rank from 1 or null")
        selected = row.get("selected")
        need(isinstance(selected, list) and all(safe_eval_id(s) for s in selected),
             f"{where}.selected {_shown(selected)}: must be a list of evaluation ids")
    return found


def _bad_from(ev: Evaluation, rel: str, found: list[str]) -> BadRecord:
    cid = ev.challenge.get("id") if isinstance(ev.challenge, dict) else None
    return BadRecord(
        path=rel,
        problems=tuple(found),
        eval_id=ev.id if safe_eval_id(ev.id) else None,
        challenge_id=cid if safe_challenge_id(cid) else None,
        team=ev.team if isinstance(ev.team, str) else None,
        phase=ev.phase if isinstance(ev.phase, str) else None,
    )


def _salvage(path: str, rel: str, found: list[str]) -> BadRecord:
    """What can still be known about a record ``Evaluation.from_dict`` refused: its ids, if any."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(MAX_RECORD_FILE_BYTES + 1))
        if isinstance(data, dict | list):
            data = escape_surrogates(data)
    except (OSError, ValueError, RecursionError):
        return BadRecord(path=rel, problems=tuple(found))
    if not isinstance(data, dict):
        return BadRecord(path=rel, problems=tuple(found))
    challenge = data.get("challenge")
    cid = challenge.get("id") if isinstance(challenge, dict) else None
    eid = data.get("id")
    team = data.get("team")
    phase = data.get("phase")
    return BadRecord(
        path=rel,
        problems=tuple(found),
        eval_id=eid if safe_eval_id(eid) else None,
        challenge_id=cid if safe_challenge_id(cid) else None,
        team=team if isinstance(team, str) else None,
        phase=phase if isinstance(phase, str) else None,
    )


def check(ev: Evaluation, *, folder: str) -> list[str]:
    """Every reason the site cannot show ``ev`` as it is, each naming the key and the value."""
    found: list[str] = []
    # each message is built only for a failed check: this runs for every record of every build
    if not safe_eval_id(ev.id):
        found.append(f"id {_shown(ev.id)}: must be a file name (letters, digits, . _ + -)")
    if ev.id != folder:
        found.append(f"id {_shown(ev.id)} differs from its folder {EVALUATIONS}/{folder}")
    for name in ("team", "phase", "split"):
        value = getattr(ev, name)
        # a rejected head ran on no split: older runners wrote '' for one first seen outside every phase
        if name == "split" and ev.status is Status.REJECTED and value == "":
            continue
        if not (isinstance(value, str) and value != ""):
            found.append(f"{name} {_shown(value)}: must be a non-empty string")
    if isinstance(ev.phase, str) and ev.phase and not safe_eval_id(ev.phase):
        # phase names become file names (submissions/<phase>-1.html)
        found.append(f"phase {_shown(ev.phase)}: must be a file name (letters, digits, . _ + -; "
                     "up to 200 characters)")
    if not (ev.reason is None or isinstance(ev.reason, str)):
        found.append(f"reason {_shown(ev.reason)}: must be a string or null")
    found.extend(_check_challenge(ev.challenge))
    found.extend(_check_submission(ev.submission))
    for name in ("hidden", "image", "scorer", "runner", "metrics", "public", "private", "stages"):
        if not isinstance(getattr(ev, name), dict):
            found.append(f"{name}: must be an object")
    found.extend(_check_scores("public", ev.public))
    # metrics cover the private part too: name the key, never echo its value onto a page
    found.extend(_check_scores("metrics", ev.metrics, echo=False))
    if isinstance(ev.stages, dict):
        for stage, seconds in ev.stages.items():
            if not is_number(seconds):
                found.append(f"stages.{stage} {_shown(seconds)}: must be a number of seconds")
    for name in ("started", "finished"):
        if not isinstance(getattr(ev, name), str):
            found.append(f"{name}: must be a string")
    if not (isinstance(ev.reproduce, list) and all(isinstance(c, str) for c in ev.reproduce)):
        found.append("reproduce: must be a list of command lines")
    found.extend(_check_items(ev.items))
    found.extend(_check_steps(ev.steps))
    if ev.status is Status.EVALUATED and not found:
        primary = ev.challenge["primary"]
        if not is_number(ev.public.get(primary)):
            found.append(f"status evaluated, but public.{primary} {_shown(ev.public.get(primary))} is not a score")
    return found


_RERUN = re.compile(r"\bdatalad\s+rerun\b")
_PLAIN_PATH = re.compile(PLAIN_PATH)


def published_reproduce(ev: Evaluation) -> list[str]:
    """The record's reproduce lines that a page may show.

    A line that re-executes the participant's run records (``datalad rerun``) runs
    their recorded commands on the reader's machine: it is shown only for a submission
    whose records the runner checked and re-executed (evaluated or failed, with its
    steps recorded), and only while each recorded command still has a plain path as
    interpreter and an inner command without shell operators or newlines (records
    made before those rules held are not shown with it).
    """
    lines = [line for line in ev.reproduce if isinstance(line, str)]
    if not any(_RERUN.search(line) for line in lines):
        return lines
    steps = ev.submission.get("steps") if isinstance(ev.submission, dict) else None
    checked = ev.status in (Status.EVALUATED, Status.FAILED) and isinstance(steps, list) and bool(steps)
    for step in steps if checked else ():  # type: ignore[union-attr]
        cmd, inner = step.get("recorded_cmd"), step.get("command")
        if not (isinstance(cmd, str) and isinstance(inner, str) and _PLAIN_PATH.fullmatch(cmd.split(" ", 1)[0])
                and cmd.endswith(inner) and "\n" not in cmd and "\r" not in cmd):
            checked = False
            break
        try:
            check_inner_command(inner)
        except ProvenanceError:
            checked = False
            break
    return lines if checked else [line for line in lines if not _RERUN.search(line)]


def _shown(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: a problem names a bad value, it does not copy it."""
    if isinstance(value, dict | list) and len(value) >= 50:
        text = f"<a {type(value).__name__} of {len(value)}>"
    else:
        try:
            text = repr(value)
        except RecursionError:
            text = f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_challenge(challenge: Any) -> list[str]:
    if not isinstance(challenge, dict):
        return ["challenge: must be an object"]
    found = []
    if not safe_challenge_id(challenge.get("id")):
        found.append(f"challenge.id {_shown(challenge.get('id'))}: must be a folder name (letters, digits, "
                     ". _ + -), not 'static'")
    for key in ("title", "type", "primary"):
        if not isinstance(challenge.get(key), str):
            found.append(f"challenge.{key} {_shown(challenge.get(key))}: must be a string")
    if challenge.get("direction") not in ("max", "min"):
        found.append(f"challenge.direction {_shown(challenge.get('direction'))}: must be 'max' or 'min'")
    columns = challenge.get("columns")
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        found.append(f"challenge.columns {_shown(columns)}: must be a list of metric names")
    return found


def _check_submission(submission: Any) -> list[str]:
    if not isinstance(submission, dict):
        return ["submission: must be an object"]
    found = []
    if not isinstance(submission.get("commit"), str):
        found.append(f"submission.commit {_shown(submission.get('commit'))}: must be a string")
    first_seen = submission.get("first_seen")
    try:
        parse_time(first_seen)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        found.append(f"submission.first_seen {_shown(first_seen)}: must be an ISO 8601 time "
                     "(ties on the leaderboard are broken by it)")
    branches = submission.get("branches", [])
    if not (isinstance(branches, list) and all(isinstance(b, str) for b in branches)):
        found.append(f"submission.branches {_shown(branches)}: must be a list of branch names")
    steps = submission.get("steps", [])
    if not (isinstance(steps, list) and all(isinstance(s, dict) for s in steps)):
        found.append("submission.steps: must be a list of objects")
        return found
    for n, step in enumerate(steps):
        for key in ("inputs", "outputs"):
            paths = step.get(key) or []
            if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
                found.append(f"submission.steps[{n}].{key}: must be a list of paths")
        for key in ("commit", "recorded_cmd", "command"):
            if not isinstance(step.get(key) or "", str):
                found.append(f"submission.steps[{n}].{key}: must be a string")
    return found


def _check_scores(where: str, scores: Any, *, echo: bool = True) -> list[str]:
    if not isinstance(scores, dict):
        return []
    return [f"{where}.{name}{f' {_shown(value)}' if echo else ''}: must be a finite number or null"
            for name, value in scores.items() if value is not None and not is_number(value)]


def _check_items(items: Any) -> list[str]:
    if not isinstance(items, list):
        return ["items: must be a list"]
    found = []
    for n, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and isinstance(item.get("metrics", {}), dict)):
            found.append(f"items[{n}]: must be an object with a name and a metrics object")
        elif item.get("part") == "public":
            found.extend(_check_scores(f"items[{n}].metrics", item.get("metrics", {})))
    return found


def _check_steps(steps: Any) -> list[str]:
    if not isinstance(steps, list):
        return ["steps: must be a list"]
    found = []
    for n, step in enumerate(steps):
        if not isinstance(step, dict):
            found.append(f"steps[{n}]: must be an object")
            continue
        number = step.get("number", n + 1)
        if not (isinstance(number, int) and not isinstance(number, bool) and number >= 1):
            found.append(f"steps[{n}].number {_shown(number)}: must be a step number from 1")
        for key in ("wall_s", "cpu_s", "peak_rss_bytes", "exit_code"):
            value = step.get(key)
            if value is not None and not is_number(value):
                found.append(f"steps[{n}].{key} {_shown(value)}: must be a number or null")
        for key in ("command", "status", "stdout_tail", "stderr_tail"):
            value = step.get(key, "")
            if not isinstance(value, str):
                found.append(f"steps[{n}].{key} {_shown(value)}: must be a string")
    return found

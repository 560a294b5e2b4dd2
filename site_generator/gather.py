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
from jc_datalad.records import Evaluation, Status
from jc_datalad.standings import Row, Standings

# Ids become file and folder names of the site: no separators, no leading dot.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_RESERVED_CHALLENGE_IDS = {"static"}

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
                data = f.read()
            h.update(data)
            record: Evaluation | Exception = Evaluation.from_dict(json.loads(data))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            record = exc
        yield path, folder, h.hexdigest(), record


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
        except (OSError, ValueError) as exc:
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
    need(data.get("phase") == phase, f"phase {data.get('phase')!r}: must be {phase!r}, as in the file name")
    need(data.get("part") == "private", f"part {data.get('part')!r}: must be 'private'")
    need(data.get("final") is True, f"final {data.get('final')!r}: must be true")
    need(isinstance(data.get("rule"), str), f"rule {data.get('rule')!r}: must be a string")
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
             f"{where}.rank {row.get('rank')!r}: must be {n + 1} (ranks are 1, 2, 3, ... in row order)")
        team = row.get("team")
        need(isinstance(team, str) and team != "", f"{where}.team {team!r}: must be a non-empty string")
        need(team not in teams, f"{where}.team {team!r}: repeats a team ranked above")
        if isinstance(team, str):
            teams.add(team)
        need(safe_eval_id(row.get("evaluation_id")),
             f"{where}.evaluation_id {row.get('evaluation_id')!r}: must be an evaluation id")
        need(is_number(row.get("score")), f"{where}.score: must be a finite number")
        need(isinstance(row.get("first_seen"), str), f"{where}.first_seen: must be a string")
        need(is_count(row.get("submissions"), 0),
             f"{where}.submissions {row.get('submissions')!r}: must be a count")
        previous = row.get("previous_rank")
        need(previous is None or is_count(previous, 1),
             f"{where}.previous_rank {previous!r}: must be a rank from 1 or null")
        selected = row.get("selected")
        need(isinstance(selected, list) and all(safe_eval_id(s) for s in selected),
             f"{where}.selected {selected!r}: must be a list of evaluation ids")
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
            data = json.load(f)
    except (OSError, ValueError):
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
        found.append(f"id {ev.id!r}: must be a file name (letters, digits, . _ + -)")
    if ev.id != folder:
        found.append(f"id {ev.id!r} differs from its folder {EVALUATIONS}/{folder}")
    for name in ("team", "phase", "split"):
        value = getattr(ev, name)
        if not (isinstance(value, str) and value != ""):
            found.append(f"{name} {value!r}: must be a non-empty string")
    if not (ev.reason is None or isinstance(ev.reason, str)):
        found.append(f"reason {ev.reason!r}: must be a string or null")
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
                found.append(f"stages.{stage} {seconds!r}: must be a number of seconds")
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
            found.append(f"status evaluated, but public.{primary} {ev.public.get(primary)!r} is not a score")
    return found


def _check_challenge(challenge: Any) -> list[str]:
    if not isinstance(challenge, dict):
        return ["challenge: must be an object"]
    found = []
    if not safe_challenge_id(challenge.get("id")):
        found.append(f"challenge.id {challenge.get('id')!r}: must be a folder name (letters, digits, "
                     ". _ + -), not 'static'")
    for key in ("title", "type", "primary"):
        if not isinstance(challenge.get(key), str):
            found.append(f"challenge.{key} {challenge.get(key)!r}: must be a string")
    if challenge.get("direction") not in ("max", "min"):
        found.append(f"challenge.direction {challenge.get('direction')!r}: must be 'max' or 'min'")
    columns = challenge.get("columns")
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        found.append(f"challenge.columns {columns!r}: must be a list of metric names")
    return found


def _check_submission(submission: Any) -> list[str]:
    if not isinstance(submission, dict):
        return ["submission: must be an object"]
    found = []
    if not isinstance(submission.get("commit"), str):
        found.append(f"submission.commit {submission.get('commit')!r}: must be a string")
    first_seen = submission.get("first_seen")
    try:
        parse_time(first_seen)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        found.append(f"submission.first_seen {first_seen!r}: must be an ISO 8601 time "
                     "(ties on the leaderboard are broken by it)")
    branches = submission.get("branches", [])
    if not (isinstance(branches, list) and all(isinstance(b, str) for b in branches)):
        found.append(f"submission.branches {branches!r}: must be a list of branch names")
    steps = submission.get("steps", [])
    if not (isinstance(steps, list) and all(isinstance(s, dict) for s in steps)):
        found.append("submission.steps: must be a list of objects")
    return found


def _check_scores(where: str, scores: Any, *, echo: bool = True) -> list[str]:
    if not isinstance(scores, dict):
        return []
    return [f"{where}.{name}{f' {value!r}' if echo else ''}: must be a finite number or null"
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
            found.append(f"steps[{n}].number {number!r}: must be a step number from 1")
        for key in ("wall_s", "cpu_s", "peak_rss_bytes", "exit_code"):
            value = step.get(key)
            if value is not None and not is_number(value):
                found.append(f"steps[{n}].{key} {value!r}: must be a number or null")
        for key in ("command", "status", "stdout_tail", "stderr_tail"):
            value = step.get(key, "")
            if not isinstance(value, str):
                found.append(f"steps[{n}].{key} {value!r}: must be a string")
    return found

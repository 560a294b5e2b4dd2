"""Each team's status file, ``<challenge>/status/<team>.json``, and what its team page shows of it.

A participant reads the file (``jc status``, or any HTTP client) to learn what
became of each submission and how much of the quotas is left. The quotas are
counted with the runner's own rules (:func:`jc_datalad.standings.quota`, which
admission decides with) over the same records, at one reference time: the
build's ``now`` when given (``jc runner serve`` gives the time of its pass),
else the latest time the ledger records (the description's ``as_of`` and every
first-seen time). So the same ledger and the same ``now`` give the same bytes.

Everything in the file that a participant can influence (branch names, reasons)
is cut to a bounded length and count; the file is JSON with every non-ASCII
character escaped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jc_datalad import ledger
from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import Phase
from jc_datalad.standings import Quota, open_phase, quota
from site_generator.gather import parse_time, safe_eval_id
from site_generator.leaderboard import Challenge, primary_score

#: The status file format; ``jc status`` refuses other formats.
FORMAT = 1
#: The newest submissions a status file lists (the team page and its exports list all of them).
MAX_SUBMISSIONS = 500
MAX_BRANCHES = 20
MAX_PENDING = 100
MAX_TEXT = 2000  # characters of a reason
MAX_NAME = 200  # characters of a branch name
#: Bytes of a status file at most: older submissions are left out to fit (``jc status`` reads 4 MiB).
MAX_FILE_BYTES = 2 * 2**20

# the statuses that count toward a quota, in words (standings._counts)
_COUNTED = {True: "evaluated, failed, refused and error submissions (not rejected ones, not platform errors)",
            False: "evaluated submissions only"}


def status_file(team: str) -> str | None:
    """A team's status file relative to its challenge folder; None for a name that is no safe file name.

    A folder of its own: ``teams/<team>.json`` is the team table's export, and a team named
    ``x.json`` must not meet team ``x``'s file.
    """
    return f"status/{team}.json" if safe_eval_id(team) else None


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut(text: Any, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_pending(results: Path) -> list[dict[str, Any]]:
    """Heads the runner has seen (``submissions/seen.jsonl``); broken lines are the runner's to report."""
    seen, _ = ledger.read_seen(results)
    return [entry for _, entry in sorted(seen.items())]


def reference_time(challenge: Challenge, pending: Iterable[Mapping[str, Any]] = ()) -> dt.datetime | None:
    """The latest time the ledger records for ``challenge``: what "today" is without an explicit ``now``."""
    times = [parse_time(ev.submission["first_seen"]) for ev in challenge.evaluations]
    for entry in pending:
        try:
            times.append(parse_time(str(entry["first_seen"])))
        except (KeyError, ValueError):
            continue
    if challenge.description is not None:
        times.append(challenge.description.as_of)
    return max(times) if times else None


def _phases(challenge: Challenge) -> list[Phase]:
    d = challenge.description
    if d is None:
        return []
    return [Phase(name=p["name"], start=parse_time(p["start"]), end=parse_time(p["end"]), split=p["split"],
                  per_day=p["per_day"], total=p["total"], select=p["select"]) for p in d.data["phases"]]


def _quota(q: Quota) -> dict[str, Any]:
    return {"phase": q.phase, "day": q.day.isoformat(), "resets": _iso(q.resets),
            "per_day": q.per_day, "used_today": q.used_today, "left_today": q.left_today,
            "total": q.total, "used_total": q.used_total, "left_total": q.left_total}


def _submission(challenge: Challenge, ev: Evaluation) -> dict[str, Any]:
    branches = ev.submission.get("branches") or []
    return {
        "commit": _cut(ev.submission.get("commit") or "", MAX_NAME),
        "branches": [_cut(b, MAX_NAME) for b in branches[:MAX_BRANCHES]],
        "first_seen": ev.submission["first_seen"],
        "phase": ev.phase,
        "status": ev.status.value,
        "reason": _cut(ev.reason) if ev.reason else None,
        "score": primary_score(ev, challenge.primary),
        "evaluation": f"evaluations/{ev.id}.html",
    }


def _pending(entry: Mapping[str, Any]) -> dict[str, Any]:
    raw = entry.get("branches")
    branches: list[Any] = raw if isinstance(raw, list) else []
    return {"commit": _cut(entry.get("commit", ""), MAX_NAME),
            "branches": [_cut(b, MAX_NAME) for b in branches[:MAX_BRANCHES]],
            "first_seen": str(entry.get("first_seen", ""))}


def team_statuses(challenge: Challenge, pending: Sequence[Mapping[str, Any]] = (),
                  now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """Team -> its status file's content, for every team with a record or a head the runner has seen.

    ``pending``: the entries of the challenge's ``submissions/seen.jsonl``; a head without
    a record yet (the pass that saw it has not decided it, or a platform error is tried
    again) is listed as pending. ``now``: the reference time (default :func:`reference_time`).
    """
    ref = now if now is not None else reference_time(challenge, pending)
    phases = _phases(challenge)
    d = challenge.description
    count_failed = bool(d.data["submission"]["count_failed"]) if d is not None else True
    by_team: dict[str, list[Evaluation]] = {}
    for ev in challenge.evaluations:
        by_team.setdefault(ev.team, []).append(ev)
    recorded = {(str(ev.submission.get("repository_team", ev.team)), ev.submission.get("commit"))
                for ev in challenge.evaluations} | {(ev.team, ev.submission.get("commit"))
                                                    for ev in challenge.evaluations}
    waiting: dict[str, list[dict[str, Any]]] = {}
    for entry in pending:
        team = entry.get("team")
        if isinstance(team, str) and (team, entry.get("commit")) not in recorded:
            waiting.setdefault(team, []).append(_pending(entry))
    out: dict[str, dict[str, Any]] = {}
    for team in sorted(set(by_team) | set(waiting)):
        if status_file(team) is None:
            continue
        evs = by_team.get(team, [])
        current = open_phase(phases, ref) if ref is not None else None
        upcoming = [p for p in phases if ref is not None and p.start > ref]
        nxt = min(upcoming, key=lambda p: p.start) if upcoming else None
        counts = {s.value: sum(ev.status is s for ev in evs) for s in Status}
        shown = evs[-MAX_SUBMISSIONS:]
        out[team] = {
            "format": FORMAT,
            "challenge": {"id": challenge.id, "title": _cut(challenge.title), "primary": challenge.primary,
                          "direction": challenge.direction},
            "team": team,
            "as_of": _iso(ref) if ref is not None else None,
            "phase": None if current is None else {"name": current.name, "start": _iso(current.start),
                                                    "end": _iso(current.end)},
            "next_phase": None if nxt is None else {"name": nxt.name, "start": _iso(nxt.start),
                                                     "end": _iso(nxt.end)},
            "quota": None if current is None or ref is None else _quota(
                quota(evs, team=team, phase=current, when=ref, count_failed=count_failed)),
            "quota_counts": _COUNTED[count_failed],
            "described": d is not None,
            "counts": {k: v for k, v in counts.items() if v},
            "submissions": [_submission(challenge, ev) for ev in reversed(shown)],  # newest first
            "omitted": len(evs) - len(shown),
            "pending": sorted(waiting.get(team, []), key=lambda e: (e["first_seen"], e["commit"]),
                              reverse=True)[:MAX_PENDING],
            "page": f"teams/{team}.html" if evs else None,
        }
        _fit(out[team])
    return out


def _fit(status: dict[str, Any]) -> None:
    """Leave out the oldest submissions until the file holds at most :data:`MAX_FILE_BYTES`
    (escaped non-ASCII text takes up to 12 bytes a character)."""
    while len(to_json(status)) > MAX_FILE_BYTES and status["submissions"]:
        keep = len(status["submissions"]) // 2
        status["omitted"] += len(status["submissions"]) - keep
        status["submissions"] = status["submissions"][:keep]


def to_json(status: Mapping[str, Any]) -> str:
    """The file's bytes: sorted keys, ASCII only (every other character escaped), no NaN."""
    return json.dumps(status, indent=1, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"


def quota_rows(status: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The rows "quotas shown to participants" of a team page: (what, value)."""
    if status is None:
        return []
    q = status["quota"]
    if q is None:
        if not status["described"]:
            return [("Quotas", "not known: the ledger holds no challenge description yet")]
        nxt = status["next_phase"]
        text = "no phase is open" + (f"; phase {nxt['name']} opens {_shown_time(nxt['start'])}" if nxt else "")
        return [("Phase", text)]

    def limit(used: int, left: int | None, cap: int | None) -> tuple[str, str]:
        if cap is None:
            return f"{used}", "no limit"
        return f"{used} of {cap}", f"{left}"

    used_day, left_day = limit(q["used_today"], q["left_today"], q["per_day"])
    used_all, left_all = limit(q["used_total"], q["left_total"], q["total"])
    if q["per_day"] is None and q["total"] is not None:
        left_day = f"{q['left_today']} (what is left of the phase)"
    return [
        ("Phase", f"{q['phase']} (until {_shown_time(status['phase']['end'])})"),
        (f"Used today ({q['day']}, UTC)", used_day),
        ("Left today", left_day),
        ("Used in the phase", used_all),
        ("Left in the phase", left_all),
        ("The day resets at", _shown_time(q["resets"])),
        ("Counted", status["quota_counts"]),
        ("As of", _shown_time(status["as_of"])),
    ]


def _shown_time(value: str) -> str:
    return f"{value[:10]} {value[11:19]} UTC"


def team_context(challenge: Challenge, team: str, evs: list[Evaluation], cache: Any,
                 status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The team page's context (:func:`site_generator.stats.team_context`) with its quota rows
    and the link to its status file."""
    from site_generator import stats

    file = status_file(team)
    return {**stats.team_context(challenge, team, evs, cache), "quota": quota_rows(status),
            "status_file": f"../{file}" if status is not None and file is not None else None,
            "pending": list(status["pending"]) if status is not None else []}

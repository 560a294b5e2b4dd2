"""``jc status``: a participant reads their team's status file from the published site.

The site (see :mod:`site_generator.status`) publishes ``<challenge>/status/<team>.json``
for every team the runner has seen. This module finds it (a site URL or a local
folder, the challenge id and the team name), reads it with a size limit and a
timeout, checks it, and returns typed records; the CLI prints them.

Defaults come from the participant's clone: the challenge id from its
``challenge.yaml``, the site and the team from ``git config jc.site`` and
``git config jc.team`` (set once; see docs/participants.md). Nothing but the
one HTTP(S) GET (or the one file read) reaches out.

What the file holds is shaped by participants (branch names, reasons): every
string is bounded here and stripped of control characters before it is shown.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from jc_datalad.errors import JcError

#: The status file format this reader knows (site_generator.status.FORMAT).
FORMAT = 1
#: Bytes of a status file read at most (a file lists at most 500 submissions).
MAX_BYTES = 4 * 2**20
TIMEOUT_S = 20.0
MAX_TEXT = 2000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # team and challenge ids as the site names files
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """A string fit for a terminal: control and bidi characters replaced, bounded."""
    text = _CONTROL.sub("\ufffd", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Submission:
    commit: str
    branches: tuple[str, ...]
    first_seen: str
    phase: str
    status: str  # evaluated, failed, refused, rejected, error, infrastructure; or pending
    reason: str | None
    score: float | None
    evaluation: str | None  # the page, relative to the challenge folder


@dataclass(frozen=True)
class Quota:
    phase: str
    day: str
    resets: str
    per_day: int | None
    used_today: int
    left_today: int | None
    total: int | None
    used_total: int
    left_total: int | None


@dataclass(frozen=True)
class TeamStatus:
    """A team's status file, checked."""

    source: str  # the URL or path it was read from
    challenge: str
    title: str
    primary: str
    team: str
    as_of: str | None
    phase: str | None
    phase_end: str | None
    next_phase: str | None
    next_start: str | None
    quota: Quota | None
    counted: str
    submissions: tuple[Submission, ...]  # newest first
    omitted: int
    pending: tuple[Submission, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- where the file is ----------------------------------------------------------------------------

def _git_config(key: str, where: Path) -> str | None:
    try:
        proc = subprocess.run(["git", "config", "--get", key], cwd=where, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _challenge_id(dataset: Path) -> str | None:
    """The ``id`` of the nearest ``challenge.yaml`` in ``dataset`` or a folder above it."""
    here = dataset.resolve()
    path = next((p / "challenge.yaml" for p in (here, *here.parents) if (p / "challenge.yaml").is_file()), None)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f.read(2**20))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Target:
    site: str
    challenge: str
    team: str

    @property
    def location(self) -> str:
        """The status file's URL or path."""
        tail = f"{self.challenge}/status/{self.team}.json"
        if _is_url(self.site):
            return self.site.rstrip("/") + "/" + urllib.parse.quote(tail)
        return str(Path(self.site) / tail)


def _is_url(site: str) -> bool:
    return urllib.parse.urlsplit(site).scheme in ("http", "https")


def resolve(*, site: str | None, challenge: str | None, team: str | None, dataset: Path = Path(".")) -> Target:
    """The status file to read: each value given, else read from the clone ``dataset``."""
    site = site or _git_config("jc.site", dataset)
    team = team or _git_config("jc.team", dataset)
    challenge = challenge or _challenge_id(dataset)
    missing = [what for what, value in (("--site (or `git config jc.site URL` in your clone)", site),
                                        ("--team (or `git config jc.team NAME` in your clone)", team),
                                        ("--challenge (or run it in your clone, which has challenge.yaml)",
                                         challenge)) if not value]
    if missing:
        raise JcError("jc status needs " + "; ".join(missing))
    assert site and team and challenge
    for what, value in (("team", team), ("challenge", challenge)):
        if not _NAME.match(value):
            raise JcError(f"{what} {_text(value, 80)!r}: not a name the site publishes (letters, digits, "
                          ". _ + -); check the spelling")
    scheme = urllib.parse.urlsplit(site).scheme
    if scheme and not _is_url(site) and len(scheme) > 1:  # one letter: a Windows drive
        raise JcError(f"--site {_text(site, 200)}: only http(s) URLs and local folders are read")
    return Target(site=site, challenge=challenge, team=team)


# -- reading ---------------------------------------------------------------------------------------

class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would follow one to ftp too)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _not_found(target: Target) -> JcError:
    return JcError(f"no status for team {target.team} at {target.location}: the site lists a team once the "
                   "runner has seen one of its branches. Check --team, --challenge and --site (the site's "
                   "address, where its index.html is), and that you pushed a branch")


def fetch(target: Target, *, timeout: float = TIMEOUT_S) -> bytes:
    """The status file's bytes (at most :data:`MAX_BYTES`)."""
    where = target.location
    if _is_url(target.site):
        opener = urllib.request.build_opener(_HttpOnlyRedirects)
        request = urllib.request.Request(where, headers={"Accept": "application/json",
                                                         "User-Agent": "jc-status"})
        try:
            with opener.open(request, timeout=timeout) as response:
                data = response.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _not_found(target) from None
            raise JcError(f"{where}: HTTP {exc.code} {_text(exc.reason, 200)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JcError(f"{where}: cannot be read ({_text(reason, 300)}); check --site and your network"
                          ) from None
    else:
        path = Path(where)
        if not path.is_file():
            raise _not_found(target)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise JcError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise JcError(f"{where}: larger than {MAX_BYTES} bytes; not a status file the site writes")
    return data


def read_status(target: Target, *, timeout: float = TIMEOUT_S) -> TeamStatus:
    """Fetch and check ``target``'s status file."""
    return parse(fetch(target, timeout=timeout), source=target.location, team=target.team)


# -- checking ----------------------------------------------------------------------------------------

class _Bad(Exception):
    pass


def _get(data: Any, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):  # no kind asked for here is bool
        raise _Bad(f"{key}: must be {getattr(kind, '__name__', kind)}")
    return value


def _count(data: Any, key: str, *, optional: bool = False) -> int | None:
    value = _get(data, key, int, optional=optional)
    if value is not None and value < 0:
        raise _Bad(f"{key}: must not be negative")
    return value


def _submission(entry: Any, pending: bool = False) -> Submission:
    if not isinstance(entry, dict):
        raise _Bad("a submission must be an object")
    branches = _get(entry, "branches", list)
    score = None if pending else _get(entry, "score", (int, float), optional=True)
    return Submission(
        commit=_text(_get(entry, "commit", str), 80),
        branches=tuple(_text(b, 200) for b in branches[:20] if isinstance(b, str)),
        first_seen=_text(_get(entry, "first_seen", str), 40),
        phase="" if pending else _text(_get(entry, "phase", str), 200),
        status="pending" if pending else _text(_get(entry, "status", str), 40),
        reason=None if pending else (_text(r) if (r := _get(entry, "reason", str, optional=True)) else None),
        score=None if score is None else float(score),
        evaluation=None if pending else _text(_get(entry, "evaluation", str), 300),
    )


def parse(data: bytes, *, source: str, team: str) -> TeamStatus:
    """Check a status file's bytes; every problem raises :class:`JcError` naming ``source``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JcError(f"{source}: not a status file (not JSON: {_text(exc, 200)})") from None
    try:
        if not isinstance(doc, dict):
            raise _Bad("must be a JSON object")
        if doc.get("format") != FORMAT:
            raise _Bad(f"format {_text(doc.get('format'), 20)}: this jc reads format {FORMAT}; "
                       "update jc-datalad (pip install -U jc-datalad)")
        if doc.get("team") != team:
            raise _Bad(f"team {_text(doc.get('team'), 80)!r}: asked for {team!r}")
        challenge = _get(doc, "challenge", dict)
        phase = _get(doc, "phase", dict, optional=True)
        nxt = _get(doc, "next_phase", dict, optional=True)
        q = _get(doc, "quota", dict, optional=True)
        quota = None if q is None else Quota(
            phase=_text(_get(q, "phase", str), 200), day=_text(_get(q, "day", str), 20),
            resets=_text(_get(q, "resets", str), 40), per_day=_count(q, "per_day", optional=True),
            used_today=_count(q, "used_today") or 0, left_today=_count(q, "left_today", optional=True),
            total=_count(q, "total", optional=True), used_total=_count(q, "used_total") or 0,
            left_total=_count(q, "left_total", optional=True))
        submissions = _get(doc, "submissions", list)
        pending = _get(doc, "pending", list)
        return TeamStatus(
            source=source, challenge=_text(_get(challenge, "id", str), 200),
            title=_text(_get(challenge, "title", str), 300), primary=_text(_get(challenge, "primary", str), 100),
            team=team, as_of=_get(doc, "as_of", str, optional=True),
            phase=None if phase is None else _text(_get(phase, "name", str), 200),
            phase_end=None if phase is None else _text(_get(phase, "end", str), 40),
            next_phase=None if nxt is None else _text(_get(nxt, "name", str), 200),
            next_start=None if nxt is None else _text(_get(nxt, "start", str), 40),
            quota=quota, counted=_text(_get(doc, "quota_counts", str), 300),
            submissions=tuple(_submission(s) for s in submissions[:1000]),
            omitted=_count(doc, "omitted") or 0,
            pending=tuple(_submission(p, pending=True) for p in pending[:1000]),
        )
    except _Bad as exc:
        raise JcError(f"{source}: not a status file this jc reads: {exc}") from None


# -- showing ------------------------------------------------------------------------------------------

def _time(value: str | None) -> str:
    if not value:
        return "—"
    return f"{value[:10]} {value[11:19]} UTC" if len(value) >= 19 and value[10:11] == "T" else value


def _left(used: int, left: int | None, cap: int | None) -> str:
    return f"{used} used, no limit" if cap is None else f"{used} of {cap} used, {left} left"


def render(status: TeamStatus, *, limit: int = 20) -> list[str]:
    """The lines ``jc status`` prints: quotas first, then the newest ``limit`` submissions."""
    lines = [f"team {status.team} in {status.title} ({status.challenge}), as of {_time(status.as_of)}"]
    q = status.quota
    if q is not None:
        lines += [f"phase {q.phase} (until {_time(status.phase_end)})",
                  f"  today ({q.day}, UTC): {_left(q.used_today, q.left_today, q.per_day)}"
                  + (f" (what is left of the phase: {q.left_today})" if q.per_day is None and q.left_today
                     is not None else ""),
                  f"  in the phase: {_left(q.used_total, q.left_total, q.total)}",
                  f"  the day resets at {_time(q.resets)}; counted: {status.counted}"]
    elif status.next_phase:
        lines.append(f"no phase is open; phase {status.next_phase} opens {_time(status.next_start)}")
    else:
        lines.append("no phase is open")
    for p in status.pending:
        lines.append(f"pending   {p.commit[:12]}  first seen {_time(p.first_seen)}  "
                     f"{', '.join(p.branches)}: seen by the runner, not decided yet")
    shown = status.submissions[:limit]
    if not shown and not status.pending:
        lines.append("no submissions yet")
    for s in shown:
        score = f"  {status.primary} {s.score:.4f} (public)" if s.score is not None else ""
        lines.append(f"{s.status:<9} {s.commit[:12]}  first seen {_time(s.first_seen)}  phase {s.phase}  "
                     f"{', '.join(s.branches)}{score}")
        if s.reason:
            lines.append(f"          {s.reason}")
    hidden = len(status.submissions) - len(shown) + status.omitted
    if hidden:
        lines.append(f"... and {hidden} older submission(s) (--all shows those in the file)")
    return lines

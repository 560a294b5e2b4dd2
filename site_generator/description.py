"""Challenge descriptions: ``challenges/<id>/description.json`` and ``README.md`` of the ledger.

The runner writes them (:mod:`jc_datalad.description`); here they are read and
checked once, like records: a file that is missing, unreadable or fails a check
is reported and that challenge gets no description pages (its leaderboard and
statistics stay as they are). A good description gives its challenge five
pages, ``<id>/index.html`` (overview, the README), ``data.html``,
``evaluation.html`` (metrics and limits), ``rules.html`` and ``timeline.html``,
and a navigation between them and the leaderboard and statistics pages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from jc_datalad.ledger import CHALLENGES, DESCRIPTION, README
from site_generator import metrics, readme
from site_generator.gather import is_count, is_number, parse_time, safe_challenge_id
from site_generator.leaderboard import TIE_RULE, Challenge, first_seen

#: The description format this site reads (the runner's folder and file names are its own).
FORMAT = 1

#: Page name -> (file in the challenge folder, template, link text), in navigation order.
PAGES = {
    "overview": ("index.html", "challenge_overview.html", "overview"),
    "data": ("data.html", "challenge_data.html", "data"),
    "evaluation": ("evaluation.html", "challenge_evaluation.html", "evaluation"),
    "rules": ("rules.html", "challenge_rules.html", "rules"),
    "timeline": ("timeline.html", "challenge_timeline.html", "timeline"),
}

Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Description:
    """A checked description of one challenge."""

    path: str  # description.json relative to the results dataset
    data: Mapping[str, Any]  # the checked JSON object
    readme_html: str | None  # the README rendered and sanitised; None without one
    digest: str  # a hash of both files: every description page shows nothing else of them

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def as_of(self) -> dt.datetime:
        return parse_time(self.data["as_of"])


# -- checks --------------------------------------------------------------------------------------

def _time(value: Any) -> bool:
    try:
        parse_time(value)
    except (TypeError, ValueError):
        return False
    return True


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _fraction(value: Any) -> bool:
    return is_number(value) and 0 < value < 1


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_VERSION = {"dataset_id": (_optional(_string), "a dataset id or null"),
            "commit": (_optional(_string), "a commit or null"),
            "files": (_optional(is_count), "a count or null"),
            "bytes": (_optional(is_count), "a count of bytes or null"),
            "unsized": (_optional(is_count), "a count or null")}

#: What each key must hold: (check, what it must be), a nested mapping, or [item schema].
SCHEMA: dict[str, Any] = {
    "format": (lambda v: v == FORMAT, f"{FORMAT}, the description format this site reads"),
    "id": (safe_challenge_id, "a challenge id (letters, digits, . _ + -), as the folder"),
    "title": (_text, "a non-empty string"),
    "type": (_text, "a non-empty string"),
    "as_of": (_time, "an ISO 8601 time"),
    "challenge": {"dataset_id": (_optional(_string), "a dataset id or null"),
                  "commit": (_text, "the challenge dataset's commit"),
                  "clone_url": (_text, "a URL or path"),
                  "clone": (_strings, "a list of command lines")},
    "readme": (lambda v: v in (None, README), f"{README!r} or null"),
    "interface": {"inputs": (_text, "a path"), "outputs": (_text, "a path"), "format": (_text, "a format")},
    "container": (_string, "a container name"),
    "resources": {"time_s": (is_count, "seconds"), "memory_bytes": (is_count, "bytes"), "cpus": (is_count, "a count"),
                  "gpus": (is_count, "a count"), "output_bytes": (is_count, "bytes"),
                  "processes": (is_count, "a count"), "network": (_bool, "true or false")},
    "metrics": {"scorer": (_string, "a scorer name"), "primary": (_text, "a metric name"),
                "direction": (lambda v: v in ("max", "min"), "'max' or 'min'"),
                "columns": [{"name": (_text, "a metric name"),
                             "definition": (_optional(_string), "a string or null")}]},
    "leaderboard": {"public_fraction": (_fraction, "a fraction between 0 and 1")},
    "phases": [{"name": (_text, "a phase name"), "start": (_time, "an ISO 8601 time"),
                "end": (_time, "an ISO 8601 time"), "split": (_string, "a split name"),
                "per_day": (_optional(is_count), "a count or null"), "total": (_optional(is_count), "a count or null"),
                "select": (is_count, "a count"), "extended_from": (_optional(_time), "an ISO 8601 time or null")}],
    "submission": {"max_file_bytes": (is_count, "bytes"), "signed": (_bool, "true or false"),
                   "count_failed": (_bool, "true or false"), "denied_paths": (_strings, "a list of paths")},
    "teams": {"merge_deadline": (_optional(_time), "an ISO 8601 time or null")},
    "final_selection": (_string, "the rule in words"),
    "data": {"public": [{"path": (_text, "a path"), **_VERSION}],
             "hidden": [{"split": (_text, "a split name"), "part": (lambda v: v in ("inputs", "labels"),
                                                                     "'inputs' or 'labels'"), **_VERSION}]},
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(data: Any, schema: Any = SCHEMA, where: str = "") -> list[str]:
    """Every reason the site cannot show ``data`` as a description, each naming its key."""
    if isinstance(schema, dict):
        if not isinstance(data, dict):
            return [f"{where or '(top level)'}: must be an object"]
        found = []
        for key, sub in schema.items():
            path = f"{where}.{key}" if where else key
            if key not in data:
                found.append(f"{path}: missing")
            else:
                found.extend(check(data[key], sub, path))
        return found
    if isinstance(schema, list):
        if not isinstance(data, list):
            return [f"{where}: must be a list"]
        return [p for n, item in enumerate(data) for p in check(item, schema[0], f"{where}[{n}]")]
    test, what = schema
    return [] if test(data) else [f"{where} {_short(data)}: must be {what}"]


def _check_folder(data: dict[str, Any], folder: str) -> list[str]:
    found = []
    if data["id"] != folder:
        found.append(f"id {data['id']!r}: must be the folder's name, {folder!r}")
    names = [p["name"] for p in data["phases"]]
    if len(set(names)) != len(names):
        found.append(f"phases: names repeat ({', '.join(names)})")
    for n, p in enumerate(data["phases"]):
        if parse_time(p["end"]) <= parse_time(p["start"]):
            found.append(f"phases[{n}].end {p['end']!r}: must be after its start {p['start']!r}")
    return found


def gather(results: Path, problems: list[str]) -> dict[str, Description]:
    """Challenge id -> its checked description; each problem found is added to ``problems``.

    A folder without a good ``description.json`` is left out; a README that is named but
    missing or unreadable is reported and the overview shows none.
    """
    folder = results / CHALLENGES
    if not folder.is_dir():
        return {}
    found: dict[str, Description] = {}
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        path = sub / DESCRIPTION
        rel = f"{CHALLENGES}/{sub.name}/{DESCRIPTION}"
        if not safe_challenge_id(sub.name):
            problems.append(f"{results / CHALLENGES / sub.name}: no challenge id; its description is not shown")
            continue
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            problems.append(f"{path}: missing; the runner writes it at the start of every pass; "
                            "the challenge has no description pages")
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: cannot be read: {type(exc).__name__}: {exc}; "
                            "the challenge has no description pages")
            continue
        bad = check(data) or _check_folder(data, sub.name)
        if bad:
            problems.extend(f"{path}: {p}; the challenge has no description pages" for p in bad)
            continue
        html, text = None, b""
        if data["readme"] is not None:
            try:
                text = (sub / README).read_bytes()
                html = readme.render(text.decode("utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(f"{sub / README}: cannot be read: {type(exc).__name__}: {exc}; "
                                "the overview shows no README")
        digest = hashlib.sha256(raw + b"\0" + text).hexdigest()
        found[sub.name] = Description(path=rel, data=data, readme_html=html, digest=digest)
    return found


def attach(found: tuple[Challenge, ...], described: Mapping[str, Description]) -> tuple[Challenge, ...]:
    """``found`` with each description set; a described challenge without records is added (by id)."""
    result = [replace(c, description=described.get(c.id)) for c in found]
    have = {c.id for c in found}
    for cid, d in described.items():
        if cid not in have:
            m = d.data["metrics"]
            result.append(Challenge(
                id=cid, title=d.data["title"], type=d.data["type"], primary=m["primary"],
                direction=m["direction"], columns=tuple(c["name"] for c in m["columns"]), evaluations=(),
                phases=(), bad=(), teams=0, description=d))
    return tuple(sorted(result, key=lambda c: c.id))


# -- what the pages show -------------------------------------------------------------------------

def fmt_bytes(value: Any) -> str:
    """A size in bytes as shown: B, KiB, MiB, GiB or TiB."""
    if not is_number(value):
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fmt_duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _day(value: str) -> str:
    return parse_time(value).astimezone(dt.UTC).strftime("%Y-%m-%d")


def current_phase(challenge: Challenge) -> dict[str, Any] | None:
    """The phase to show on the index: the one in force at the latest time the ledger knows.

    That time is the later of the description's ``as_of`` and the last first-seen time
    of a record (the site has no clock). Without a described phase: the latest phase
    with records, with the times of its first and last submission.
    """
    seen = [first_seen(ev) for ev in challenge.evaluations]
    d = challenge.description
    if d is not None and d.data["phases"]:
        ref = max([d.as_of, *seen])
        phases = sorted(d.data["phases"], key=lambda p: parse_time(p["start"]))
        ended = {p.name for p in challenge.phases if p.final is not None}
        chosen, state = phases[-1], "ended"
        for p in phases:
            if parse_time(p["start"]) <= ref < parse_time(p["end"]) and p["name"] not in ended:
                chosen, state = p, "open"
                break
            if parse_time(p["start"]) > ref:
                chosen, state = p, "upcoming"
                break
        return {"name": chosen["name"], "start": chosen["start"], "end": chosen["end"], "state": state,
                "from": _day(chosen["start"]), "to": _day(chosen["end"]),
                "as_of": ref.strftime("%Y-%m-%dT%H:%M:%SZ"), "described": True,
                "final": chosen["name"] in ended}
    phases = [p for p in challenge.phases if not p.outside]  # late heads name no phase of their own
    if not phases:
        return None
    last = phases[-1]
    start, end = last.evaluations[0].submission["first_seen"], last.evaluations[-1].submission["first_seen"]
    return {"name": last.name, "start": start, "end": end, "state": "ended" if last.final else "records",
            "from": _day(start), "to": _day(end), "as_of": end, "described": False,
            "final": last.final is not None}


def _common(challenge: Challenge, page: str) -> dict[str, Any]:
    d = challenge.description
    assert d is not None  # only described challenges get these pages
    return {"title": f"{d.data['title']}: {PAGES[page][2]}" if page != "overview" else d.data["title"],
            "challenge": challenge, "d": d.data, "here": page, "source": d.path}


def overview_context(challenge: Challenge) -> dict[str, Any]:
    d = challenge.description
    assert d is not None
    m = d.data["metrics"]
    return {**_common(challenge, "overview"), "readme": d.readme_html, "phase": current_phase(challenge),
            "better": "higher" if m["direction"] == "max" else "lower",
            "readme_path": f"{CHALLENGES}/{d.id}/{README}" if d.data["readme"] else None}


def _size(entry: Mapping[str, Any]) -> str:
    text = fmt_bytes(entry["bytes"])
    if entry["unsized"]:
        text += f" (+ {entry['unsized']} file{'s' if entry['unsized'] != 1 else ''} of unknown size)"
    return text


def data_context(challenge: Challenge) -> dict[str, Any]:
    d = challenge.description
    assert d is not None
    rows = [{**e, "size": _size(e)} for e in d.data["data"]["public"]]
    hidden = [{**e, "size": _size(e)} for e in d.data["data"]["hidden"]]
    return {**_common(challenge, "data"), "public": rows, "hidden": hidden,
            "clone": "\n".join(d.data["challenge"]["clone"])}


def evaluation_context(challenge: Challenge) -> dict[str, Any]:
    d = challenge.description
    assert d is not None
    m = d.data["metrics"]
    r = d.data["resources"]
    better = "higher is better" if m["direction"] == "max" else "lower is better"
    limits = [
        ("Wall time per step", fmt_duration(r["time_s"])),
        ("Memory per step", fmt_bytes(r["memory_bytes"])),
        ("CPU cores", str(r["cpus"])),
        ("GPUs", str(r["gpus"])),
        ("Largest file a step may write", fmt_bytes(r["output_bytes"])),
        ("Processes", str(r["processes"])),
        ("Network", "on" if r["network"] else "off"),
    ]
    # the definitions as the runner wrote them for this version of the challenge; the direction of
    # each from the scorer registry (the challenge's own for its primary metric)
    columns = [metrics.Column(c["name"], c["definition"],
                              m["direction"] if c["name"] == m["primary"]
                              else metrics.column(c["name"], m["scorer"] or None).better)
               for c in m["columns"]]
    return {**_common(challenge, "evaluation"), "metrics": m, "columns": columns, "better": better,
            "tie_rule": TIE_RULE.format(primary=m["primary"], better=better),
            "public_percent": f"{d.data['leaderboard']['public_fraction'] * 100:g}", "limits": limits}


def rules_context(challenge: Challenge) -> dict[str, Any]:
    d = challenge.description
    assert d is not None
    s = d.data["submission"]
    return {**_common(challenge, "rules"), "submission": s, "max_file": fmt_bytes(s["max_file_bytes"]),
            "phases": d.data["phases"], "merge_deadline": d.data["teams"]["merge_deadline"],
            "final_selection": d.data["final_selection"]}


def timeline_context(challenge: Challenge) -> dict[str, Any]:
    """Phases with their dates and submissions, and every dated event in time order."""
    d = challenge.description
    assert d is not None
    recorded = {p.name: p for p in challenge.phases if not p.outside}  # late heads are no phase
    described = {p["name"]: p for p in d.data["phases"]}
    rows = []
    # (time, order at one time: a phase closes before the next opens, ISO time, what)
    events: list[tuple[dt.datetime, int, str, str]] = []
    for name in [*described, *(n for n in recorded if n not in described)]:
        p, r = described.get(name), recorded.get(name)
        evs = r.evaluations if r is not None else ()
        row = {"name": name, "described": p is not None, "split": p["split"] if p else "",
               "start": p["start"] if p else None, "end": p["end"] if p else None,
               "extended_from": p["extended_from"] if p else None, "submissions": len(evs),
               "first": evs[0].submission["first_seen"] if evs else None,
               "last": evs[-1].submission["first_seen"] if evs else None,
               "final": r is not None and r.final is not None}
        rows.append(row)
        if p is not None:
            events.append((parse_time(p["start"]), 1, p["start"], f"Phase {name} opens (hidden split {p['split']})"))
            closes = f"Phase {name} closes" + (" (extended by the organizers)" if p["extended_from"] else "")
            events.append((parse_time(p["end"]), 0, p["end"], closes))
        if evs:
            events.append((first_seen(evs[0]), 2, row["first"], f"First submission of phase {name}"))
            events.append((first_seen(evs[-1]), 3, row["last"], f"Last submission of phase {name}"))
    deadline = d.data["teams"]["merge_deadline"]
    if deadline:
        events.append((parse_time(deadline), 2, deadline, "Teams may no longer merge"))
    return {**_common(challenge, "timeline"), "rows": rows, "merge_deadline": deadline,
            "events": [{"when": iso, "what": what} for _, _, iso, what in sorted(events)]}


_CONTEXTS = {"overview": overview_context, "data": data_context, "evaluation": evaluation_context,
             "rules": rules_context, "timeline": timeline_context}


def _timeline_key(challenge: Challenge) -> tuple[Any, ...]:
    """What the timeline and overview show of the records: per phase, counts and first/last times."""
    return tuple((p.name, len(p.evaluations), p.evaluations[0].submission["first_seen"],
                  p.evaluations[-1].submission["first_seen"], p.final is not None) for p in challenge.phases)


def render_pages(found: tuple[Challenge, ...], render: Callable[..., None],
                 fallback: Callable[[str], tuple[str, Mapping[str, Any]]]) -> None:
    """Render the description pages of every described challenge with the build's ``render``."""
    for challenge in found:
        d = challenge.description
        if d is None:
            continue
        records = _timeline_key(challenge)
        seen = max((ev.submission["first_seen"] for ev in challenge.evaluations), default=None)
        for page, (name, template, _) in PAGES.items():
            key: tuple[Any, ...] = (d.digest, challenge.title)
            if page in ("overview", "timeline"):
                key += (records, seen)
            render(f"{challenge.id}/{name}", template, partial(_CONTEXTS[page], challenge), fallback, key=key)

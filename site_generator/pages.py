"""One context per page, built from checked records, and the filters the templates use.

Templates only read keys these functions set, so ``StrictUndefined`` catches a
template slip instead of hiding it. The private part of a score is put into a
context only for a phase whose final standings file exists (the phase has
ended): its final leaderboard and the private metrics of its evaluations.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from jc_datalad.records import Evaluation, Status
from site_generator import metrics
from site_generator.description import current_phase
from site_generator.gather import (
    BadRecord,
    is_number,
    parse_time,
    published_reproduce,
    safe_eval_id,
)
from site_generator.leaderboard import OUTSIDE, Challenge, FinalRow, Phase, late_for
from site_generator.public import command_shown

MISSING = "—"

#: Power drawn per busy CPU core for the energy estimate of an evaluation: a
#: server CPU of about 200 W over 20 cores; memory, disk and idle power are left out.
WATTS_PER_CORE = 10.0


def fmt_number(value: Any) -> str:
    """A score as shown: four decimals, or four significant digits when very small or large."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.4g}"


def fmt_count(value: Any) -> str:
    """A count as shown: a whole number without decimals (scorers report counts as floats)."""
    if is_number(value) and float(value).is_integer():
        return str(int(value))
    return fmt_number(value)


def fmt_mib(value: Any) -> str:
    return f"{value / 2**20:.1f}" if is_number(value) else MISSING


def fmt_seconds(value: Any) -> str:
    return f"{value:.2f}" if is_number(value) else MISSING


_UTC_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def fmt_time(value: Any) -> str:
    """An ISO time from the ledger in UTC to the second; anything unparsable is shown as is."""
    if not value:
        return MISSING
    if isinstance(value, str) and _UTC_SECOND.fullmatch(value):  # the runner's own form: no parsing
        return f"{value[:10]} {value[11:19]} UTC"
    try:
        return parse_time(value).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return str(value)


def fmt_commit(value: Any) -> str:
    return str(value)[:12] if value else MISSING


#: Longest part of a participant's file name shown in a "not reproduced" note.
MAX_SHOWN_NAME = 80


def scored_as(ev: Evaluation) -> str:
    """How a ``results`` entry was scored: "scored as submitted", and with ``verify: rerun``
    whether the rerun reproduced the committed predictions; "" for the other types.

    The first differing file is named by the participant: control characters are replaced and
    it is cut to :data:`MAX_SHOWN_NAME` characters (the template escapes it)."""
    challenge = ev.challenge if isinstance(ev.challenge, dict) else {}
    if challenge.get("type") != "results":
        return ""
    note = "scored as submitted"
    check = getattr(ev, "verification", None)
    if not isinstance(check, dict) or check.get("mode") != "rerun" or not isinstance(check.get("reproduced"), bool):
        return note
    if check["reproduced"]:
        return f"{note}, reproduced"
    first = check.get("first_difference")
    if isinstance(first, str) and first:
        name = "".join(c if c.isprintable() else "\ufffd" for c in first[:MAX_SHOWN_NAME + 1])
        if len(name) > MAX_SHOWN_NAME:
            name = name[:MAX_SHOWN_NAME - 1] + "…"
        return f"{note}, not reproduced (first difference: {name})"
    return f"{note}, not reproduced (the rerun did not finish)"


FILTERS = {"num": fmt_number, "count": fmt_count, "mib": fmt_mib, "secs": fmt_seconds, "when": fmt_time,
           "short": fmt_commit, "scored_as": scored_as}


def team_page(team: str) -> str | None:
    """A team's page relative to its challenge folder; None for a name that is no safe file name."""
    return f"teams/{team}.html" if safe_eval_id(team) else None


def evaluation_page(ev: Evaluation) -> str:
    """The path of an evaluation page relative to its challenge folder."""
    return f"evaluations/{ev.id}.html"


def rank_change(row: FinalRow) -> dict[str, str]:
    """How the rank moved since the public leaderboard: a symbol to see and words to read aloud."""
    change = row.change
    if change is None:
        return {"symbol": MISSING, "words": "no public rank", "kind": "none"}
    if change == 0:
        return {"symbol": "=", "words": "unchanged", "kind": "same"}
    places = f"{abs(change)} place{'' if abs(change) == 1 else 's'}"
    if change > 0:
        return {"symbol": f"▲{change}", "words": f"up {places}", "kind": "up"}
    return {"symbol": f"▼{-change}", "words": f"down {places}", "kind": "down"}


def _final_rows(rows: tuple[FinalRow, ...]) -> list[dict[str, Any]]:
    return [{
        "rank": r.rank,
        "team": r.team,
        "page": evaluation_page(r.evaluation) if r.evaluation is not None else "",
        "score": r.score,
        "previous_rank": r.previous_rank,
        "change": rank_change(r),
        "selected": [{"id": eid, "page": evaluation_page(ev) if ev is not None else ""}
                     for eid, ev in r.selected],
    } for r in rows]


def index_context(challenges: tuple[Challenge, ...], bad: tuple[BadRecord, ...],
                  error_pages: Mapping[str, BadRecord]) -> dict[str, Any]:
    rows = []
    for c in challenges:
        # an ended phase (its final standings written) names its winner on the private part,
        # a running one its best public score so far
        best = [{"phase": p.name, "score": p.final.rows[0].score, "team": p.final.rows[0].team, "final": True}
                if p.final is not None and p.final.rows else
                {"phase": p.name, "score": p.rows[0].score, "team": p.rows[0].team, "final": False}
                for p in c.phases if p.rows or (p.final is not None and p.final.rows)]
        # the phase in force and a link to the overview, for a challenge with a description
        rows.append({"challenge": c, "best": best, "phase": current_phase(c),
                     "overview": f"{c.id}/index.html" if c.description is not None else None})
    shown = {id(b) for b in error_pages.values()}
    return {
        "title": "Challenges",
        "rows": rows,
        "unreadable": [b for b in bad if id(b) not in shown],
    }


def challenge_scorer(challenge: Challenge) -> str | None:
    """The challenge's scorer: from its description, else as its latest scored record names it."""
    if challenge.description is not None:
        return str(challenge.description.data["metrics"]["scorer"]) or None
    for ev in reversed(challenge.evaluations):
        if (name := scorer_name(ev)) is not None:
            return name
    return None


def metric_column(challenge: Challenge, name: str) -> metrics.Column:
    """A metric column of ``challenge``: its definition (the description's, else the scorer
    registry's) and which way is better (the challenge's direction for its primary metric)."""
    defs: dict[str, str | None] = {}
    if challenge.description is not None:
        defs = {c["name"]: c["definition"] for c in challenge.description.data["metrics"]["columns"]}
    return metrics.column(name, challenge_scorer(challenge), defs,
                          challenge.direction if name == challenge.primary else None)


def leaderboard_columns(challenge: Challenge) -> dict[str, list[metrics.Column]]:
    """What each column of the public and the final leaderboard means."""
    primary = metric_column(challenge, challenge.primary)
    rank = metrics.plain("Rank", f"Place by the team's best public {challenge.primary}; "
                         "ties by the earlier first-seen time of the submission, then team name.")
    tier = ("Rank tier from the phase's ranking statistics: walking down this table, a team joins the "
            "tier of the team above unless that tier's first team is significantly better than it "
            "(Holm-adjusted one-sided Wilcoxon signed-rank tests on per-item {part} {primary}); then it "
            "starts the next tier. — : no statistics (too few scored items).")
    return {
        "public": [rank, metrics.plain("Team", "The team, linked to its page."),
                   metrics.plain("Tier", tier.format(part="public", primary=challenge.primary)),
                   *(metric_column(challenge, c) for c in challenge.columns),
                   metrics.plain("Submissions", "The team's submissions in the phase, every status counted."),
                   metrics.plain("Last submission", "First-seen time (UTC) of the team's latest submission.")],
        "final": [metrics.plain("Rank", "Place by the private score of the team's selected submissions."),
                  metrics.plain("Team", "The team, linked to its page."),
                  metrics.Column(f"{challenge.primary} (private)", primary.definition, primary.better),
                  metrics.plain("Tier", tier.format(part="private", primary=challenge.primary)),
                  metrics.plain("Public rank", "The team's rank on the public leaderboard of the phase."),
                  metrics.plain("Change", "Places gained (▲) or lost (▼) since the public leaderboard."),
                  metrics.plain("Selected evaluations", "The submissions the final ranking considered.")],
    }


def leaderboard_context(challenge: Challenge, error_pages: Mapping[str, BadRecord],
                        exports: Mapping[str, str],
                        submission_lists: Mapping[str, list[str]],
                        tiers: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
                        ranking_pages: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``exports``: ``public:<phase>`` or ``final:<phase>`` -> the stem of its JSON and CSV files;
    ``submission_lists``: phase -> the pages listing its submissions; ``tiers``: phase -> part
    (``public``, ``private``) -> team -> rank tier; ``ranking_pages``: phase -> its ranking
    statistics page."""
    prefix = f"{challenge.id}/"
    bad = [{"record": b, "page": path.removeprefix(prefix)}
           for path, b in sorted(error_pages.items()) if path.startswith(prefix)]
    finals = {p.name: {"rule": p.final.rule, "path": p.final.path, "rows": _final_rows(p.final.rows)}
              for p in challenge.phases if p.final is not None}
    return {
        "title": f"{challenge.title}: leaderboard",
        "challenge": challenge,
        "bad": bad,
        "page_of": evaluation_page,
        "team_page": team_page,
        "finals": finals,
        "exports": exports,
        "submission_lists": submission_lists,
        "column_info": leaderboard_columns(challenge),
        "late_phases": partial(late_phases, challenge),
        "tiers": tiers or {},
        "ranking_pages": ranking_pages or {},
    }


def late_phases(challenge: Challenge, phase: Phase) -> list[str]:
    """The phases the late heads of ``phase`` (the records outside every phase) came after."""
    return sorted({name for ev in phase.evaluations if (name := late_for(ev, challenge)) is not None})


def _public_columns(challenge: Challenge, ev: Evaluation) -> list[str]:
    extra = sorted(set(ev.public) - set(challenge.columns))
    return list(challenge.columns) + extra


def evaluation_context(ev: Evaluation, challenge: Challenge, record: str,
                       logs: Mapping[str, str], levels: Any = None) -> dict[str, Any]:
    """``logs``: what the ledger publishes of the steps' logs (see :func:`published_logs`);
    ``levels``: what readers can reproduce (:class:`site_generator.reproduce_levels.Levels`)."""
    from site_generator import reproduce_levels

    evaluated = ev.status is Status.EVALUATED
    scorer = scorer_name(ev)
    public = metrics.layout(_public_columns(challenge, ev), scorer, primary=challenge.primary,
                            direction=challenge.direction)
    # per item: the challenge's columns and the other scores without a threshold (not 100 columns)
    columns = list(dict.fromkeys([*challenge.columns, *(c.name for c in public.scores)]))
    items = [
        {"name": item["name"], "values": [item.get("metrics", {}).get(c) for c in columns],
         "error": item.get("error") or ""}
        for item in sorted((i for i in ev.items if i.get("part") == "public"), key=lambda i: i["name"])
    ] if evaluated else []
    final = challenge.final(ev.phase)
    revealed = evaluated and final is not None
    private_columns = list(challenge.columns) + sorted(set(ev.private) - set(challenge.columns))
    return {
        "title": f"{ev.team} — {ev.phase} — {challenge.title}",
        "ev": ev,
        "challenge": challenge,
        "status": ev.status.value,
        "reason": ev.reason or "",
        "evaluated": evaluated,
        "public_metrics": metrics.values(public, ev.public) if evaluated else None,
        "phase_ended": final is not None,
        # only once the phase has ended; a value that is no number is reported and shown as missing
        "private_metrics": metrics.values(
            metrics.layout(private_columns, scorer, primary=challenge.primary, direction=challenge.direction),
            {k: _shown(v) for k, v in ev.private.items()}) if revealed else None,
        "columns": columns,
        "items": items,
        "steps": _steps(ev),
        "logs": published_logs(ev, logs),
        "energy": energy(ev),
        "watts_per_core": WATTS_PER_CORE,
        "provenance": _provenance(ev, record),
        "stages": sorted(ev.stages.items()),
        "reproduce": published_reproduce(ev),  # a rerun of unchecked records is never shown
        # each level's command, only where it works for its reader (docs/reproduce.md)
        "levels": reproduce_levels.commands(ev, levels or reproduce_levels.Levels(), published_reproduce(ev)),
        # first seen while no phase was open: shown as late (for the phase it came after), not as a phase
        "late": {"after": late_for(ev, challenge)} if ev.phase == OUTSIDE else None,
        "record": record,
    }


def scorer_name(ev: Evaluation) -> str | None:
    """The scorer that reported ``ev``'s metrics, as its record names it; None without one."""
    name = ev.scorer.get("name") if isinstance(ev.scorer, dict) else None
    return name if isinstance(name, str) else None


def energy(ev: Evaluation) -> dict[str, float] | None:
    """CPU seconds of the re-executed steps times :data:`WATTS_PER_CORE`; None without CPU times."""
    known = [float(s["cpu_s"]) for s in ev.steps if is_number(s.get("cpu_s"))]
    # steps past the runner's cap keep no figures of their own; their total is on the last step
    known += [float(s["left_out"]["cpu_s"]) for s in ev.steps
              if isinstance(s.get("left_out"), dict) and is_number(s["left_out"].get("cpu_s"))]
    if not known:
        return None
    seconds = sum(known)
    joules = seconds * WATTS_PER_CORE
    return {"cpu_s": seconds, "joules": joules, "wh": joules / 3600.0}


def _shown(value: Any) -> Any:
    return value if is_number(value) else None


#: How many characters of a public ``logs.txt`` a page shows (the runner caps it at 256 KiB).
PUBLIC_LOG_CHARS = 512 * 2**10
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def published_logs(ev: Evaluation, logs: Mapping[str, str]) -> dict[str, Any]:
    """What the page says about the logs of the steps, which ran on hidden data.

    Never the steps' output, except where the challenge publishes it (``logs: public``,
    for phases on public inputs) and the runner wrote it, capped, as ``logs.txt``; with
    ``team-encrypted`` a link to ``logs.age`` and the command that decrypts it. Older
    records' ``stdout_tail``/``stderr_tail`` are never shown: they may hold hidden data.
    ``logs``: ``age`` -> the encrypted file's name beside the page, ``text`` -> the path of
    the ledger's ``logs.txt`` (read here, in the worker that renders the page).
    """
    visibility = ev.challenge.get("logs") if isinstance(ev.challenge, dict) else None
    if visibility not in ("organizers", "team-encrypted", "public"):
        visibility = "organizers"  # records from before the setting: their logs were never shown
    text = ""
    if visibility == "public" and logs.get("text"):
        with open(logs["text"], encoding="utf-8", errors="replace") as fh:
            text = _CONTROL.sub("\ufffd", fh.read(PUBLIC_LOG_CHARS))
    return {
        "ran": bool(ev.steps),
        "visibility": visibility,
        "age": logs.get("age", "") if visibility == "team-encrypted" else "",
        "text": text,
    }


def _steps(ev: Evaluation) -> list[dict[str, Any]]:
    """Each recorded step beside what its re-execution did (a refused submission ran none)."""
    recorded = ev.submission.get("steps", [])
    executed = {int(s.get("number", n)): s for n, s in enumerate(ev.steps, 1)}
    steps = []
    for n in range(1, max([len(recorded), *executed.keys(), 0]) + 1):
        rec = recorded[n - 1] if n <= len(recorded) else {}
        run = executed.get(n)
        steps.append({
            "number": n,
            "commit": rec.get("commit") or "",
            "recorded_cmd": command_shown(rec.get("recorded_cmd") or ""),
            "command": (run or {}).get("command") or rec.get("command") or "",
            "inputs": list(rec.get("inputs") or []),
            "outputs": list(rec.get("outputs") or []),
            "ran": run is not None,
            "status": (run or {}).get("status") or "not run",
            "exit_code": (run or {}).get("exit_code"),
            "wall_s": (run or {}).get("wall_s"),
            "cpu_s": (run or {}).get("cpu_s"),
            "peak_rss_bytes": (run or {}).get("peak_rss_bytes"),
            # type training: which step this is and the limits it ran under (organizer-made figures)
            "kind": _STEP_KINDS.get(str((run or {}).get("kind")), ""),
            "limits": _limits_text((run or {}).get("resources")),
        })
    return steps


#: Step kinds a training evaluation records, as the page names them.
_STEP_KINDS = {"training": "training", "prediction": "prediction"}


def _limits_text(resources: Any) -> str:
    """``20 min, 8 GiB, 2 CPUs, 0 GPUs``: the limits a step ran under; empty when not recorded."""
    if not isinstance(resources, dict):
        return ""
    parts: list[str] = []
    time_s, memory, cpus, gpus = (resources.get(k) for k in ("time_s", "memory_bytes", "cpus", "gpus"))
    time_s, memory, cpus, gpus = (v if is_number(v) else None for v in (time_s, memory, cpus, gpus))
    if time_s is not None:
        parts.append(f"{float(time_s) / 60:g} min" if float(time_s) >= 60 else f"{float(time_s):g} s")
    if memory is not None:
        parts.append(f"{float(memory) / 2**30:g} GiB memory")
    if cpus is not None:
        parts.append(f"{int(cpus)} CPU{'s' if int(cpus) != 1 else ''}")
    if gpus is not None:
        parts.append(f"{int(gpus)} GPU{'s' if int(gpus) != 1 else ''}")
    return ", ".join(parts)


def _get(mapping: Any, *keys: str) -> str:
    for key in keys:
        if not isinstance(mapping, dict):
            return ""
        mapping = mapping.get(key)
    if mapping is None:
        return ""
    if isinstance(mapping, list):
        return ", ".join(str(v) for v in mapping)
    return str(mapping)


def _provenance(ev: Evaluation, record: str) -> list[dict[str, Any]]:
    """(term, value, code?) for the definition list; an empty value shows as not recorded."""
    rows = [
        ("Submission repository", _get(ev.submission, "repository"), True),
        ("Submission commit", _get(ev.submission, "commit"), True),
        ("Branches", _get(ev.submission, "branches"), True),
        ("First seen", fmt_time(_get(ev.submission, "first_seen")), False),
        ("Challenge", _get(ev.challenge, "id"), True),
        ("Challenge commit", _get(ev.challenge, "commit"), True),
        ("Phase and split", _phase_and_split(ev), False),
        ("Hidden inputs dataset", _get(ev.hidden, "inputs", "dataset_id"), True),
        ("Hidden inputs commit", _get(ev.hidden, "inputs", "commit"), True),
        ("Hidden labels dataset", _get(ev.hidden, "labels", "dataset_id"), True),
        ("Hidden labels commit", _get(ev.hidden, "labels", "commit"), True),
        ("Image", _get(ev.image, "name"), True),
        ("Image annex key", _get(ev.image, "key"), True),
        ("Scorer", " ".join(v for v in (_get(ev.scorer, "name"), _get(ev.scorer, "version")) if v), True),
        ("Runner version", _get(ev.runner, "version"), True),
        ("Runner backend", _get(ev.runner, "backend"), False),
        ("Sandbox", _get(ev.runner, "sandbox"), False),
        ("Started", fmt_time(ev.started), False),
        ("Finished", fmt_time(ev.finished), False),
        ("Ledger record", record, True),
    ]
    return [{"term": t, "value": v if v and v != MISSING else "", "code": c} for t, v, c in rows]


def _phase_and_split(ev: Evaluation) -> str:
    if ev.phase == OUTSIDE:
        return "none: first seen while no phase was open, so it ran on no hidden split"
    return f"{ev.phase} / {ev.split or MISSING}"


def record_error_context(bad: BadRecord) -> dict[str, Any]:
    return {
        "title": f"Unreadable record {bad.eval_id or bad.path}",
        "bad": bad,
    }

"""Team pages, the statistics page and the exported tables of each page (pure, no I/O).

Only public scores appear here: the private part of a score reaches the site
only through a phase's final leaderboard (see :mod:`site_generator.pages`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from jc_datalad.records import Evaluation
from site_generator import metrics, plots
from site_generator.gather import parse_time, safe_eval_id
from site_generator.leaderboard import Challenge, Phase, first_seen, primary_score
from site_generator.pages import evaluation_page, metric_column, team_page
from site_generator.tables import Table, table

HISTOGRAM_BINS = 10


def phase_file(phase: Phase) -> str | None:
    """The stem of a phase's leaderboard exports; None for a phase name that is no safe file name."""
    return f"leaderboard-{phase.name}" if safe_eval_id(phase.name) else None


def leaderboard_tables(challenge: Challenge,
                       tiers: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None) -> dict[str, Table]:
    """``public:<phase>`` and ``final:<phase>`` -> the exported leaderboard table.

    The files are ``leaderboard-<phase>`` and ``final-leaderboard-<phase>``: no two
    phase names give one file name (``leaderboard-dev-final`` is phase ``dev-final``).
    ``tiers``: phase -> part (``public``, ``private``) -> team -> its rank tier
    (:mod:`site_generator.ranking_pages`); a team without one has an empty ``tier``.
    """
    tables: dict[str, Table] = {}
    for p in challenge.phases:
        stem = phase_file(p)
        if stem is None:
            continue
        tier = (tiers or {}).get(p.name, {})
        public, private = tier.get("public", {}), tier.get("private", {})
        tables[f"public:{p.name}"] = table(
            stem, f"Leaderboard of phase {p.name} (public part)",
            ["rank", "team", "tier", *challenge.columns, "submissions", "last_submission", "evaluation_id"],
            [[r.rank, r.team, public.get(r.team), *(r.best.public.get(c) for c in challenge.columns),
              r.submissions, r.last_submission, r.best.id] for r in p.rows])
        if p.final is not None:
            tables[f"final:{p.name}"] = table(
                f"final-{stem}", f"Final leaderboard of phase {p.name} (private part)",
                ["rank", "team", f"{challenge.primary}_private", "tier", "public_rank", "evaluation_id",
                 "selected"],
                [[r.rank, r.team, r.score, private.get(r.team), r.previous_rank, r.evaluation_id,
                  " ".join(s for s, _ in r.selected)] for r in p.final.rows])
    return tables


#: Rows on one page of a phase's submission list: a new submission re-renders only the last page.
SUBMISSIONS_PER_PAGE = 500


def submission_pages(phase: Phase) -> list[tuple[Evaluation, ...]]:
    """A phase's evaluations, by first_seen, cut into pages; [] for a name that is no file name."""
    if phase_file(phase) is None:
        return []
    evs = phase.evaluations
    return [evs[n:n + SUBMISSIONS_PER_PAGE] for n in range(0, len(evs), SUBMISSIONS_PER_PAGE)]


def submissions_page(phase: Phase, number: int) -> str:
    """Page ``number`` (from 1) of a phase's submission list, relative to its challenge folder."""
    return f"submissions/{phase.name}-{number}.html"


def submissions_table(challenge: Challenge, phase: Phase, number: int, evs: tuple[Evaluation, ...]) -> Table:
    return table(
        f"{phase.name}-{number}", f"Submissions of phase {phase.name}, oldest first (page {number})",
        ["first_seen", "team", "commit", "status", "reason", f"{challenge.primary}_public", "evaluation_id"],
        [[ev.submission["first_seen"], ev.team, ev.submission.get("commit"), ev.status.value, ev.reason,
          primary_score(ev, challenge.primary), ev.id] for ev in evs])


def submissions_context(challenge: Challenge, phase: Phase, number: int, pages: int,
                        evs: tuple[Evaluation, ...], export: str) -> dict[str, Any]:
    first = (number - 1) * SUBMISSIONS_PER_PAGE
    return {
        "title": f"{challenge.title}: {'late submissions' if phase.outside else f'submissions of phase {phase.name}'} "
                 f"({number} of {pages})",
        "challenge": challenge,
        "phase": phase,
        "number": number,
        "pages": [{"number": n, "href": f"{phase.name}-{n}.html"} for n in range(1, pages + 1)],
        "first": first + 1,
        "last": first + len(evs),
        "total": len(phase.evaluations),
        "rows": [_submission_row(challenge, ev) for ev in evs],
        "export": export,
    }


def _submission_row(challenge: Challenge, ev: Evaluation) -> dict[str, Any]:
    score = primary_score(ev, challenge.primary)
    team = team_page(ev.team)
    return {
        "ev": ev,
        "page": f"../{evaluation_page(ev)}",
        "team_page": f"../{team}" if team else None,
        "status": ev.status.value,
        "reason": ev.reason or ("" if score is not None else f"no public {challenge.primary} score"),
        "score": score,
    }


def by_team(challenge: Challenge) -> dict[str, list[Evaluation]]:
    """Team -> its evaluations, by first_seen."""
    teams: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in challenge.evaluations:
        teams[ev.team].append(ev)
    return teams


def team_tables(challenge: Challenge, team: str, evs: list[Evaluation]) -> dict[str, Table]:
    return {"team": team_table(challenge, team, evs)}


def team_context(challenge: Challenge, team: str, evs: list[Evaluation],
                 cache: plots.PlotCache | None = None) -> dict[str, Any]:
    """The page of ``team``: ``evs`` are its evaluations, by first_seen."""
    rows = [{
        "ev": ev,
        "page": f"../evaluations/{ev.id}.html",
        "status": ev.status.value,
        "reason": ev.reason or "",
        "score": primary_score(ev, challenge.primary),
    } for ev in evs]
    export = team_table(challenge, team, evs)
    title = f"Public {challenge.primary} of each evaluated submission of team {team} over time"
    args = team_plot(challenge, team, evs)
    plot = None if args is None else plots.points(*args, cache=cache)
    return {
        "title": f"{team} — {challenge.title}",
        "challenge": challenge,
        "team": team,
        "rows": rows,
        "plot": plot,
        "plot_title": title,
        "export": export.name,
    }


def team_plot(challenge: Challenge, team: str, evs: list[Evaluation]) -> plots.PointsArgs | None:
    """What the plot of a team page shows (salt, title, series, ylabel, span); None without a score.

    Every team's plot spans the times and scores of the whole challenge: teams compare at a glance.
    """
    span = challenge.scored_span
    series = []
    for p in challenge.phases:
        scored = [(first_seen(ev), s) for ev in evs if ev.phase == p.name
                  and (s := primary_score(ev, challenge.primary)) is not None]
        if scored:
            series.append((f"phase {p.name}", [t for t, _ in scored], [s for _, s in scored]))
    if not series or span is None:
        return None
    title = f"Public {challenge.primary} of each evaluated submission of team {team} over time"
    return f"team-{challenge.id}-{team}", title, series, f"{challenge.primary} (public)", span


def team_table(challenge: Challenge, team: str, evs: list[Evaluation]) -> Table:
    return table(
        team, f"Every submission of team {team}, oldest first",
        ["evaluation_id", "phase", "first_seen", "commit", "status", "reason",
         f"{challenge.primary}_public"],
        [[ev.id, ev.phase, ev.submission["first_seen"], ev.submission.get("commit"), ev.status.value,
          ev.reason, primary_score(ev, challenge.primary)] for ev in evs])


def _day(ev: Evaluation) -> dt.date:
    return first_seen(ev).astimezone(dt.UTC).date()


def statistics_tables(challenge: Challenge) -> dict[str, Table]:
    """The four statistics of a challenge, each as the table its plot is drawn from."""
    evs = challenge.evaluations
    on = [_day(ev) for ev in evs]  # by first_seen
    days: list[dt.date] = []
    if evs:
        start, end = on[0], on[-1]
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    per_day: dict[dt.date, int] = defaultdict(int)
    new_teams: dict[dt.date, int] = defaultdict(int)
    seen: set[str] = set()
    for ev, day in zip(evs, on, strict=True):
        per_day[day] += 1
        if ev.team not in seen:
            seen.add(ev.team)
            new_teams[day] += 1
    cumulative, teams_rows = 0, []
    for d in days:
        cumulative += new_teams[d]
        teams_rows.append([d.isoformat(), new_teams[d], cumulative])
    best_rows = []
    sign = 1.0 if challenge.direction == "max" else -1.0
    for p in challenge.phases:
        best: float | None = None
        for ev in p.evaluations:
            score = primary_score(ev, challenge.primary)
            if score is not None and (best is None or sign * score > sign * best):
                best = score
                best_rows.append([p.name, ev.submission["first_seen"], ev.team, ev.id, score])
    scores = [s for ev in evs if (s := primary_score(ev, challenge.primary)) is not None]
    hist_rows = []
    if scores:
        # one distinct score: bins around it on a rounded range (numpy would take ±0.5, bins of 1.1-1.2
        # for a score between 0 and 1)
        spread = plots.rounded_range(scores[0], scores[0]) if min(scores) == max(scores) else None
        counts, edges = np.histogram(np.array(scores, dtype=float), bins=HISTOGRAM_BINS, range=spread)
        hist_rows = [[float(edges[n]), float(edges[n + 1]), int(c)] for n, c in enumerate(counts)]
    primary = challenge.primary
    return {
        "per_day": table("statistics-submissions-per-day", "Submissions per day (UTC, by first seen)",
                         ["day", "submissions"], [[d.isoformat(), per_day[d]] for d in days]),
        "teams": table("statistics-teams-over-time", "Distinct teams over time (by first submission)",
                       ["day", "new_teams", "teams"], teams_rows),
        "best": table("statistics-best-over-time", f"Best public {primary} over time, per phase "
                      "(one row per improvement)",
                      ["phase", "first_seen", "team", "evaluation_id", f"{primary}_public"], best_rows),
        "distribution": table("statistics-score-distribution",
                              f"Distribution of public {primary} over every evaluated submission",
                              ["low", "high", "submissions"], hist_rows),
    }


#: What each column of a statistics table means (the primary score's comes from the scorer registry).
STATISTICS_COLUMNS = {
    "day": "A UTC day, from the first to the last day with a submission.",
    "submissions": "Submissions first seen in it, every status counted.",
    "new_teams": "Teams whose first submission was first seen that day.",
    "teams": "Teams with a submission so far.",
    "phase": "The phase the submission was made in.",
    "first_seen": "When the runner first saw the submission (UTC).",
    "team": "The team that made the submission.",
    "evaluation_id": "The evaluation, linked from the leaderboard and the team page.",
    "low": "Lower edge of the bin (included).",
    "high": "Upper edge of the bin (excluded, except for the last bin).",
}


def statistics_columns(challenge: Challenge, t: Table) -> list[metrics.Column]:
    """The columns of statistics table ``t``, each with its definition (and direction, for a score)."""
    score = metric_column(challenge, challenge.primary)
    out = []
    for name in t.columns:
        if name == f"{challenge.primary}_public":
            out.append(metrics.Column(name, f"Public {challenge.primary}: {score.definition or 'no definition in the scorer library.'}",
                                      score.better))
        elif name == "submissions" and t.name == "statistics-score-distribution":
            out.append(metrics.plain(name, f"Evaluated submissions whose public {challenge.primary} falls in the bin."))
        else:
            out.append(metrics.plain(name, STATISTICS_COLUMNS.get(name, "")))
    return out


def statistics_context(challenge: Challenge, tables: Mapping[str, Table],
                       cache: plots.PlotCache | None = None,
                       ranking_pages: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``ranking_pages``: phase -> its ranking statistics page (linked from this one)."""
    primary = challenge.primary
    per_day, teams, best, dist = (tables[k] for k in ("per_day", "teams", "best", "distribution"))
    figures = []

    def figure(key: str, title: str, svg: Any) -> None:
        figures.append({"key": key, "title": title, "svg": svg, "table": tables[key],
                        "columns": statistics_columns(challenge, tables[key])})

    if per_day.rows:
        title = "Submissions per day (UTC)"
        figure("per_day", title, plots.bars(f"{challenge.id}-per-day", title,
                                            [r[0] for r in per_day.rows], [r[1] for r in per_day.rows],
                                            ylabel="submissions", cache=cache))
        title = "Distinct teams over time"
        figure("teams", title, plots.steps(
            f"{challenge.id}-teams", title,
            [("teams", [dt.datetime.fromisoformat(r[0]).replace(tzinfo=dt.UTC) for r in teams.rows],
              [r[2] for r in teams.rows])], ylabel="teams", counts=True, cache=cache))
    if best.rows:
        title = f"Best public {primary} over time, per phase"
        series = []
        for p in challenge.phases:
            mine = [r for r in best.rows if r[0] == p.name]
            if mine:
                last = p.evaluations[-1].submission["first_seen"]
                xs = [*(r[1] for r in mine), last]
                ys = [*(r[4] for r in mine), mine[-1][4]]
                series.append((f"phase {p.name}", [parse_time(x) for x in xs], ys))
        figure("best", title, plots.steps(f"{challenge.id}-best", title, series,
                                          ylabel=f"best {primary} (public)", markers=True,
                                          cache=cache))
    if dist.rows:
        title = f"Distribution of public {primary}"
        figure("distribution", title, plots.bars(
            f"{challenge.id}-distribution", title, [f"{r[0]:.3g}–{r[1]:.3g}" for r in dist.rows],
            [r[2] for r in dist.rows], ylabel="submissions", cache=cache))
    return {
        "title": f"{challenge.title}: statistics",
        "challenge": challenge,
        "figures": figures,
        "ranking_pages": sorted((ranking_pages or {}).items()),
    }

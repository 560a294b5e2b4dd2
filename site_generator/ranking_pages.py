"""The ranking statistics page of each phase, its exported tables and the leaderboard's tiers (pure, no I/O).

The statistics come from :mod:`site_generator.ranking`, from the per-item scores
of the primary metric of the evaluation that ranks each team:

- the **public** part: the team's best public submission on the phase's public
  leaderboard, its items of the public part;
- the **private** part: only once the phase's final standings exist (the same
  rule as every private score on the site), the evaluation that ranks the team
  on the final leaderboard, its items of the private part. Before that not one
  private per-item score goes into a context or a table.

Item names never reach a page or an export: only per-team aggregates do.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from site_generator import metrics, plots, ranking
from site_generator.leaderboard import Challenge, Phase
from site_generator.pages import metric_column, team_page
from site_generator.stats import phase_file
from site_generator.tables import Table, table

#: The plots show the first teams of the leaderboard (the tables hold every team).
PLOT_TEAMS = 30
PARTS = ("public", "private")


def ranking_page(phase: Phase) -> str | None:
    """The ranking statistics page of ``phase``, relative to its challenge folder; None when the
    phase gets none (late submissions, a name that is no safe file name)."""
    if phase.outside or phase_file(phase) is None:
        return None
    return f"ranking-{phase.name}.html"


def phase_statistics(challenge: Challenge, phase: Phase, processes: int = 1) -> dict[str, ranking.Statistics]:
    """``public`` (and ``private`` once the phase's final standings exist) -> its statistics."""
    out: dict[str, ranking.Statistics] = {}
    public = [(r.team, r.best.items) for r in phase.rows]
    out["public"] = ranking.compute(ranking.matrix(public, challenge.primary, "public"), challenge.direction,
                                    "public", processes=processes)
    if phase.final is not None:  # the phase has ended: its private part may be shown
        private = [(r.team, r.evaluation.items) for r in phase.final.rows if r.evaluation is not None]
        out["private"] = ranking.compute(ranking.matrix(private, challenge.primary, "private"),
                                         challenge.direction, "private", processes=processes)
    return out


#: The tables of each part, each exported as ``ranking-<phase>-<part>-<kind>.json|.csv``.
KINDS = ("intervals", "frequencies", "significance", "pairs", "methods", "kendall")


def parts_of(phase: Phase) -> tuple[str, ...]:
    """The parts a phase's ranking page shows: the private one only once the phase has ended."""
    return PARTS if phase.final is not None else ("public",)


def export_files(phase: Phase) -> list[str]:
    """The exports of the ranking page of ``phase``, relative to its challenge folder."""
    return [f"ranking-{phase.name}-{part}-{kind}.{ext}" for part in parts_of(phase) for kind in KINDS
            for ext in ("json", "csv")]


def page_key(phase: Phase, digests: Mapping[str, str]) -> object:
    """Everything the ranking page of ``phase`` shows, for the build's page keys: the teams, their
    ranks and the records (by digest) their statistics come from, on both leaderboards."""
    public = tuple((r.team, r.rank, digests.get(r.best.id)) for r in phase.rows)
    final = None if phase.final is None else tuple(
        (r.team, r.rank, r.evaluation_id, None if r.evaluation is None else digests.get(r.evaluation.id))
        for r in phase.final.rows)
    return phase.name, public, final


def read_tiers(text: str) -> dict[str, int] | None:
    """Team -> tier from an intervals export this site wrote (a page kept from the last build);
    None when it is not such a table."""
    try:
        rows = json.loads(text)["rows"]
        return {row["team"]: row["tier"] for row in rows
                if isinstance(row["team"], str) and isinstance(row["tier"], int)
                and not isinstance(row["tier"], bool)}
    except (ValueError, KeyError, TypeError):
        return None


def official_ranks(phase: Phase, part: str) -> dict[str, int]:
    """Team -> its rank on the leaderboard the part's statistics follow."""
    if part == "private" and phase.final is not None:
        return {r.team: r.rank for r in phase.final.rows}
    return {r.team: r.rank for r in phase.rows}


def tiers(statistics: ranking.Statistics) -> dict[str, int]:
    """Team -> its rank tier (teams without statistics have none)."""
    return {t.team: t.tier for t in statistics.teams}


def ranking_tables(challenge: Challenge, phase: Phase, parts: Mapping[str, ranking.Statistics]) -> dict[str, Table]:
    """``<part>:<kind>`` -> the exported table (``ranking-<phase>-<part>-<kind>.json|.csv``)."""
    primary = challenge.primary
    out: dict[str, Table] = {}
    for part, s in parts.items():
        stem = f"ranking-{phase.name}-{part}"
        ranks = official_ranks(phase, part)
        shown = {t.team: t for t in s.teams}
        rows = []
        for team in sorted(ranks, key=lambda name: (ranks[name], name)):
            if team in shown:
                t = shown[team]
                rows.append([ranks[team], team, t.tier, t.scored, t.missing, t.mean, t.mean_low, t.mean_high,
                             t.rank_median, t.rank_low, t.rank_high])
            else:
                scored = dict(s.left_out).get(team, 0)
                rows.append([ranks[team], team, None, scored, s.items - scored, *[None] * 6])
        out[f"{part}:intervals"] = table(
            f"{stem}-intervals", f"Bootstrap 95% intervals of each team's mean {primary} and rank "
            f"({part} part of phase {phase.name})",
            ["rank", "team", "tier", "items_scored", "items_missing", f"{primary}_mean", f"{primary}_mean_low",
             f"{primary}_mean_high", "rank_median", "rank_low", "rank_high"], rows)
        out[f"{part}:frequencies"] = table(
            f"{stem}-frequencies", f"How often each team took each rank in {s.resamples} bootstrap resamples "
            f"({part} part of phase {phase.name})",
            ["position", "team", "bootstrap_rank", "resamples"],
            [[n, t.team, rank, count] for n, (t, row) in enumerate(zip(s.teams, s.rank_counts, strict=True), 1)
             for rank, count in enumerate(row, 1) if count])
        better = Counter(p.team for p in s.pairs if p.significant)
        worse = Counter(p.other for p in s.pairs if p.significant)
        out[f"{part}:significance"] = table(
            f"{stem}-significance", f"Teams each team is significantly better or worse than "
            f"({part} part of phase {phase.name}; Holm-adjusted one-sided Wilcoxon tests)",
            ["position", "team", "better_than", "worse_than"],
            [[n, t.team, better[t.team], worse[t.team]] for n, t in enumerate(s.teams, 1)])
        out[f"{part}:pairs"] = table(
            f"{stem}-pairs", f"One-sided Wilcoxon signed-rank test of each ordered pair of teams "
            f"({part} part of phase {phase.name})",
            ["team", "other", "statistic", "p_value", "p_holm", "significant"],
            [[p.team, p.other, p.statistic, p.p_value, p.p_holm, p.significant] for p in s.pairs])
        out[f"{part}:methods"] = table(
            f"{stem}-methods", f"Ranks by each ranking method ({part} part of phase {phase.name})",
            ["position", "team", *(m.replace("-", "_") for m in ranking.METHODS)],
            [[n, t.team, *(m.ranks[n - 1] for m in s.methods)] for n, t in enumerate(s.teams, 1)])
        out[f"{part}:kendall"] = table(
            f"{stem}-kendall", f"Kendall's tau of each ranking method against the leaderboard "
            f"({part} part of phase {phase.name})",
            ["method", "kendall_tau", "p_value"], [[m.name, m.tau, m.p_value] for m in s.methods])
    return out


#: What each column of a ranking table means (the primary score's columns are added per challenge).
RANKING_COLUMNS = {
    "rank": "The team's rank on the leaderboard these statistics follow.",
    "position": "The team's position among the teams with statistics, in leaderboard order.",
    "team": "The team.",
    "tier": ("Rank tier: walking down the leaderboard, a team joins the tier of the team above unless "
             "that tier's first team is significantly better than it (Holm-adjusted one-sided Wilcoxon "
             f"signed-rank test, alpha {ranking.ALPHA}); then it starts the next tier. Empty: too few items."),
    "items_scored": "Items of this part with a score of the team's evaluation.",
    "items_missing": "Items without a score (failed or not reported); each counts as the worst per-item "
                     "score of any ranked team.",
    "rank_median": "Median of the team's rank over the bootstrap resamples.",
    "rank_low": "2.5% point of its bootstrap ranks (the lower order statistic).",
    "rank_high": "97.5% point of its bootstrap ranks (the higher order statistic).",
    "bootstrap_rank": "A rank the team took in a resample.",
    "resamples": "Resamples in which it took that rank.",
    "better_than": "Teams it is significantly better than.",
    "worse_than": "Teams significantly better than it.",
    "other": "The team compared against.",
    "statistic": "Wilcoxon's T+: the sum of the ranks of the positive per-item differences (team minus "
                 "other, turned so that higher is better), zero differences left out.",
    "p_value": "One-sided p-value that the team is better than the other.",
    "p_holm": "The p-value adjusted by Holm's step-down method over every ordered pair.",
    "significant": f"Whether the adjusted p-value is below {ranking.ALPHA}.",
    "mean_then_rank": "Rank by the mean per-item score.",
    "median_then_rank": "Rank by the median per-item score.",
    "rank_then_mean": "Rank by the mean of the team's rank on each item (ties share the average rank).",
    "test_based": "Rank by the number of teams it is significantly better than.",
    "method": "A ranking method.",
    "kendall_tau": "Kendall's tau-b between the method's ranks and the leaderboard's (1: the same order).",
}


def ranking_columns(challenge: Challenge, t: Table) -> list[metrics.Column]:
    score = metric_column(challenge, challenge.primary)
    definition = score.definition or "no definition in the scorer library."
    out = []
    for name in t.columns:
        if name == f"{challenge.primary}_mean":
            out.append(metrics.Column(name, f"Mean per-item {challenge.primary} ({definition})", score.better))
        elif name == f"{challenge.primary}_mean_low":
            out.append(metrics.Column(name, "2.5% point of the bootstrap means (percentile interval).", score.better))
        elif name == f"{challenge.primary}_mean_high":
            out.append(metrics.Column(name, "97.5% point of the bootstrap means (percentile interval).", score.better))
        elif name == "p_value" and t.name.endswith("-kendall"):
            out.append(metrics.plain(name, "Two-sided p-value of Kendall's tau (scipy.stats.kendalltau)."))
        else:
            out.append(metrics.plain(name, RANKING_COLUMNS.get(name, "")))
    return out


def ranking_context(challenge: Challenge, phase: Phase, parts: Mapping[str, ranking.Statistics],
                    tables: Mapping[str, Table], cache: plots.PlotCache | None = None) -> dict[str, Any]:
    sections = []
    for part, s in parts.items():
        def shown(kind: str, part: str = part) -> dict[str, Any]:
            t = tables[f"{part}:{kind}"]
            return {"table": t, "columns": ranking_columns(challenge, t)}

        first = s.teams[:PLOT_TEAMS]
        blob = significance = None
        if first:
            title = f"Rank stability of the first {len(first)} teams ({part} part of phase {phase.name})"
            blob = {"title": title, "svg": plots.blob(
                f"{challenge.id}-{phase.name}-{part}-blob", title,
                list(s.rank_counts[:PLOT_TEAMS]),
                [t.rank_median for t in first], [t.rank_low for t in first], [t.rank_high for t in first],
                cache=cache)}
            better = {(p.team, p.other) for p in s.pairs if p.significant}
            title = f"Significance map of the first {len(first)} teams ({part} part of phase {phase.name})"
            significance = {"title": title, "svg": plots.significance(
                f"{challenge.id}-{phase.name}-{part}-significance", title,
                [[(a.team, b.team) in better for b in first] for a in first], cache=cache)}
        sections.append({
            "part": part,
            "stats": s,
            "min_items": ranking.min_items(s.items),
            "intervals": shown("intervals"),
            "frequencies": shown("frequencies"),
            "significance": shown("significance"),
            "pairs": tables[f"{part}:pairs"],
            "methods": shown("methods"),
            "kendall": shown("kendall"),
            "blob": blob,
            "map": significance,
            "plotted": len(first),
        })
    return {
        "title": f"{challenge.title}: ranking statistics of phase {phase.name}",
        "challenge": challenge,
        "phase": phase,
        "sections": sections,
        "team_page": team_page,
        "resamples": ranking.RESAMPLES,
        "seed": ranking.SEED,
        "alpha": ranking.ALPHA,
        "confidence": ranking.CONFIDENCE,
        "plot_teams": PLOT_TEAMS,
    }

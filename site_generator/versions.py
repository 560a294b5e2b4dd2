"""Versioned leaderboards: one leaderboard per (challenge commit, hidden-data version, scorer version).

Every score set of an evaluation (the pass's, in ``record.json``, and each rescore's,
``scores/<scorer>-<version>.json``: :mod:`jc_datalad.rescore`) belongs to the version of
its hidden data (the inputs and labels commits it was scored on) and its scorer version.
Evaluations with the same hidden data and scorer version form one leaderboard version of
a phase; its challenge commit is the one of its earliest score (the challenge as it was
when the version began), so its key never changes as later submissions join it.
``jc runner rescore`` (a new scorer version) and ``jc runner rerun`` (a new hidden-data
version) each start a new version. The current version of a phase is, among the versions on
the hidden data scored last, the one of the newest scorer version; the main leaderboard shows it, and every version keeps its page at
``<challenge>/leaderboards/<key>/<phase>.html``. Consecutive versions are compared at
``<challenge>/leaderboards/compare/<phase>/<old>--<new>.html`` (rank changes and Kendall's
tau, :func:`scipy.stats.kendalltau`). See docs/site.md, "Versioned leaderboards".
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jc_datalad import rescore
from jc_datalad.hiddenversion import version_key
from jc_datalad.ledger import EVALUATIONS, RECORD
from jc_datalad.records import Evaluation, Status
from site_generator.gather import MAX_RECORD_FILE_BYTES, safe_eval_id
from site_generator.leaderboard import Challenge, Phase, Row, rank

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
INDEX = "leaderboards/index.html"


@dataclass(frozen=True)
class Version:
    """One leaderboard version of a phase."""

    phase: str
    key: str
    challenge_commit: str
    inputs_commit: str
    labels_commit: str
    scorer: str
    scorer_version: str
    created: str  # the earliest score of the version
    latest: str  # the latest
    entries: tuple[Evaluation, ...]  # the evaluations under this version's scores
    rows: tuple[Row, ...]

    @property
    def page(self) -> str:
        """The page relative to the challenge folder: stable once the version exists."""
        return f"leaderboards/{self.key}/{self.phase}.html"

    @property
    def hidden(self) -> str:
        return version_key(self.inputs_commit, self.labels_commit)

    def ranks(self) -> dict[str, int]:
        return {row.team: row.rank for row in self.rows}


def _key(challenge_commit: str, hidden: str, scorer_key: str) -> str:
    return _SAFE.sub("_", f"c{challenge_commit[:10]}-h{hidden}-{scorer_key}")[:160]


def _commit(ev: Evaluation, part: str) -> str:
    value = ev.hidden.get(part) if isinstance(ev.hidden, dict) else None
    commit = value.get("commit") if isinstance(value, dict) else None
    return commit if isinstance(commit, str) else ""


def _original(results: Path, ev: Evaluation) -> Evaluation | None:
    """The record as the ledger holds it (the site's copy may be another's view)."""
    path = results / EVALUATIONS / ev.id / RECORD
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_RECORD_FILE_BYTES + 1)
        if len(data) > MAX_RECORD_FILE_BYTES:
            return None
        return Evaluation.from_dict(json.loads(data))
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def gather(results: Path, challenge: Challenge, problems: list[str]) -> dict[str, tuple[Version, ...]]:
    """Every leaderboard version of each phase of ``challenge``, oldest first."""
    groups: dict[tuple[str, str, str, str, str], list[tuple[Evaluation, rescore.ScoreSet]]] = defaultdict(list)
    for ev in challenge.evaluations:
        # ids and phases name files of the pages: one that is no safe file name gets no version pages
        if ev.status is not Status.EVALUATED or not safe_eval_id(ev.id) or not safe_eval_id(ev.phase):
            continue
        sets = [rescore.of_record(ev)]
        if os.path.isdir(results / EVALUATIONS / ev.id / rescore.SCORES):
            original = _original(results, ev) or ev
            sets = rescore.score_sets(results / EVALUATIONS / ev.id, original, problems)
        for s in sets:
            groups[(ev.phase, _commit(ev, "inputs"), _commit(ev, "labels"), s.scorer, s.version)].append((ev, s))
    found: dict[str, list[Version]] = defaultdict(list)
    for (phase, inputs, labels, scorer, version), members in groups.items():
        members.sort(key=lambda m: (m[1].scored, m[0].id))
        first = members[0][1]
        entries = tuple(rescore.apply(ev, s) for ev, s in members)
        found[phase].append(Version(
            phase=phase, key=_key(first.challenge_commit, version_key(inputs, labels), first.key),
            challenge_commit=first.challenge_commit, inputs_commit=inputs, labels_commit=labels, scorer=scorer,
            scorer_version=version, created=first.scored, latest=max(s.scored for _, s in members),
            entries=entries, rows=rank(entries, challenge.primary, challenge.direction)))
    return {phase: tuple(sorted(vs, key=lambda v: (v.created, v.key))) for phase, vs in found.items()}


def current(versions: Iterable[Version]) -> Version | None:
    """What the main leaderboard shows: of the versions on the hidden data scored last (a rerun's
    new data), the one of the newest scorer version (then the one scored last)."""
    found = list(versions)
    if not found:
        return None
    last = max(found, key=lambda v: (v.latest, v.created, v.key))
    same_data = [v for v in found if (v.inputs_commit, v.labels_commit) == (last.inputs_commit, last.labels_commit)]
    return max(same_data, key=lambda v: (rescore.version_order(v.scorer_version), v.latest, v.key))


def with_current(challenge: Challenge, versions: Mapping[str, tuple[Version, ...]]) -> Challenge:
    """``challenge`` whose leaderboard rows are those of each phase's current version.

    A phase with a single version keeps its rows as they are (they are that version's).
    """
    phases: list[Phase] = []
    for p in challenge.phases:
        now = current(versions.get(p.name, ()))
        if now is None or len(versions.get(p.name, ())) < 2:
            phases.append(p)
        else:
            phases.append(replace(p, rows=now.rows))
    return replace(challenge, phases=tuple(phases))


@dataclass(frozen=True)
class Comparison:
    phase: str
    old: Version
    new: Version
    rows: tuple[dict[str, Any], ...]  # team, old rank, new rank, change
    tau: float | None
    p_value: float | None
    n: int

    @property
    def page(self) -> str:
        return f"leaderboards/compare/{self.phase}/{self.old.key}--{self.new.key}.html"


def compare(old: Version, new: Version) -> Comparison:
    """Rank changes of the teams ranked in both versions, and Kendall's tau between their ranks."""
    from scipy.stats import kendalltau

    a, b = old.ranks(), new.ranks()
    teams = sorted(set(a) | set(b), key=lambda t: (b.get(t, math.inf), a.get(t, math.inf), t))
    rows = tuple({"team": t, "old": a.get(t), "new": b.get(t),
                  "change": (a[t] - b[t]) if t in a and t in b else None} for t in teams)
    both = [t for t in teams if t in a and t in b]
    tau = p_value = None
    if len(both) >= 2:
        result = kendalltau([a[t] for t in both], [b[t] for t in both])
        if math.isfinite(result.statistic):
            tau = float(result.statistic)
            p_value = float(result.pvalue) if math.isfinite(result.pvalue) else None
    return Comparison(old.phase, old, new, rows, tau, p_value, len(both))


def comparisons(versions: Mapping[str, tuple[Version, ...]]) -> list[Comparison]:
    """Each version of a phase compared with the one before it (stable pages: neither changes key)."""
    return [compare(vs[i - 1], vs[i]) for vs in versions.values() for i in range(1, len(vs))]


def pages(challenge: Challenge, versions: Mapping[str, tuple[Version, ...]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Page path (relative to the challenge folder) -> (template, context) of every versioned page."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    if not any(versions.values()):
        return out
    pairs = comparisons(versions)
    now = {phase: current(vs) for phase, vs in versions.items()}
    out[INDEX] = ("leaderboard_versions.html", {
        "title": f"{challenge.title}: leaderboard versions", "challenge": challenge, "versions": versions,
        "current": now, "comparisons": pairs, "up": "../"})
    for phase, vs in versions.items():
        for v in vs:
            out[v.page] = ("leaderboard_version.html", {
                "title": f"{challenge.title}: phase {phase}, leaderboard version {v.key}", "challenge": challenge, "version": v, "is_current": v is now[phase], "up": "../../",
                "compared": [c for c in pairs if v in (c.old, c.new)]})
    for c in pairs:
        out[c.page] = ("leaderboard_compare.html", {
            "title": f"{challenge.title}: phase {c.phase}, {c.old.key} to {c.new.key}", "challenge": challenge,
            "comparison": c, "up": "../../../"})
    return out


def context_with(extra: Mapping[str, Any], make: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The context ``make(*args, **kwargs)`` builds, with ``extra`` added (a page's link to the versions)."""
    return {**make(*args, **kwargs), **extra}


def rescores(results: Path, ev: Evaluation, problems: list[str]) -> tuple[rescore.ScoreSet, ...]:
    """The rescores of ``ev`` (its evaluation page lists them), by file name; () without any."""
    folder = results / EVALUATIONS / ev.id
    if not safe_eval_id(ev.id) or not os.path.isdir(folder / rescore.SCORES):
        return ()
    return tuple(s for s in rescore.score_sets(folder, ev, problems) if s.rescored)

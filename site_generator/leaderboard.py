"""Challenges, phases and rankings computed from the gathered records (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from jc_datalad.records import Evaluation, Status
from site_generator.gather import BadRecord, parse_time

TIE_RULE = ("Each team is ranked by its best public {primary} ({better}). Equal scores are "
            "ordered by the earlier first-seen time of the submission that scored them, "
            "then by team name.")


@dataclass(frozen=True)
class Row:
    """One team on a phase leaderboard: its best submission and a summary of the others."""

    rank: int
    team: str
    best: Evaluation
    score: float
    submissions: int
    last_submission: str


@dataclass(frozen=True)
class Phase:
    name: str
    rows: tuple[Row, ...]  # ranked
    counts: tuple[tuple[str, int], ...]  # status value -> records, in Status order
    not_ranked: tuple[Evaluation, ...]  # every record without a public primary score, by first_seen
    evaluations: tuple[Evaluation, ...]  # every record of the phase, by first_seen


@dataclass(frozen=True)
class Challenge:
    id: str
    title: str
    type: str
    primary: str
    direction: str  # "max" or "min"
    columns: tuple[str, ...]
    evaluations: tuple[Evaluation, ...]  # by first_seen, then id
    phases: tuple[Phase, ...]
    bad: tuple[BadRecord, ...]
    teams: int

    @property
    def tie_rule(self) -> str:
        better = "higher is better" if self.direction == "max" else "lower is better"
        return TIE_RULE.format(primary=self.primary, better=better)


def first_seen(ev: Evaluation) -> dt.datetime:
    return parse_time(ev.submission["first_seen"])


def _seen_order(ev: Evaluation) -> tuple[dt.datetime, str]:
    return first_seen(ev), ev.id


def primary_score(ev: Evaluation, primary: str) -> float | None:
    """The public ``primary`` score of an evaluated record; None for every other status."""
    if ev.status is not Status.EVALUATED:
        return None
    value = ev.public.get(primary)
    return float(value) if value is not None else None


def rank(evaluations: Iterable[Evaluation], primary: str, direction: str) -> tuple[Row, ...]:
    """Best public primary score per team by ``direction``; ties by first_seen, then team."""
    sign = -1.0 if direction == "max" else 1.0
    by_team: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in evaluations:
        by_team[ev.team].append(ev)
    entries = []
    for team, evs in by_team.items():
        scored = [(score, ev) for ev in evs if (score := primary_score(ev, primary)) is not None]
        if not scored:
            continue
        score, best = min(scored, key=lambda s: (sign * s[0], first_seen(s[1]), s[1].id))
        last = max(evs, key=_seen_order).submission["first_seen"]
        entries.append((sign * score, first_seen(best), team, best, score, len(evs), last))
    entries.sort(key=lambda e: e[:3])
    return tuple(Row(rank=n, team=team, best=best, score=score, submissions=count, last_submission=last)
                 for n, (_, _, team, best, score, count, last) in enumerate(entries, 1))


def phase(name: str, evaluations: Iterable[Evaluation], primary: str, direction: str) -> Phase:
    evs = sorted(evaluations, key=_seen_order)
    counts = tuple((s.value, sum(ev.status is s for ev in evs)) for s in Status)
    return Phase(
        name=name,
        rows=rank(evs, primary, direction),
        counts=counts,
        not_ranked=tuple(ev for ev in evs if primary_score(ev, primary) is None),
        evaluations=tuple(evs),
    )


def challenges(evaluations: Iterable[Evaluation], bad: Iterable[BadRecord]) -> tuple[tuple[Challenge, ...], list[str]]:
    """One :class:`Challenge` per challenge id, sorted by id, and the inconsistencies found.

    The title, type and columns come from the most recently first-seen record, so a
    challenge renamed in its dataset shows its current name.
    """
    by_id: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in evaluations:
        by_id[ev.challenge["id"]].append(ev)
    bad_by_id: dict[str, list[BadRecord]] = defaultdict(list)
    for b in bad:
        if b.challenge_id is not None:
            bad_by_id[b.challenge_id].append(b)
    found: list[str] = []
    result = []
    for cid in sorted(set(by_id) | set(bad_by_id)):
        evs = sorted(by_id.get(cid, []), key=_seen_order)
        if evs:
            latest = evs[-1].challenge
            for key in ("primary", "direction"):
                values = sorted({str(ev.challenge[key]) for ev in evs})
                if len(values) > 1:
                    found.append(f"challenge {cid}: records disagree on {key} ({', '.join(values)}); "
                                 f"the leaderboard uses {latest[key]!r} from the latest record")
            title, ctype, primary = latest["title"], latest["type"], latest["primary"]
            direction, columns = latest["direction"], tuple(latest["columns"])
        else:
            title, ctype, primary, direction, columns = cid, "unknown", "", "max", ()
        phases: dict[str, list[Evaluation]] = defaultdict(list)
        for ev in evs:
            phases[ev.phase].append(ev)
        # phases in the order they were first used, as a timeline
        order = sorted(phases, key=lambda p: (min(first_seen(ev) for ev in phases[p]), p))
        result.append(Challenge(
            id=cid,
            title=title,
            type=ctype,
            primary=primary,
            direction=direction,
            columns=columns,
            evaluations=tuple(evs),
            phases=tuple(phase(p, phases[p], primary, direction) for p in order),
            bad=tuple(bad_by_id.get(cid, [])),
            teams=len({ev.team for ev in evs} | {b.team for b in bad_by_id.get(cid, []) if b.team}),
        ))
    return tuple(result), found

"""Challenges, phases and rankings computed from the gathered records (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from jc_datalad.records import Evaluation, Status
from jc_datalad.standings import Standings
from site_generator.gather import BadRecord, is_number, parse_time
from site_generator.plots import rounded_range

if TYPE_CHECKING:
    from site_generator.description import Description

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
class FinalRow:
    """One team on the final leaderboard of an ended phase, as the standings file ranks it."""

    rank: int
    team: str
    evaluation_id: str  # the selected submission whose private score ranks the team
    evaluation: Evaluation | None  # its record; None when the phase has no readable record of it
    score: float  # private primary score
    previous_rank: int | None  # rank on the public leaderboard of the phase
    selected: tuple[tuple[str, Evaluation | None], ...]  # every selected id with its record

    @property
    def change(self) -> int | None:
        """Places gained since the public leaderboard (negative: lost); None without a public rank."""
        return None if self.previous_rank is None else self.previous_rank - self.rank


@dataclass(frozen=True)
class Final:
    """The final standings of an ended phase (``standings/<phase>-final.json``)."""

    path: str  # relative to the results dataset
    rule: str
    rows: tuple[FinalRow, ...]


#: The phase the runner records a head under when it was first seen while no phase was open
#: (``jc_datalad.admission.CLOSED``; a test checks they agree): late (or early), never evaluated.
OUTSIDE = "closed"


@dataclass(frozen=True)
class Phase:
    name: str
    rows: tuple[Row, ...]  # ranked
    counts: tuple[tuple[str, int], ...]  # status value -> records, in Status order
    not_ranked: tuple[Evaluation, ...]  # every record without a public primary score, by first_seen
    evaluations: tuple[Evaluation, ...]  # every record of the phase, by first_seen
    final: Final | None = None  # set once the phase has ended and its standings file is good

    @property
    def outside(self) -> bool:
        """The records of heads first seen while no phase was open (late ones, mostly)."""
        return self.name == OUTSIDE


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
    # set from challenges/<id>/description.json when it is good (see site_generator.description)
    description: Description | None = None

    def final(self, phase_name: str) -> Final | None:
        """The final standings of ``phase_name``; None while its private scores stay hidden."""
        for p in self.phases:
            if p.name == phase_name:
                return p.final
        return None

    @functools.cached_property
    def scored_span(self) -> tuple[dt.datetime, dt.datetime, float, float] | None:
        """The times and public primary scores every team plot of the challenge shows; None
        without a score. Rounded outward, so that a new submission seldom changes it (and
        with it every team page): times to whole weeks from Monday, or the phases of the
        challenge's description when they hold them all; scores to a tenth of their magnitude.
        """
        scored = [(first_seen(ev), s) for ev in self.evaluations
                  if (s := primary_score(ev, self.primary)) is not None]
        if not scored:
            return None
        times, scores = [t for t, _ in scored], [s for _, s in scored]
        first, last = _weeks(min(times), max(times))
        if self.description is not None and self.description.data.get("phases"):
            phases = self.description.data["phases"]
            start = min(parse_time(p["start"]) for p in phases)
            end = max(parse_time(p["end"]) for p in phases)
            if start <= min(times) and max(times) <= end:
                first, last = start, end
        low, high = rounded_range(min(scores), max(scores))
        return first, last, low, high

    @property
    def has_final(self) -> bool:
        return any(p.final is not None for p in self.phases)

    @property
    def tie_rule(self) -> str:
        better = "higher is better" if self.direction == "max" else "lower is better"
        return TIE_RULE.format(primary=self.primary, better=better)


def late_for(ev: Evaluation, challenge: Challenge) -> str | None:
    """The phase a record of a head first seen outside every phase came too late for: as the
    runner wrote it (``submission.late_for``), else the described phase that ended last before
    it was first seen; None when not known or not late (before every phase)."""
    if ev.phase != OUTSIDE:
        return None
    named = ev.submission.get("late_for")
    if isinstance(named, str) and named:
        return named
    d = challenge.description
    if d is None:
        return None
    seen = first_seen(ev)
    ended = [p for p in d.data["phases"] if parse_time(p["end"]) <= seen]
    return max(ended, key=lambda p: parse_time(p["end"]))["name"] if ended else None


def _weeks(first: dt.datetime, last: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """From the Monday 00:00 UTC on or before ``first`` to the Monday after ``last``."""
    monday = dt.datetime.combine(first.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    monday -= dt.timedelta(days=monday.weekday())
    weeks = (last - monday) // dt.timedelta(weeks=1) + 1
    return monday, monday + dt.timedelta(weeks=weeks)


def first_seen(ev: Evaluation) -> dt.datetime:
    return _parse_seen(ev.submission["first_seen"])


# Sorting and ranking ask for every record's time many times over; each text is parsed once.
_parse_seen = functools.lru_cache(maxsize=1 << 16)(parse_time)


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
    by_team: dict[str, list[tuple[dt.datetime, Evaluation]]] = defaultdict(list)
    for ev in evaluations:
        by_team[ev.team].append((first_seen(ev), ev))
    entries = []
    for team, evs in by_team.items():
        scored = [(score, seen, ev) for seen, ev in evs if (score := primary_score(ev, primary)) is not None]
        if not scored:
            continue
        score, seen, best = min(scored, key=lambda s: (sign * s[0], s[1], s[2].id))
        last = max(evs, key=lambda s: (s[0], s[1].id))[1].submission["first_seen"]
        entries.append((sign * score, seen, team, best, score, len(evs), last))
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


def attach_finals(found: tuple[Challenge, ...], finals: Iterable[Standings],
                  paths: Mapping[str, str]) -> tuple[tuple[Challenge, ...], list[str]]:
    """``found`` with each final standings set on its phase, and the problems found.

    A standings file names its phase but not its challenge: it belongs to the
    challenge with records of that phase (one challenge per results dataset);
    where several have such records, to the one whose records of the phase hold
    every evaluation the file names. A file that matches no challenge is
    reported (unless it ranks nobody: a phase that ended without submissions).
    """
    problems: list[str] = []
    chosen: dict[str, dict[str, Standings]] = defaultdict(dict)
    for standings in finals:
        path = paths[standings.phase]
        named = {r.evaluation_id for r in standings.rows} | {s for r in standings.rows for s in r.selected}
        having = [c for c in found if any(p.name == standings.phase for p in c.phases)]
        candidates = having if len(having) < 2 else [
            c for c in having
            if named and named <= {ev.id for ev in c.evaluations if ev.phase == standings.phase}]
        if len(candidates) == 1:
            chosen[candidates[0].id][standings.phase] = standings
        elif len(having) > 1:
            problems.append(f"{path}: several challenges ({', '.join(c.id for c in having)}) have "
                            f"records of phase {standings.phase!r}, and not exactly one holds every "
                            "evaluation the file names; its final leaderboard is not shown")
        elif standings.rows:
            problems.append(f"{path}: no challenge has records of phase {standings.phase!r}; "
                            "its final leaderboard is not shown")
    result = []
    for c in found:
        mine = chosen.get(c.id, {})
        phases = []
        for p in c.phases:
            if p.name in mine:
                final, found_problems = _final(c, p, mine[p.name], paths[p.name])
                problems.extend(found_problems)
                p = replace(p, final=final)
            phases.append(p)
        result.append(replace(c, phases=tuple(phases)))
    return tuple(result), problems


def _final(challenge: Challenge, phase_: Phase, standings: Standings, path: str) -> tuple[Final, list[str]]:
    """The final leaderboard of one phase, and where it disagrees with the records."""
    records = {ev.id: ev for ev in phase_.evaluations}
    problems: list[str] = []

    def record(eid: str, where: str) -> Evaluation | None:
        ev = records.get(eid)
        if ev is None:
            problems.append(f"{path}: {where} {eid!r} is no readable evaluation of phase "
                            f"{phase_.name} of challenge {challenge.id}; it is shown without a link")
        return ev

    rows = tuple(
        FinalRow(rank=r.rank, team=r.team, evaluation_id=r.evaluation_id,
                 evaluation=record(r.evaluation_id, f"rows[{n}].evaluation_id"), score=r.score,
                 previous_rank=r.previous_rank,
                 selected=tuple((s, records.get(s)) for s in r.selected))
        for n, r in enumerate(standings.rows)
    )
    for n, r in enumerate(standings.rows):
        for s in r.selected:
            if s != r.evaluation_id:
                record(s, f"rows[{n}].selected")
    # private scores become visible: each one must be a number (named, never echoed)
    for ev in phase_.evaluations:
        if ev.status is Status.EVALUATED:
            problems.extend(f"evaluation {ev.id}: private.{name}: must be a finite number or null; "
                            "shown as —" for name, value in ev.private.items()
                            if value is not None and not is_number(value))
    return Final(path=path, rule=standings.rule, rows=rows), problems

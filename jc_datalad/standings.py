"""Competition rules over ledger records: phases, quotas, leaderboards, final selection.

Pure functions: records and the spec in, frozen results out. No I/O, git or
DataLad here, so the runner (admission) and the site (standings) apply the
very same rules, and the same records always give the same standings.

Times are UTC. A record's ``submission["first_seen"]`` is when the runner
first saw its commit; it decides the UTC day of a quota and breaks ties.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import ChallengeSpec, Direction, Phase

PARTS = ("public", "private")

#: Sorts after every real time: a record without a readable first_seen loses ties.
_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)

_NO_TAGS: Mapping[str, Collection[str]] = MappingProxyType({})


# -- time -----------------------------------------------------------------------------------------


def _utc(when: dt.datetime) -> dt.datetime:
    # Naive times are UTC, as in challenge.yaml (spec._parse_time).
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def parse_time(text: str) -> dt.datetime:
    """``"2027-01-12T10:00:00.000000Z"`` -> an aware UTC datetime."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return _utc(dt.datetime.fromisoformat(text))


def _seen(record: Evaluation) -> dt.datetime | None:
    """When the runner first saw the record's commit; None if the record lacks a readable time."""
    raw = record.submission.get("first_seen")
    if not isinstance(raw, str):
        return None
    try:
        return parse_time(raw)
    except ValueError:
        return None


def phase_at(spec: ChallengeSpec, when: dt.datetime) -> Phase | None:
    """The phase whose ``[start, end)`` contains ``when``; None outside every phase.

    A naive ``when`` is taken as UTC.
    """
    return open_phase(spec.phases, when)


def open_phase(phases: Sequence[Phase], when: dt.datetime) -> Phase | None:
    """The phase of ``phases`` whose ``[start, end)`` contains ``when`` (naive: UTC); None outside all."""
    when = _utc(when)
    for phase in phases:
        if _utc(phase.start) <= when < _utc(phase.end):
            return phase
    return None


def _phase(spec: ChallengeSpec, name: str) -> Phase:
    for phase in spec.phases:
        if phase.name == name:
            return phase
    known = ", ".join(p.name for p in spec.phases) or "none"
    raise ValueError(f"challenge.yaml has no phase {name!r} (phases: {known}); "
                     "use a phase name from its `phases` list")


# -- admission ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """Whether one new submission is admitted, and if not, why."""

    admitted: bool
    reason: str | None  # None when admitted


def is_rerun(record: Evaluation) -> bool:
    """A re-run on a newer hidden-data version (``jc runner rerun``): never charged, never in these
    standings (it belongs to a leaderboard version of its own; docs/reproduce.md)."""
    return bool(record.submission.get("rerun_of"))


def _counts(record: Evaluation, count_failed: bool) -> bool:
    # rejections never ran; a platform failure (infrastructure) is never the team's to pay for
    if is_rerun(record):
        return False
    if count_failed:
        return record.status not in (Status.REJECTED, Status.INFRASTRUCTURE)
    return record.status is Status.EVALUATED


def _submissions(n: int) -> str:
    return f"{n} admitted submission{'' if n == 1 else 's'}"


def admit(
    history: Sequence[Evaluation],
    *,
    team: str,
    phase: Phase,
    first_seen: dt.datetime,
    count_failed: bool = True,
) -> Admission:
    """Check the quotas of ``phase`` for one new submission of ``team``.

    ``history`` holds the team's earlier records; records of other teams and
    other phases are ignored. Rejected and infrastructure records never count; with
    ``count_failed=False`` only evaluated ones do. ``per_day`` counts the
    records first seen on the same UTC day as ``first_seen``; ``total`` counts
    the whole phase. The total is checked first: waiting a day does not lift it.
    A record without a readable first_seen counts toward the total only.
    """
    used = quota(history, team=team, phase=phase, when=first_seen, count_failed=count_failed)
    if phase.total is not None and used.used_total >= phase.total:
        return Admission(False, f"quota: team {team} already has {_submissions(used.used_total)} "
                                f"in phase {phase.name} (limit {phase.total} in total)")
    if phase.per_day is not None and used.used_today >= phase.per_day:
        return Admission(False, f"quota: team {team} already has {_submissions(used.used_today)} "
                                f"on {used.day.isoformat()} (UTC) in phase {phase.name} "
                                f"(limit {phase.per_day} per day)")
    return Admission(True, None)


@dataclass(frozen=True)
class Quota:
    """How much of a phase's quotas a team has used on one UTC day, and what is left.

    What :func:`admit` decides with: a head first seen on ``day`` is admitted while
    ``left_today`` is not 0 (None: no limit).
    """

    phase: str
    day: dt.date  # the UTC day counted
    used_today: int  # counted records first seen on ``day``
    used_total: int  # counted records of the whole phase
    per_day: int | None  # the limits; None: no such limit
    total: int | None

    @property
    def left_total(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.used_total)

    @property
    def left_today(self) -> int | None:
        """Submissions still admitted on ``day``: the daily limit and what is left of the total."""
        daily = None if self.per_day is None else max(0, self.per_day - self.used_today)
        limits = [n for n in (daily, self.left_total) if n is not None]
        return min(limits) if limits else None

    @property
    def resets(self) -> dt.datetime:
        """When ``day`` ends and the daily count starts again: the next midnight UTC."""
        return dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def quota(
    history: Sequence[Evaluation],
    *,
    team: str,
    phase: Phase,
    when: dt.datetime,
    count_failed: bool = True,
) -> Quota:
    """The quotas of ``phase`` as :func:`admit` counts them for ``team`` on the UTC day of ``when``."""
    day = _utc(when).date()
    counted = [r for r in history
               if r.team == team and r.phase == phase.name and _counts(r, count_failed)]
    same_day = sum(1 for r in counted if (seen := _seen(r)) is not None and seen.date() == day)
    return Quota(phase=phase.name, day=day, used_today=same_day, used_total=len(counted),
                 per_day=phase.per_day, total=phase.total)


# -- leaderboards ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One team on a leaderboard."""

    rank: int
    team: str
    evaluation_id: str
    score: float
    first_seen: str
    submissions: int  # records of this team in this phase (any status)
    previous_rank: int | None  # final boards: the rank on the phase's public board; else None
    selected: tuple[str, ...]  # final boards: the evaluation ids the entry was chosen from

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        return cls(**{**data, "selected": tuple(data.get("selected", ()))})


@dataclass(frozen=True)
class Standings:
    """A ranked leaderboard of one phase and one part of the hidden split."""

    phase: str
    part: str  # "public" or "private"
    final: bool
    rows: tuple[Row, ...]
    rule: str  # the ranking and tie rule in words, stored with the standings

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [{**asdict(r), "selected": list(r.selected)} for r in self.rows]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Standings:
        return cls(phase=data["phase"], part=data["part"], final=data["final"],
                   rows=tuple(Row.from_dict(r) for r in data["rows"]), rule=data["rule"])


def _score(record: Evaluation, part: str, primary: str) -> float | None:
    metrics = record.public if part == "public" else record.private
    value = metrics.get(primary)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _key(record: Evaluation, score: float, direction: Direction) -> tuple[Any, ...]:
    """Better first: the score in the spec's direction, then earlier first_seen, team, id."""
    return (-score if direction is Direction.MAX else score,
            _seen(record) or _NEVER, record.team, record.id)


def _names(values: Collection[str]) -> frozenset[str]:
    # A bare string is one name, not a collection of characters to match substrings against.
    return frozenset((values,) if isinstance(values, str) else values)


def _excluded(record: Evaluation, exclude: Collection[str]) -> bool:
    return record.id in exclude or record.team in exclude


def _scored(records: Iterable[Evaluation], spec: ChallengeSpec, phase: str,
            part: str) -> list[tuple[Evaluation, float]]:
    out = []
    for r in records:
        if r.phase != phase or r.status is not Status.EVALUATED or is_rerun(r):
            continue
        score = _score(r, part, spec.metrics.primary)
        if score is not None:
            out.append((r, score))
    return out


def _ranked(best: Mapping[str, tuple[Evaluation, float]], direction: Direction,
            ) -> list[tuple[int, Evaluation, float]]:
    order = sorted(best.values(), key=lambda rs: _key(rs[0], rs[1], direction))
    return [(rank, r, s) for rank, (r, s) in enumerate(order, 1)]


def _submission_counts(records: Iterable[Evaluation], phase: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.phase == phase:
            counts[r.team] = counts.get(r.team, 0) + 1
    return counts


def _better(direction: Direction) -> str:
    return "highest" if direction is Direction.MAX else "lowest"


_TIES = ("ties go to the submission first seen earlier (UTC), "
         "then to the team name in alphabetical order")


def _exclusion_text(exclude: Collection[str]) -> str:
    if not exclude:
        return ""
    return f" Disqualified by the organizer (teams or evaluations): {', '.join(sorted(exclude))}."


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown leaderboard part {part!r}; use 'public' or 'private'")


def leaderboard(
    records: Sequence[Evaluation],
    spec: ChallengeSpec,
    phase: str,
    *,
    part: str = "public",
    exclude: Collection[str] = (),
) -> Standings:
    """Each team's best ``part`` score in ``phase``, ranked.

    Only evaluated records whose primary metric is a finite number take part.
    ``exclude`` holds evaluation ids or team names the organizer disqualified.
    Ranks are 1, 2, 3, ...: the tie rule leaves no two teams level.
    """
    _check_part(part)
    exclude = _names(exclude)
    direction = spec.metrics.direction
    best: dict[str, tuple[Evaluation, float]] = {}
    for r, s in _scored((r for r in records if not _excluded(r, exclude)), spec, phase, part):
        if r.team not in best or _key(r, s, direction) < _key(*best[r.team], direction):
            best[r.team] = (r, s)
    counts = _submission_counts(records, phase)
    rows = tuple(
        Row(rank=rank, team=r.team, evaluation_id=r.id, score=s,
            first_seen=str(r.submission.get("first_seen", "")), submissions=counts[r.team],
            previous_rank=None, selected=())
        for rank, r, s in _ranked(best, direction)
    )
    rule = (f"Phase {phase}, {part} part of the hidden split: each team is ranked by the "
            f"{_better(direction)} {spec.metrics.primary} among its evaluated submissions; "
            f"{_TIES}.{_exclusion_text(exclude)}")
    return Standings(phase=phase, part=part, final=False, rows=rows, rule=rule)


def select_final(
    records: Sequence[Evaluation],
    spec: ChallengeSpec,
    phase: str,
    team: str,
    *,
    tagged: Collection[str] = (),
) -> tuple[Evaluation, ...]:
    """The up to ``select`` records of ``team`` that compete in the final standings of ``phase``.

    If the team tagged submissions (``tagged``: the commits of its signed
    ``final/<label>`` tags), the tags decide: its evaluated records of those
    commits, the earliest first seen if it tagged more than ``select``; a tag on
    a commit that was not evaluated selects nothing. Without tags: its best
    ``select`` evaluated records by public primary score (ties as on the
    leaderboard). Returned best-first (by score without tags, by first_seen with).
    """
    limit = _phase(spec, phase).select
    tagged = _names(tagged)
    mine = [r for r in records
            if r.team == team and r.phase == phase and r.status is Status.EVALUATED and not is_rerun(r)]
    if tagged:
        chosen = [r for r in mine if r.submission.get("commit") in tagged]
        chosen.sort(key=lambda r: (_seen(r) or _NEVER, r.id))
        return tuple(chosen[:limit])
    direction = spec.metrics.direction
    scored = _scored(mine, spec, phase, "public")
    scored.sort(key=lambda rs: _key(rs[0], rs[1], direction))
    return tuple(r for r, _ in scored[:limit])


def final_leaderboard(
    records: Sequence[Evaluation],
    spec: ChallengeSpec,
    phase: str,
    *,
    tagged: Mapping[str, Collection[str]] = _NO_TAGS,
    exclude: Collection[str] = (),
) -> Standings:
    """The final standings of ``phase``: private scores of each team's selected submissions.

    Each team's entries come from :func:`select_final` (``tagged``: team ->
    commits of its ``final/<label>`` tags); it is ranked by the best private
    primary score among them, ties as on the leaderboard. ``previous_rank``
    is the team's rank on the public leaderboard of the phase. Disqualified
    records are removed before selection, so untagged teams fall back to their
    next best public scores.
    """
    direction = spec.metrics.direction
    limit = _phase(spec, phase).select
    exclude = _names(exclude)
    kept = [r for r in records if not _excluded(r, exclude)]
    teams = sorted({r.team for r in kept if r.phase == phase})
    best: dict[str, tuple[Evaluation, float]] = {}
    selections: dict[str, tuple[str, ...]] = {}
    for team in teams:
        chosen = select_final(kept, spec, phase, team, tagged=tagged.get(team, ()))
        selections[team] = tuple(r.id for r in chosen)
        for r, s in _scored(chosen, spec, phase, "private"):
            if team not in best or _key(r, s, direction) < _key(*best[team], direction):
                best[team] = (r, s)
    public = {row.team: row.rank for row in leaderboard(records, spec, phase, exclude=exclude).rows}
    counts = _submission_counts(records, phase)
    rows = tuple(
        Row(rank=rank, team=r.team, evaluation_id=r.id, score=s,
            first_seen=str(r.submission.get("first_seen", "")), submissions=counts[r.team],
            previous_rank=public.get(r.team), selected=selections[r.team])
        for rank, r, s in _ranked(best, direction)
    )
    by_tag = sorted(t for t in teams if tagged.get(t))
    best_public = (f"its best submission by public {spec.metrics.primary}" if limit == 1 else
                   f"its {limit} best submissions by public {spec.metrics.primary}")
    if by_tag:
        source = (f"{'team' if len(by_tag) == 1 else 'teams'} {', '.join(by_tag)} selected with "
                  f"signed final/<label> tags (the {limit} first seen if more were tagged); "
                  f"every other team's selection is {best_public}")
    else:
        source = f"no team tagged submissions, so each team's selection is {best_public}"
    rule = (f"Final standings of phase {phase}, private part of the hidden split: each team is "
            f"ranked by the {_better(direction)} private {spec.metrics.primary} among its selected "
            f"evaluated submissions (at most {limit}); {source}; {_TIES}. The previous rank is "
            f"the team's rank on the public leaderboard of the phase.{_exclusion_text(exclude)}")
    return Standings(phase=phase, part="private", final=True, rows=rows, rule=rule)

"""Admission: which submission heads the runner evaluates, and why the others are refused.

Decided in first-seen order (the runner's clock; commit dates are the
participant's): the phase open when the head was first seen, the head
commit's signature by one of the team's registered keys (when the challenge
asks for signed submissions), and the team's daily and per-phase quotas.
Organizer overrides (``jc runner override``) extend phases, disqualify and
re-admit; each is a commit in the results dataset with its reason.

A rejected head is remembered by its record: it is not cloned or decided again
in later passes, unless what decided it changed (the phase it falls in, or,
for a signature rejection, the keys registered for its team).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from jc_datalad import standings
from jc_datalad.config import RunnerConfig, Team
from jc_datalad.errors import JcError
from jc_datalad.gitutil import check_team_repository, git
from jc_datalad.records import Evaluation, Status, evaluation_id
from jc_datalad.spec import ChallengeSpec, Phase
from jc_datalad.teams import effective_team, keys_by_team

#: The phase of a challenge without phases, and of heads first seen outside every phase.
DEFAULT_PHASE = "main"
CLOSED = "closed"

OVERRIDE_ACTIONS = ("disqualify", "disqualify-team", "readmit", "extend")


@dataclass(frozen=True)
class Candidate:
    """A submission head found in a team's repository."""

    team: Team
    commit: str
    branches: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    team: str  # the team it counts for (after merges)
    phase: str
    split: str
    first_seen: str
    eval_id: str
    admitted: bool
    reason: str | None = None
    keys: str | None = None  # signature rejections: fingerprint of the team keys that decided it
    late_for: str | None = None  # a head first seen after this phase ended, while no phase was open
    quota: bool = False  # rejected for the team's quota (counting the heads this pass admitted before)


def effective_spec(spec: ChallengeSpec, overrides: Sequence[dict]) -> ChallengeSpec:
    """The spec with phase extensions from organizer overrides applied."""
    ends = {o["target"]: standings.parse_time(o["end"]) for o in overrides if o["action"] == "extend"}
    if not ends:
        return spec
    phases = tuple(replace(p, end=ends.get(p.name, p.end)) for p in spec.phases)
    return replace(spec, phases=phases)


def disqualified(overrides: Sequence[dict]) -> set[str]:
    """Evaluation ids and team names taken off the leaderboards (until re-admitted)."""
    out: set[str] = set()
    for o in overrides:
        if o["action"] in ("disqualify", "disqualify-team"):
            out.add(o["target"])
        elif o["action"] == "readmit":
            out.discard(o["target"])
    return out


def readmitted(overrides: Sequence[dict]) -> set[str]:
    return {o["target"] for o in overrides if o["action"] == "readmit"}


def phase_for(spec: ChallengeSpec, when: dt.datetime, default_split: str) -> Phase | None:
    if not spec.phases:
        return Phase(DEFAULT_PHASE, dt.datetime.min.replace(tzinfo=dt.UTC),
                     dt.datetime.max.replace(tzinfo=dt.UTC), default_split)
    return standings.phase_at(spec, when)


@contextmanager
def bare_clone(config: RunnerConfig, repository: str) -> Iterator[tuple[Path, Path]]:
    """A throw-away bare clone of a team repository (and a scratch folder beside it)."""
    where = config.work / "verify" / uuid.uuid4().hex
    where.mkdir(parents=True)
    try:
        repo = where / "repo.git"
        check_team_repository(repository)
        git(["clone", "--quiet", "--bare", repository, str(repo)], protocols=config.protocols, timeout=600)
        yield repo, where
    finally:
        shutil.rmtree(where, ignore_errors=True)


class _Clones:
    """One bare clone per team repository for a whole admission round, removed at its end."""

    def __init__(self, config: RunnerConfig, stack: ExitStack) -> None:
        self.config = config
        self.stack = stack
        self.made: dict[str, tuple[Path, Path] | JcError] = {}

    def get(self, repository: str) -> tuple[Path, Path]:
        if repository not in self.made:
            try:
                self.made[repository] = self.stack.enter_context(bare_clone(self.config, repository))
            except JcError as exc:
                self.made[repository] = exc
        got = self.made[repository]
        if isinstance(got, JcError):
            raise got
        return got


def verify_signature(config: RunnerConfig, cand: Candidate, team: str, teams: dict[str, Team],
                     clones: _Clones | None = None):
    """Check the head commit's SSH signature by one of ``team``'s keys."""
    from jc_datalad.signing import SignatureCheck, verify_commit

    try:
        if clones is not None:
            repo, where = clones.get(cand.team.repository)
            return verify_commit(repo, cand.commit, team, keys_by_team(teams), workdir=where)
        with bare_clone(config, cand.team.repository) as (repo, where):
            return verify_commit(repo, cand.commit, team, keys_by_team(teams), workdir=where)
    except JcError as exc:
        return SignatureCheck(ok=False, reason=f"signature not verifiable: {exc}", fingerprint=None,
                              signer_team=None)


def keys_fingerprint(teams: dict[str, Team], team: str) -> str:
    """What decides a signature check of ``team``'s heads: the keys registered for it."""
    keys = sorted(keys_by_team(teams).get(team, []))
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def tag_signed(config: RunnerConfig, team: Team, tag: str, teams: dict[str, Team]) -> bool:
    """Whether ``tag`` in ``team``'s repository is signed by one of its (effective) team's keys."""
    from jc_datalad.signing import verify_tag

    try:
        with bare_clone(config, team.repository) as (repo, where):
            return verify_tag(repo, tag, effective_team(teams, team.name), keys_by_team(teams),
                              workdir=where).ok
    except JcError:
        return False


def decide(
    candidates: Sequence[Candidate],
    *,
    config: RunnerConfig,
    spec: ChallengeSpec,
    teams: dict[str, Team],
    seen: dict[tuple[str, str], dict],
    records: Sequence[Evaluation],
    overrides: Sequence[dict],
    done: set[str],
) -> list[Decision]:
    """A decision for every head that has none in the ledger yet, in first-seen order.

    Signature checks share one bare clone per team repository. A head rejected for its
    signature is decided again when its team's registered keys changed since.
    """
    with ExitStack() as stack:
        return _decide(candidates, config=config, spec=spec, teams=teams, seen=seen, records=records,
                       overrides=overrides, done=done, clones=_Clones(config, stack))


def _decide(
    candidates: Sequence[Candidate],
    *,
    config: RunnerConfig,
    spec: ChallengeSpec,
    teams: dict[str, Team],
    seen: dict[tuple[str, str], dict],
    records: Sequence[Evaluation],
    overrides: Sequence[dict],
    done: set[str],
    clones: _Clones,
) -> list[Decision]:
    spec = effective_spec(spec, overrides)
    again = readmitted(overrides)
    history: dict[str, list[Evaluation]] = {}
    for record in records:
        history.setdefault(record.team, []).append(record)
    stale = _stale_signature_rejections(records, teams) if spec.submission.signed else set()

    def first_seen(c: Candidate) -> str:
        return seen[(c.team.name, c.commit)]["first_seen"]

    decisions = []
    for cand in sorted(candidates, key=lambda c: (first_seen(c), c.team.name, c.commit)):
        team = effective_team(teams, cand.team.name)
        when = first_seen(cand)
        phase = phase_for(spec, standings.parse_time(when), config.split)
        if phase is None:
            eid = evaluation_id(team, cand.commit, CLOSED)
            if eid not in done:
                # phase and split "closed": it ran on no split; the id stays the one earlier passes wrote
                ended = last_ended(spec, standings.parse_time(when))
                decisions.append(Decision(cand, team, CLOSED, CLOSED, when, eid, False, _outside_reason(when, ended),
                                          late_for=ended.name if ended is not None else None))
            continue
        eid = evaluation_id(team, cand.commit, phase.name)
        if eid in done and eid not in again and eid not in stale:
            continue
        if eid in again and eid in done and not _was_rejected(records, eid):
            continue  # re-admitted and already evaluated since (or not a rejection or platform error)
        if eid not in again:
            if spec.submission.signed:
                check = verify_signature(config, cand, team, teams, clones)
                if not check.ok:
                    decisions.append(Decision(cand, team, phase.name, phase.split, when, eid, False, check.reason,
                                              keys=keys_fingerprint(teams, team)))
                    continue
            admission = standings.admit(history.get(team, []), team=team, phase=phase,
                                        first_seen=standings.parse_time(when), count_failed=spec.submission.count_failed)
            if not admission.admitted:
                decisions.append(Decision(cand, team, phase.name, phase.split, when, eid, False, admission.reason,
                                          quota=True))
                continue
        decisions.append(Decision(cand, team, phase.name, phase.split, when, eid, True))
        # counts toward the quota of later heads in this pass, whatever its outcome
        history.setdefault(team, []).append(_placeholder(spec, team, cand, phase.name, when))
    return decisions


def last_ended(spec: ChallengeSpec, when: dt.datetime) -> Phase | None:
    """The phase that ended last at or before ``when`` (extensions applied): a head first seen
    then, while no phase is open, is late for it. None before every phase's end."""
    ended = [p for p in spec.phases if _aware(p.end) <= when]
    return max(ended, key=lambda p: _aware(p.end), default=None)


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)  # challenge.yaml times are UTC


def _outside_reason(when: str, ended: Phase | None) -> str:
    text = f"first seen at {when}, when no phase of the challenge was open"
    if ended is None:
        return text
    end = _aware(ended.end).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"{text}: late, after phase {ended.name} ended at {end}; "
            "a late submission is not evaluated")


def _stale_signature_rejections(records: Sequence[Evaluation], teams: dict[str, Team]) -> set[str]:
    """Ids of signature rejections decided with keys other than those registered now."""
    out = set()
    for r in records:
        keys = r.submission.get("keys")
        if r.status is Status.REJECTED and isinstance(keys, str) and keys != keys_fingerprint(teams, r.team):
            out.add(r.id)
    return out


def _was_rejected(records: Sequence[Evaluation], eid: str) -> bool:
    """Whether the record of ``eid`` is one a re-admission redoes: a rejection or a platform error."""
    return any(r.id == eid and r.status in (Status.REJECTED, Status.INFRASTRUCTURE) for r in records)


def _placeholder(spec: ChallengeSpec, team: str, cand: Candidate, phase: str, when: str) -> Evaluation:
    return Evaluation(id=evaluation_id(team, cand.commit, phase), challenge=spec.summary(), team=team,
                      submission={"commit": cand.commit, "first_seen": when}, phase=phase, split="",
                      status=Status.EVALUATED)


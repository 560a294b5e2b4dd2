"""Teams in the private dataset's ``teams.yaml``: registration, keys, checks, merging."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from jc_datalad.config import TEAMS_FILE, Team, TeamsFile, read_teams, save_teams, valid_team_name
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity


def _file(teams_file: Path) -> Path:
    return teams_file / TEAMS_FILE if teams_file.is_dir() else teams_file


def _save(teams_file: Path, teams: dict[str, Team], message: str) -> Path:
    import datalad.api as dl

    save_teams(teams_file, teams)
    if (teams_file.parent / ".datalad").is_dir():
        dl.save(dataset=str(teams_file.parent), path=[str(teams_file)], message=message,
                result_renderer="disabled")
    return teams_file


def read_key(value: str) -> str:
    """A public key given inline or as a file path (e.g. ``~/.ssh/id_ed25519.pub``)."""
    from jc_datalad.signing import normalize_key

    path = Path(value).expanduser()
    text = path.read_text() if not value.startswith(("ssh-", "ecdsa-", "sk-")) and path.is_file() else value
    return normalize_key(text.strip())


def add_team(
    teams_file: Path,
    name: str,
    repository: str,
    members: Sequence[str] = (),
    keys: Sequence[str] = (),
) -> Path:
    """Register (or update) a team with its own submission repository and signing keys.

    ``teams_file`` is a ``teams.yaml`` (or a private dataset folder holding one); inside a
    dataset the change is saved. ``keys`` are SSH public keys, inline or as files.
    """
    ensure_identity()
    if not valid_team_name(name):
        raise JcError(f"team name {name!r}: use letters, digits, '.', '_' or single '-' (at most 63)")
    if not repository.strip():
        raise JcError(f"team {name}: give its own submission repository (URL or path) with --repository")
    teams_file = _file(teams_file)
    teams = _editable(read_teams(teams_file, missing_ok=True), name)
    old = teams.get(name)
    # registering again replaces a malformed key (it signs nothing) and keeps the good ones
    kept = [k for k in (old.keys if old else ()) if _well_formed(k)]
    normalized = tuple(dict.fromkeys([*kept, *(read_key(k) for k in keys)]))
    teams[name] = Team(name=name, repository=repository,
                       members=tuple(dict.fromkeys([*(old.members if old else ()), *members])),
                       keys=normalized, merged_into=old.merged_into if old else None)
    problems = [p for p in check_teams(teams) if name in p.split(":", 1)[0].split()]
    if problems:
        raise JcError(f"{teams_file}: " + "; ".join(problems))
    return _save(teams_file, teams, f"Register team {name}")


def _well_formed(key: str) -> bool:
    from jc_datalad.signing import normalize_key

    try:
        normalize_key(key)
    except JcError:
        return False
    return True


def _editable(found: TeamsFile, name: str | None = None) -> dict[str, Team]:
    """The teams of a file that can be rewritten without losing an entry.

    A suspended entry (see :func:`jc_datalad.config.read_teams`) cannot be written back as
    it was, so editing waits until it is fixed by hand; the entry being replaced excepted.
    """
    lost = sorted(found.suspended - {name})
    if lost:
        problems = "; ".join(f"{p.where + ': ' if p.where else ''}{p}" for n in lost for p in found.by_team[n])
        raise JcError(f"{found.path}: fix the entries of {', '.join(lost)} first (`jc team check` lists every "
                      f"problem): {problems}")
    return dict(found.teams)


def check_teams(teams: dict[str, Team]) -> list[str]:
    """Every problem of a set of teams: names, shared repositories or keys, merge targets.

    Each problem starts with ``team NAME`` (or names both teams) before its first colon.
    """
    from jc_datalad.signing import normalize_key

    problems = []
    repos: dict[str, str] = {}
    keys: dict[str, str] = {}
    for team in sorted(teams.values(), key=lambda t: t.name):
        if not valid_team_name(team.name):
            problems.append(f"team {team.name!r}: invalid name")
        for key in team.keys:
            try:
                normalize_key(key)
            except JcError as exc:
                problems.append(f"team {team.name}: {exc}")
        if team.repository in repos:
            problems.append(f"teams {repos[team.repository]} {team.name}: repository {team.repository} of "
                            "both; every team needs its own repository")
        repos[team.repository] = team.name
        for key in team.keys:
            if key in keys:
                problems.append(f"teams {keys[key]} {team.name}: a key of team {team.name} is also "
                                f"registered for team {keys[key]}")
            keys[key] = team.name
        if team.merged_into:
            target = teams.get(team.merged_into)
            if target is None:
                problems.append(f"team {team.name}: merged into unknown team {team.merged_into!r}")
            elif target.merged_into:
                problems.append(f"team {team.name}: merged into {target.name}, which merged itself")
    return problems


def merge_teams(
    teams_file: Path,
    into: str,
    other: str,
    *,
    deadline: dt.datetime | None,
    now: dt.datetime | None = None,
) -> Path:
    """Merge team ``other`` into ``into``: its submissions, quotas and keys count for ``into``.

    Refused after ``deadline`` (``teams.merge_deadline`` in challenge.yaml) with the reason.
    """
    now = now or dt.datetime.now(dt.UTC)
    if deadline is not None and now >= deadline:
        raise JcError(f"merging {other} into {into} refused: the merge deadline "
                      f"{deadline.isoformat()} has passed (now {now.isoformat(timespec='seconds')})")
    teams_file = _file(teams_file)
    teams = _editable(read_teams(teams_file))
    for name in (into, other):
        if name not in teams:
            raise JcError(f"team {name!r} is not registered in {teams_file}")
    if into == other or teams[into].merged_into or teams[other].merged_into:
        raise JcError(f"cannot merge {other} into {into}: each must be a distinct team that has not merged")
    teams[other] = replace(teams[other], merged_into=into)
    return _save(teams_file, teams, f"Merge team {other} into {into}")


def effective_team(teams: dict[str, Team], name: str) -> str:
    """The team a submission of ``name`` counts for (itself, or the team it merged into)."""
    team = teams[name]
    return team.merged_into or team.name


def keys_by_team(teams: dict[str, Team]) -> dict[str, list[str]]:
    """Signing keys per effective team: a merged team's keys sign for the team it joined."""
    out: dict[str, list[str]] = {}
    for team in sorted(teams.values(), key=lambda t: t.name):
        out.setdefault(effective_team(teams, team.name), []).extend(team.keys)
    return out

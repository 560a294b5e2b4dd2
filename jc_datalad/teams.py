"""Team registration in the private dataset's ``teams.yaml``."""

from __future__ import annotations

import re
from pathlib import Path

from jc_datalad.config import TEAMS_FILE, Team, load_teams, save_teams
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def add_team(teams_file: Path, name: str, repository: str, members: tuple[str, ...] = ()) -> Path:
    """Register (or update) a team with its own submission repository.

    ``teams_file`` is a ``teams.yaml`` (or a private dataset folder holding one); inside a
    dataset the change is saved.
    """
    import datalad.api as dl

    ensure_identity()
    if not _NAME.match(name) or "--" in name:
        raise JcError(f"team name {name!r}: use letters, digits, '.', '_' or single '-' (at most 63)")
    if teams_file.is_dir():
        teams_file = teams_file / TEAMS_FILE
    teams = load_teams(teams_file)
    for other in teams.values():
        if other.name != name and other.repository == repository:
            raise JcError(f"{repository}: already the repository of team {other.name}; "
                          "every team needs its own repository")
    teams[name] = Team(name=name, repository=repository, members=tuple(members))
    save_teams(teams_file, teams)
    if (teams_file.parent / ".datalad").is_dir():
        dl.save(dataset=str(teams_file.parent), path=[str(teams_file)], message=f"Register team {name}",
                result_renderer="disabled")
    return teams_file

"""Team registration in the private dataset's ``teams.yaml``."""

from __future__ import annotations

import re
from pathlib import Path

from jc_datalad.config import TEAMS_FILE, Team, load_teams, save_teams
from jc_datalad.errors import JcError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def add_team(private: Path, name: str, repository: str, members: tuple[str, ...] = ()) -> Path:
    """Register (or update) a team with its own submission repository; saved in the private dataset."""
    import datalad.api as dl

    if not _NAME.match(name) or "--" in name:
        raise JcError(f"team name {name!r}: use letters, digits, '.', '_' or single '-' (at most 63)")
    teams = load_teams(private)
    for other in teams.values():
        if other.name != name and other.repository == repository:
            raise JcError(f"{repository}: already the repository of team {other.name}; "
                          "every team needs its own repository")
    teams[name] = Team(name=name, repository=repository, members=tuple(members))
    path = save_teams(private, teams)
    dl.save(dataset=str(private), path=[str(path)], message=f"Register team {name}",
            result_renderer="disabled")
    return private / TEAMS_FILE

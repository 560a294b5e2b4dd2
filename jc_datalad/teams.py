"""Teams in the private dataset's ``teams.yaml``: registration, keys, checks, merging, removal."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jc_datalad.config import TEAMS_FILE, Team, TeamsFile, read_teams, save_teams, valid_team_name
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity

log = logging.getLogger(__name__)

_KEY_FIX = ("give the member's SSH public key: the path of their .pub file (e.g. ~/.ssh/id_ed25519.pub) "
            "or its one line of text, 'ssh-ed25519 AAAA... comment'")


def _file(teams_file: Path) -> Path:
    return teams_file / TEAMS_FILE if teams_file.is_dir() else teams_file


def _save(teams_file: Path, teams: dict[str, Team], message: str) -> Path:
    import datalad.api as dl

    if not teams_file.parent.is_dir():
        raise JcError(f"{teams_file.parent}: no such folder for {teams_file.name}; check `private:` (or `teams:`) "
                      "in runner.yaml, or create the challenge with `jc challenge new`")
    save_teams(teams_file, teams)
    if (teams_file.parent / ".datalad").is_dir():
        dl.save(dataset=str(teams_file.parent), path=[str(teams_file)], message=message,
                result_renderer="disabled")
    return teams_file


def read_key(value: str) -> str:
    """A public key given inline or as a file path (e.g. ``~/.ssh/id_ed25519.pub``).

    Raises :class:`JcError` naming the file or text and what to give instead.
    """
    from jc_datalad.signing import normalize_key

    inline = value.lstrip().startswith(("ssh-", "ecdsa-", "sk-"))
    path = Path(value).expanduser()
    if not inline and path.is_file():
        try:
            text = path.read_bytes()[:64 * 1024].decode()
        except UnicodeDecodeError:
            raise JcError(f"{path}: not a text file, so not an SSH public key; {_KEY_FIX}") from None
        try:
            return normalize_key(text.strip())
        except JcError as exc:
            raise JcError(f"{path}: {exc}; {_KEY_FIX}") from None
    if not inline and len(value.split()) == 1:
        # one word that is neither a file nor a key: most likely a mistyped path
        raise JcError(f"{value!r}: no such file, and not an SSH public key; {_KEY_FIX}")
    try:
        return normalize_key(value.strip())
    except JcError as exc:
        raise JcError(f"{exc}; {_KEY_FIX}") from None


def add_team(
    teams_file: Path,
    name: str,
    repository: str | None = None,
    members: Sequence[str] = (),
    keys: Sequence[str] = (),
) -> Path:
    """Register (or update) a team with its own submission repository and signing keys.

    ``teams_file`` is a ``teams.yaml`` (or a private dataset folder holding one); inside a
    dataset the change is saved. ``keys`` are SSH public keys, inline or as files. A new
    team needs its ``repository`` (the runner finds its submissions there, and an entry
    without one is suspended); a registered team keeps its repository when none is given,
    so that members and keys can be added later on their own.
    """
    ensure_identity()
    if not valid_team_name(name):
        raise JcError(f"team name {name!r}: use letters, digits, '.', '_' or single '-' (at most 63)")
    teams_file = _file(teams_file)
    found = read_teams(teams_file, missing_ok=True)
    teams = _editable(found, name)
    old = teams.get(name)
    if repository is None or not repository.strip():
        if name in found.suspended:
            broken = "; ".join(str(p) for p in found.by_team.get(name, ()))
            raise JcError(f"{teams_file}: the entry of team {name} has problems ({broken}); register it again "
                          f"with --repository URL (and its keys) to replace the entry")
        if old is None:
            raise JcError(
                f"team {name} is not registered yet in {teams_file}: add --repository URL, the team's own "
                f"submission repository, e.g. `git init --bare /srv/teams/{name}.git && git -C "
                f"/srv/teams/{name}.git annex init`, then `jc team add {name} --repository "
                f"/srv/teams/{name}.git ...`; once registered, `jc team add {name} --key KEY` adds keys alone")
        repository = old.repository
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


def remove_team(teams_file: Path, name: str) -> Path:
    """Remove team ``name`` from ``teams.yaml``: the runner no longer looks at its repository.

    Its recorded evaluations stay in the results dataset. Refused while another team is
    merged into it (their submissions would count for no team).
    """
    ensure_identity()
    teams_file = _file(teams_file)
    found = read_teams(teams_file)
    if name not in found.teams and name not in found.suspended:
        raise JcError(f"team {name!r} is not registered in {teams_file}{_known(found)}")
    teams = _editable(found, name)
    joined = sorted(t.name for t in teams.values() if t.merged_into == name)
    if joined:
        raise JcError(f"team {name}: {', '.join(joined)} merged into it, and their submissions count for it; "
                      f"remove {', '.join(joined)} first (`jc team remove NAME`)")
    teams.pop(name, None)
    return _save(teams_file, teams, f"Remove team {name}")


@dataclass(frozen=True)
class KeyChange:
    """What ``jc team key add/remove`` did to one team's signing keys."""

    team: str
    action: str  #: "added", "removed" or "unchanged"
    fingerprint: str | None  #: SHA256:... of the key (None for a malformed key removed)
    keys_left: int  #: the team's own keys after the change
    path: Path  #: the teams.yaml written
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"team": self.team, "action": self.action, "fingerprint": self.fingerprint,
                "keys_left": self.keys_left, "path": str(self.path), "warnings": list(self.warnings)}


def add_key(teams_file: Path, name: str, key: str) -> KeyChange:
    """Allow one more SSH public key (inline or a ``.pub`` file) to sign team ``name``'s submissions.

    A malformed key is refused with what to give instead; a key of another team is refused
    (a key signs for one team only); a key the team has already is left as it is.
    """
    from jc_datalad.signing import key_fingerprint

    ensure_identity()
    teams_file = _file(teams_file)
    found = read_teams(teams_file)
    if name not in found.teams:
        raise JcError(_unregistered(found, name))
    new = read_key(key)
    fingerprint = key_fingerprint(new)
    teams = _editable(found, name)
    team = teams[name]
    for other in teams.values():
        if other.name != name and new in other.keys:
            raise JcError(f"key {fingerprint} is already registered for team {other.name}: a key signs for one "
                          f"team only; if it moved, run `jc team key remove {other.name} {fingerprint}` first")
    if new in team.keys:
        return KeyChange(name, "unchanged", fingerprint, len(team.keys), teams_file)
    teams[name] = replace(team, keys=(*team.keys, new))
    path = _save(teams_file, teams, f"Add signing key {fingerprint} to team {name}")
    log.info("team %s: key %s added", name, fingerprint)
    return KeyChange(name, "added", fingerprint, len(teams[name].keys), path)


def remove_key(teams_file: Path, name: str, which: str, *, signed: bool | None) -> KeyChange:
    """Stop a key from signing for team ``name``; ``which`` is its ``SHA256:...`` fingerprint,
    the key text or its ``.pub`` file (a malformed key: its text as written in teams.yaml).

    ``signed`` says whether the challenge requires signed submissions (``submission.signed``;
    None when unknown). Removing the team's last key then leaves it unable to submit: the
    change is made (rotation may add the new key next) and the result carries a warning.
    """
    from jc_datalad.signing import key_fingerprint

    ensure_identity()
    teams_file = _file(teams_file)
    found = read_teams(teams_file)
    if name not in found.teams:
        raise JcError(_unregistered(found, name))
    teams = _editable(found, name)
    team = teams[name]
    wanted = which.strip()
    fingerprints = {k: _fingerprint_or_none(k) for k in team.keys}
    if wanted in team.keys:  # as written in teams.yaml, e.g. a malformed key
        match = wanted
    else:
        if not wanted.startswith("SHA256:"):
            wanted = key_fingerprint(read_key(wanted))
        matches = [k for k, f in fingerprints.items() if f == wanted]
        if not matches:
            listed = ", ".join(f or "a malformed key" for f in fingerprints.values()) or "none"
            raise JcError(f"team {name} has no key {wanted} in {teams_file} (its keys: {listed}); "
                          f"`jc team list` shows every fingerprint")
        match = matches[0]
    teams[name] = replace(team, keys=tuple(k for k in team.keys if k != match))
    fingerprint = fingerprints.get(match)
    path = _save(teams_file, teams, f"Remove signing key {fingerprint or '(malformed)'} from team {name}")
    warnings = []
    effective = effective_team(teams, name)
    if not keys_by_team(teams).get(effective) and signed is not False:
        rule = ("challenge.yaml requires signed submissions (submission.signed: true)" if signed else
                "if challenge.yaml requires signed submissions (submission.signed: true)")
        warnings.append(f"team {name} has no signing key left: {rule}, the runner rejects every new submission "
                        f"of {effective} until a key is added with `jc team key add {name} KEY`")
        log.info("%s", warnings[-1])  # the caller shows the warnings it gets back; once is enough
    return KeyChange(name, "removed", fingerprint, len(teams[name].keys), path, tuple(warnings))


def _fingerprint_or_none(key: str) -> str | None:
    from jc_datalad.signing import key_fingerprint

    try:
        return key_fingerprint(key)
    except JcError:
        return None


def _known(found: TeamsFile) -> str:
    names = sorted(set(found.teams) | found.suspended)
    return f" (registered: {', '.join(names)})" if names else " (no team is registered yet)"


def _unregistered(found: TeamsFile, name: str) -> str:
    if name in found.suspended:
        problems = "; ".join(str(p) for p in found.by_team.get(name, ()))
        return f"{found.path}: the entry of team {name} has problems; fix them first: {problems}"
    return (f"team {name!r} is not registered in {found.path}{_known(found)}: register it with "
            f"`jc team add {name} --repository URL --key KEY`")


@dataclass(frozen=True)
class KeyInfo:
    """One registered key as `jc team list` shows it."""

    type: str  #: ssh-ed25519, ssh-rsa, ... (the first word as written)
    fingerprint: str | None  #: SHA256:..., None when the key is malformed
    problem: str | None = None  #: why a malformed key signs nothing

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "fingerprint": self.fingerprint, "problem": self.problem}


@dataclass(frozen=True)
class TeamInfo:
    """One team as `jc team list` shows it: repository, members, key fingerprints."""

    name: str
    repository: str
    members: tuple[str, ...]
    keys: tuple[KeyInfo, ...]
    merged_into: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "repository": self.repository, "members": list(self.members),
                "keys": [k.as_dict() for k in self.keys], "merged_into": self.merged_into}


@dataclass(frozen=True)
class TeamListing:
    path: Path
    teams: tuple[TeamInfo, ...]  #: the usable teams, by name
    suspended: tuple[str, ...]  #: teams whose entry has problems (`jc team check` lists them)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "teams": {t.name: t.as_dict() for t in self.teams},
                "suspended": list(self.suspended)}


def list_teams(teams_file: Path) -> TeamListing:
    """The registered teams with their members and the fingerprints of their keys."""
    from jc_datalad.signing import key_fingerprint

    found = read_teams(_file(teams_file))
    out = []
    for team in sorted(found.teams.values(), key=lambda t: t.name):
        keys = []
        for key in team.keys:
            kind = key.split()[0] if key.split() else "?"
            try:
                keys.append(KeyInfo(kind, key_fingerprint(key)))
            except JcError as exc:
                keys.append(KeyInfo(kind, None, str(exc)))
        out.append(TeamInfo(team.name, team.repository, team.members, tuple(keys), team.merged_into))
    return TeamListing(found.path, tuple(out), tuple(sorted(found.suspended)))

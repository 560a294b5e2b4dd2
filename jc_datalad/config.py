"""The organizer's runner configuration and the teams file.

``runner.yaml`` holds machine-local settings (where the datasets are, how
many workers); the challenge's rules live in its ``challenge.yaml`` and the
teams in the private dataset's ``teams.yaml``, both under version control.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from jc_datalad.errors import JcError

TEAMS_FILE = "teams.yaml"


@dataclass(frozen=True)
class Team:
    name: str
    repository: str
    members: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    merged_into: str | None = None  #: set when the team merged into another; its submissions count there


@dataclass(frozen=True)
class RunnerConfig:
    path: Path
    challenge: Path
    private: Path
    results: Path
    work: Path
    workers: int = 2
    protocols: tuple[str, ...] = ("file",)
    split: str = "test"
    cache: Path | None = None
    teams: Path | None = None
    public_url: str | None = None  #: where participants clone the challenge from (shown on the site)
    #: the organizer's private store of full step logs (never published); default: private-logs beside runner.yaml
    logs: Path = Path("private-logs")

    @property
    def teams_file(self) -> Path:
        """``teams.yaml`` of the private dataset, unless the config names another file."""
        return self.teams or self.private / TEAMS_FILE


def default_cache_dir() -> Path:
    """Where images and unpacked root filesystems are cached (readable by the sandbox user)."""
    if os.environ.get("JC_CACHE_DIR"):
        return Path(os.environ["JC_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/jc-datalad")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jc-datalad"


def load_config(path: Path | str) -> RunnerConfig:
    path = Path(path).resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise JcError(f"{path}: runner config not found; `jc challenge new` writes one") from None
    except yaml.YAMLError as exc:
        raise JcError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise JcError(f"{path}: must hold a mapping of keys")
    problems = [f"{k}: missing: the path of the {k} dataset" for k in ("challenge", "private", "results")
                if not data.get(k)]
    known = {"challenge", "private", "results", "work", "workers", "protocols", "split", "cache", "teams",
             "public_url", "logs"}
    problems += [f"{k}: unknown key; known keys: {', '.join(sorted(known))}" for k in data if k not in known]
    workers = data.get("workers", 2)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        problems.append(f"workers: {workers!r}: a whole number >= 1")
    public_url = data.get("public_url")
    if public_url is not None and not (isinstance(public_url, str) and public_url.strip()):
        problems.append(f"public_url: {public_url!r}: the URL participants clone the challenge from")
    if problems:
        raise JcError(f"{path}:\n  - " + "\n  - ".join(problems))

    def resolve(value: str) -> Path:
        return (path.parent / os.path.expanduser(str(value))).resolve()

    return RunnerConfig(
        path=path,
        challenge=resolve(data["challenge"]),
        private=resolve(data["private"]),
        results=resolve(data["results"]),
        work=resolve(data.get("work", ".jc-work")),
        workers=workers,
        protocols=tuple(data.get("protocols", ["file"])),
        split=str(data.get("split", "test")),
        cache=resolve(data["cache"]) if data.get("cache") else None,
        teams=resolve(data["teams"]) if data.get("teams") else None,
        public_url=public_url.strip() if public_url else None,
        logs=resolve(data.get("logs") or "private-logs"),
    )


def write_config(path: Path, *, challenge: Path, private: Path, results: Path, workers: int = 2) -> None:
    def rel(p: Path) -> str:
        return os.path.relpath(p, path.parent)

    data = {"challenge": rel(challenge), "private": rel(private), "results": rel(results),
            "work": ".jc-work", "workers": workers, "protocols": ["file"]}
    path.write_text(
        "# jc runner configuration (machine-local; the rules live in challenge.yaml)\n"
        + yaml.safe_dump(data, sort_keys=False)
    )


def load_teams(path: Path) -> dict[str, Team]:
    """Teams from a ``teams.yaml`` (or the one in a private dataset folder)."""
    if path.is_dir():
        path = path / TEAMS_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    teams = data.get("teams") or {}
    if not isinstance(teams, dict):
        raise JcError(f"{path}: 'teams' must map team names to their settings")
    out = {}
    for name, entry in teams.items():
        if not isinstance(entry, dict) or not entry.get("repository"):
            raise JcError(f"{path}: team {name!r} needs a 'repository' (its own submission repository)")
        out[str(name)] = Team(
            name=str(name),
            repository=str(entry["repository"]),
            members=tuple(entry.get("members") or ()),
            keys=tuple(entry.get("keys") or ()),
            merged_into=entry.get("merged_into"),
        )
    return out


def save_teams(path: Path, teams: dict[str, Team]) -> Path:
    """Write ``teams.yaml`` (``path`` may be the private dataset folder)."""
    if path.is_dir():
        path = path / TEAMS_FILE
    def entry(t: Team) -> dict:
        e = {"repository": t.repository, "members": list(t.members), "keys": list(t.keys)}
        if t.merged_into:
            e["merged_into"] = t.merged_into
        return e

    data = {"teams": {t.name: entry(t) for t in sorted(teams.values(), key=lambda t: t.name)}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path

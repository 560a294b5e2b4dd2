"""The organizer's runner configuration and the teams file.

``runner.yaml`` holds machine-local settings (where the datasets are, how
many workers); the challenge's rules live in its ``challenge.yaml`` and the
teams in the private dataset's ``teams.yaml``, both under version control.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jc_datalad.errors import JcError
from jc_datalad.validation import (
    Checker,
    InputError,
    Problem,
    read_yaml,
    suggest,
    text,
    text_list,
    whole,
)

log = logging.getLogger(__name__)

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
    #: where evaluations run: ``local`` (a thread pool on this machine) or ``slurm`` (job arrays; jc_datalad.backends)
    backend: str = "local"
    slurm: SlurmSettings | None = None  #: the ``slurm:`` section, when ``backend: slurm``

    @property
    def teams_file(self) -> Path:
        """``teams.yaml`` of the private dataset, unless the config names another file."""
        return self.teams or self.private / TEAMS_FILE


@dataclass(frozen=True)
class SlurmSettings:
    """The ``slurm:`` section of ``runner.yaml`` (docs/hpc.md)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    throttle: int = 50  #: array tasks running at once (``sbatch --array=0-N%throttle``)
    #: node-local scratch where a task clones and evaluates; ``$VAR`` expanded on the node
    scratch: str = "${TMPDIR:-/tmp}"
    store: Path = Path(".jc-work/slurm-store")  #: output store on the shared file system
    wait_s: int = 0  #: how long a pass waits for the jobs it submitted before leaving them to a later pass
    poll_s: float = 5.0  #: seconds between two looks at the jobs while a pass waits


BACKENDS = ("local", "slurm")


def default_cache_dir() -> Path:
    """Where images and unpacked root filesystems are cached (readable by the sandbox user)."""
    if os.environ.get("JC_CACHE_DIR"):
        return Path(os.environ["JC_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/jc-datalad")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jc-datalad"


class ConfigError(InputError):
    """``runner.yaml`` is invalid; :attr:`problems` lists every problem, with line and column."""


class TeamsError(InputError):
    """``teams.yaml`` cannot be read as a whole; :attr:`problems` lists every problem."""


_RUNNER_KEYS = ("challenge", "private", "results", "work", "workers", "protocols", "split", "cache", "teams",
                "public_url", "logs", "backend", "slurm")
_SLURM_KEYS = ("partition", "account", "qos", "throttle", "scratch", "store", "wait", "poll")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,-]{0,127}$")


def _slurm_name(value: Any) -> str:
    if not isinstance(value, str) or not _SLURM_NAME.match(value):
        raise ValueError("must be a Slurm name: letters, digits, '_', '.', ',' or '-'")
    return value


def _backend(value: Any) -> str:
    if value not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)}{suggest(str(value), BACKENDS)}")
    return str(value)


def _seconds(value: Any) -> int:
    from jc_datalad.spec import parse_duration

    if value == 0 and not isinstance(value, bool):
        return 0
    return parse_duration(value)


def _slurm(c: Checker, data: dict[str, Any], resolve: Callable[[str], Path], work: Path) -> SlurmSettings:
    """The ``slurm:`` section, every problem reported with its place (none of its keys is required)."""
    section = c.section("slurm", required=False, mapping=data)
    c.unknown(section, "slurm", _SLURM_KEYS)
    names = {k: c.get(section, f"slurm.{k}", _slurm_name, f"the Slurm {k} to submit to", None)
             for k in ("partition", "account", "qos")}
    throttle = c.get(section, "slurm.throttle", whole(1, 100_000), "array tasks running at once", 50)
    scratch = c.get(section, "slurm.scratch", _path_text, "node-local scratch folder (may use $VARS)",
                    SlurmSettings.scratch)
    store = c.get(section, "slurm.store", _path_text, "the output store's folder on the shared file system",
                  None)
    wait = c.get(section, "slurm.wait", _seconds, "a duration such as 10m (0: do not wait)", 0)
    poll = c.get(section, "slurm.poll", _seconds, "a duration such as 5s", 5)
    return SlurmSettings(partition=names["partition"], account=names["account"], qos=names["qos"],
                         throttle=throttle or 50, scratch=scratch or SlurmSettings.scratch,
                         store=resolve(store) if store else work / "slurm-store",
                         wait_s=wait or 0, poll_s=float(max(poll or 1, 1)))
_PROTOCOL = re.compile(r"^[a-z][a-z0-9+.-]{0,31}$")
_SPLIT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _path_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a path (text)")
    if "\x00" in value:
        raise ValueError("must not hold a NUL character")
    return value.strip()


def _protocols(value: Any) -> tuple[str, ...]:
    names = text_list(value)
    if not names:
        raise ValueError("must name at least one transport, e.g. [file]")
    for name in names:
        if not _PROTOCOL.match(name):
            raise ValueError(f"{name!r} is not a git transport name")
        if name == "ext":
            # ext:: runs a command given in the URL: a team's repository URL would run on this machine
            raise ValueError("'ext' runs commands named in repository URLs; allow only transports such as "
                             "file, https, ssh")
    return names


def _split(value: Any) -> str:
    if not isinstance(value, str) or not _SPLIT.match(value):
        raise ValueError("must be a split name: lower-case letters, digits, '.', '_' or '-'")
    return value


def load_config(path: Path | str) -> RunnerConfig:
    """Read ``runner.yaml``; raise :class:`ConfigError` listing every problem with its line and column."""
    path = Path(path).resolve()
    try:
        doc = read_yaml(path, missing="`jc challenge new` writes one beside the challenge")
    except InputError as exc:
        raise ConfigError(path, exc.problems) from None
    c = Checker({} if doc.data is None else doc.data, doc.marks, doc.problems)
    if not isinstance(doc.data, dict | None):
        raise ConfigError(path, c.problems)
    data = c.data
    c.unknown(data, "", _RUNNER_KEYS)
    paths = {k: c.get(data, k, _path_text, f"the path of the {k} dataset") for k in ("challenge", "private", "results")}
    optional = {k: c.get(data, k, _path_text, "a folder or file path", None) for k in ("work", "cache", "teams", "logs")}
    workers = c.get(data, "workers", whole(1, 1024), "evaluations run at the same time", 2)
    protocols = c.get(data, "protocols", _protocols, "git transports allowed for team repositories", ("file",))
    split = c.get(data, "split", _split, "the hidden split evaluated when the challenge has no phases", "test")
    public_url = c.get(data, "public_url", text, "the URL participants clone the challenge from", None)
    backend = c.get(data, "backend", _backend, "where evaluations run: local or slurm", "local")

    def resolve(value: str) -> Path:
        return (path.parent / os.path.expanduser(value)).resolve()

    work = resolve(optional["work"] or ".jc-work")
    slurm = _slurm(c, data, resolve, work)
    if "slurm" in data and backend != "slurm":
        c.problem("backend", backend, "a slurm: section is set but backend is not slurm: add 'backend: slurm' "
                                      "or remove the section")
    if c.problems:
        raise ConfigError(path, c.problems)

    return RunnerConfig(
        path=path,
        challenge=resolve(paths["challenge"]),
        private=resolve(paths["private"]),
        results=resolve(paths["results"]),
        work=work,
        workers=workers,
        protocols=protocols,
        split=split,
        cache=resolve(optional["cache"]) if optional["cache"] else None,
        teams=resolve(optional["teams"]) if optional["teams"] else None,
        public_url=public_url,
        logs=resolve(optional["logs"] or "private-logs"),
        backend=backend or "local",
        slurm=slurm if backend == "slurm" else None,
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


@dataclass(frozen=True)
class TeamsFile:
    """``teams.yaml`` read entry by entry: one bad entry affects only its own team.

    A team whose entry is invalid (no repository, an unknown key, a duplicate name, a merge
    into an unknown team, ...) is *suspended*: left out of :attr:`teams`, so the runner
    neither discovers nor records its submissions until the organizers fix the entry. A team
    with a malformed signing key stays: its key is kept as written and the signature check
    names the problem (:mod:`jc_datalad.signing`); its other keys keep working.
    """

    path: Path
    teams: dict[str, Team]  #: the usable teams (malformed keys included, as written)
    problems: tuple[Problem, ...]  #: every problem, with line and column
    by_team: dict[str, tuple[Problem, ...]] = field(default_factory=dict)  #: problems per team
    suspended: frozenset[str] = frozenset()  #: teams left out of :attr:`teams` until fixed


_TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENTRY_KEYS = ("repository", "members", "keys", "merged_into")
_MISSING_TEAMS = ("`jc challenge new` writes an empty one in the private dataset, and `jc team add NAME "
                  "--repository URL` registers a team (and creates the file); or point `teams:` in runner.yaml "
                  "at the right file")


def valid_team_name(name: str) -> bool:
    """Letters, digits, ``.``, ``_`` or single ``-``; at most 63 (safe as a path and a signing principal)."""
    return bool(_TEAM_NAME.match(name)) and "--" not in name


def read_teams(path: Path, *, missing_ok: bool = False) -> TeamsFile:
    """Read ``teams.yaml`` (or the one in a private dataset folder) entry by entry.

    Raises :class:`TeamsError` when the file as a whole cannot be read (syntax, encoding,
    size, not a mapping, no ``teams:`` mapping, duplicate top-level keys), and
    :class:`JcError` when it is missing, unless ``missing_ok`` (then there are no teams).
    An organizer who has added no team yet has the empty file ``teams: {}`` that
    ``jc challenge new`` writes: zero teams, and the runner says so.
    """
    if path.is_dir():
        path = path / TEAMS_FILE
    if missing_ok and not path.exists():
        return TeamsFile(path, {}, ())
    try:
        doc = read_yaml(path, missing=_MISSING_TEAMS)
    except InputError as exc:
        raise TeamsError(path, exc.problems) from None
    mine: dict[str, list[Problem]] = {}  # problems of one team's entry, by team
    general: list[Problem] = []  # problems of the file as a whole
    for problem in doc.problems:
        parts = problem.key.split(".", 2)
        if parts[0] == "teams" and len(parts) > 1:
            mine.setdefault(parts[1], []).append(problem)
        else:
            general.append(problem)
    checker = Checker({} if doc.data is None else doc.data, doc.marks, general)
    data = checker.data
    checker.unknown(data, "", ("teams",))
    raw = data.get("teams")
    if "teams" not in data and isinstance(doc.data, dict):
        checker.problem("teams", None, "missing: add 'teams: {}' (then `jc team add` fills it)")
    elif raw is not None and not isinstance(raw, dict):
        checker.problem("teams", raw, "must map each team name to its settings (repository, members, keys)")
    if checker.problems:
        raise TeamsError(path, checker.problems)

    entries = raw if isinstance(raw, dict) else {}
    teams: dict[str, Team] = {}
    for name, entry in entries.items():
        teams[name] = _read_entry(checker, name, entry, mine)
    _check_relations(checker, teams, mine)
    suspended = {name for name, found in mine.items() if any(not _is_key_problem(p) for p in found)}
    # a team merged into a suspended team is suspended too: its submissions would count nowhere
    changed = True
    while changed:
        changed = False
        for name, team in teams.items():
            if name not in suspended and team.merged_into in suspended:
                where = checker.place(f"teams.{name}.merged_into")
                mine.setdefault(name, []).append(Problem(
                    f"teams.{name}.merged_into", team.merged_into,
                    "merged into a team whose entry has problems: fix that entry first", *where))
                suspended.add(name)
                changed = True
    by_team = {name: tuple(found) for name, found in mine.items() if found}
    return TeamsFile(
        path=path,
        teams={n: t for n, t in teams.items() if n not in suspended},
        problems=tuple(p for found in by_team.values() for p in found),
        by_team=by_team,
        suspended=frozenset(suspended),
    )


def _is_key_problem(problem: Problem) -> bool:
    return ".keys[" in problem.key or problem.fix.startswith("a key of two teams")


def _read_entry(checker: Checker, name: str, entry: Any, mine: dict[str, list[Problem]]) -> Team:
    where = f"teams.{name}"
    found = mine.setdefault(name, [])
    local = Checker(entry if isinstance(entry, dict) else {}, checker.marks)
    if not valid_team_name(name):
        local.problem(where, name, "a team name uses letters, digits, '.', '_' or single '-' (at most 63): "
                                   "rename the team")
    if not isinstance(entry, dict):
        local.problem(where, entry, "must be a mapping with repository, members, keys")
        entry = {}
    local.unknown(entry, where, _ENTRY_KEYS)
    repository = local.get(entry, f"{where}.repository", text, "the team's own submission repository (URL or "
                           "path)")
    members = local.get(entry, f"{where}.members", text_list, "the members' names or e-mails", ()) or ()
    keys = local.get(entry, f"{where}.keys", text_list, "the team's SSH public keys, one list item each", ()) or ()
    merged_into = local.get(entry, f"{where}.merged_into", text, "the name of the team it merged into", None)
    found += local.problems
    from jc_datalad.signing import normalize_key

    usable = []
    for i, key in enumerate(keys):
        try:
            usable.append(normalize_key(key))
        except JcError as exc:
            # kept as written: the signature check names this problem to the team's submissions
            usable.append(key)
            found.append(Problem(f"{where}.keys[{i}]", key, f"{exc}; this key signs nothing until it is replaced "
                                 "with the content of the member's .pub file", *checker.place(f"{where}.keys[{i}]")))
    return Team(name=name, repository=repository or "", members=members, keys=tuple(usable),
                merged_into=merged_into)


def _check_relations(checker: Checker, teams: dict[str, Team], mine: dict[str, list[Problem]]) -> None:
    """Merge targets, and repositories or keys shared by two teams (a problem of both)."""
    repos: dict[str, str] = {}
    keys: dict[str, str] = {}
    for name, team in teams.items():
        if team.merged_into is not None:
            target = teams.get(team.merged_into)
            key = f"teams.{name}.merged_into"
            if target is None:
                mine[name].append(Problem(key, team.merged_into, f"no such team{suggest(team.merged_into, teams)}: "
                                          "name a registered team", *checker.place(key)))
            elif team.merged_into == name or target.merged_into:
                mine[name].append(Problem(key, team.merged_into, "must name a team that has not merged itself",
                                          *checker.place(key)))
        if team.repository and team.repository in repos:
            other = repos[team.repository]
            for who in (other, name):
                key = f"teams.{who}.repository"
                mine[who].append(Problem(key, team.repository, f"repository of both {other} and {name}: every "
                                         "team needs its own repository", *checker.place(key)))
        repos.setdefault(team.repository, name)
        for k in team.keys:
            if k in keys and keys[k] != name:
                other = keys[k]
                for who in (other, name):
                    key = f"teams.{who}.keys"
                    mine[who].append(Problem(key, f"{k[:40]}...", f"a key of two teams ({other} and {name}) signs "
                                             "for neither: register each key for one team only", *checker.place(key)))
            keys.setdefault(k, name)


def load_teams(path: Path, *, missing_ok: bool = False) -> dict[str, Team]:
    """The usable teams of a ``teams.yaml`` (see :func:`read_teams`); each problem is logged."""
    found = read_teams(path, missing_ok=missing_ok)
    for name, problems in found.by_team.items():
        waits = " (its submissions wait until this is fixed)" if name in found.suspended else ""
        for problem in problems:
            log.warning("%s:%s %s%s", found.path, f"{problem.where}:" if problem.where else "", problem, waits)
    return found.teams


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
    # a temporary file renamed over the old one: never written through a symlink (an annexed
    # teams.yaml points into the annex), and a kill leaves the old file or the new, never half
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return path

"""The challenge description the site shows: written by the runner into the results dataset.

The site is built from the results dataset only, so each runner pass writes
what it knows about the challenge there: ``challenges/<id>/description.json``
(the parsed ``challenge.yaml`` with metric definitions, the challenge version,
how to clone it, and the data: dataset ids, versions, file counts and sizes)
and ``challenges/<id>/README.md`` (the challenge's README as it is). Both are
committed only when they changed; ``as_of`` is the time of the pass that
changed them, so an unchanged challenge adds no commit.

Sizes come from git alone, without fetching content: an annexed file is a
symlink (or a pointer file) naming its annex key, and a key carries its size
(``SHA256E-s1234--...``). The hidden data is described by dataset ids,
versions, counts and sizes only: never a file name, never a label.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from jc_datalad import admission, ledger
from jc_datalad.config import RunnerConfig
from jc_datalad.gitutil import git, git_out, read_blobs
from jc_datalad.inspection import parse_key
from jc_datalad.ledger import CHALLENGES, DESCRIPTION, README
from jc_datalad.spec import ChallengeSpec, Phase

lgr = logging.getLogger(__name__)

#: Version of the description format; the site checks it.
FORMAT = 1

# A pointer file of an unlocked annexed file is short; longer blobs are never read.
_POINTER_MAX = 512
_ANNEX_PATH = "/annex/objects/"


@dataclass(frozen=True)
class DataSize:
    """What git knows about the files of one dataset version, without their content."""

    files: int
    bytes: int  # of the files whose size is known
    unsized: int  # annexed files whose key carries no size


@dataclass(frozen=True)
class Description:
    """``description.json`` without its ``as_of`` time, and the README text (None: no README)."""

    data: dict[str, Any]
    readme: str | None

    @property
    def folder(self) -> str:
        return f"{CHALLENGES}/{self.data['id']}"


def annex_key_size(key: str) -> int | None:
    """The size an annex key carries (``SHA256E-s1234--abc.tif`` -> 1234); None without one."""
    try:
        return parse_key(key)[1]
    except ValueError:  # no key at all
        return None


def _annex_key(target: str) -> str | None:
    """The key named by a symlink target or pointer file of an annexed file; None for other content."""
    target = target.strip()
    if _ANNEX_PATH not in target and "/.git/annex/objects/" not in target and not target.startswith(".git/"):
        return None
    return target.rstrip("/").rsplit("/", 1)[-1] or None


def data_size(repo: Path, commit: str) -> DataSize:
    """Files (dataset machinery under dot-paths left out) and total size of ``commit`` in ``repo``."""
    listing = git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], repo, binary=True).stdout
    files = 0
    total = 0
    to_read: list[str] = []  # blobs that may name an annex key: symlinks and short files
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, obj, size = meta.split()
        path = PurePosixPath(raw_path.decode("utf-8", errors="replace"))
        if kind != b"blob" or any(part.startswith(".") for part in path.parts):
            continue
        files += 1
        if mode == b"120000" or int(size) <= _POINTER_MAX:
            to_read.append(obj.decode())
        else:
            total += int(size)
    unsized = 0
    for content in read_blobs(repo, to_read):
        key = _annex_key(content.decode("utf-8", errors="replace"))
        known = None if key is None else annex_key_size(key)
        if key is None:
            total += len(content)  # a file in git, or a symlink that is no annexed file
        elif known is None:
            unsized += 1
        else:
            total += known
    return DataSize(files=files, bytes=total, unsized=unsized)


def _dataset_id_at(repo: Path, commit: str) -> str | None:
    proc = git(["config", "--blob", f"{commit}:.datalad/config", "datalad.dataset.id"], repo, check=False)
    return proc.stdout.strip() or None


def _installed(repo: Path) -> bool:
    return (repo / ".git").exists()


def _has_commit(repo: Path, commit: str) -> bool:
    return git(["cat-file", "-e", f"{commit}^{{commit}}"], repo, check=False).returncode == 0


def _version(repo: Path, commit: str | None, dataset_id: str | None,
             known: Mapping[str, DataSize]) -> dict[str, Any]:
    """Dataset id, commit, files and bytes of one dataset version; counts None where not installed.

    ``known``: sizes already counted, by commit (a commit's files never change).
    """
    entry: dict[str, Any] = {"dataset_id": dataset_id, "commit": commit, "files": None, "bytes": None,
                             "unsized": None}
    if commit is not None and commit in known and dataset_id is not None:
        size = known[commit]
        entry.update(files=size.files, bytes=size.bytes, unsized=size.unsized)
        return entry
    if commit is None or not _installed(repo) or not _has_commit(repo, commit):
        return entry
    size = data_size(repo, commit)
    entry.update(files=size.files, bytes=size.bytes, unsized=size.unsized)
    if entry["dataset_id"] is None:
        entry["dataset_id"] = _dataset_id_at(repo, commit)
    return entry


def _subdatasets(repo: Path, commit: str) -> dict[str, dict[str, str]]:
    """Path -> {"id": datalad id, "commit": recorded commit} of every subdataset at ``commit``."""
    proc = git(["config", "--blob", f"{commit}:.gitmodules", "--list"], repo, check=False)
    modules: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("submodule.") and key.count(".") >= 2:
            name, _, field = key[len("submodule."):].rpartition(".")
            modules.setdefault(name, {})[field] = value
    by_path = {m["path"]: m.get("datalad-id", "") for m in modules.values() if "path" in m}
    if not by_path:
        return {}
    found: dict[str, dict[str, str]] = {}
    listing = git_out(["ls-tree", "-z", commit, "--", *sorted(by_path)], repo)
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.split()[1:2] == ["commit"]:
            found[path] = {"id": by_path.get(path, ""), "commit": meta.split()[2]}
    return found


def public_data(config: RunnerConfig, spec: ChallengeSpec, commit: str,
                known: Mapping[str, DataSize] | None = None) -> list[dict[str, Any]]:
    """Every input subdataset participants clone (those under the inputs' top folder)."""
    top = PurePosixPath(spec.interface.inputs).parts[0]
    entries = []
    for path, sub in sorted(_subdatasets(config.challenge, commit).items()):
        if PurePosixPath(path).parts[0] != top:
            continue
        entries.append({"path": path, **_version(config.challenge / path, sub["commit"], sub["id"] or None,
                                                  known or {})})
    return entries


def hidden_splits(config: RunnerConfig, spec: ChallengeSpec) -> list[str]:
    """The hidden splits the challenge evaluates on: its phases' splits (the config's without phases)."""
    return sorted({p.split for p in spec.phases} or {config.split})


def hidden_data(config: RunnerConfig, spec: ChallengeSpec,
                known: Mapping[str, DataSize] | None = None) -> list[dict[str, Any]]:
    """Dataset id, version, number of files and size of each hidden part; never a file name.

    The version is the one the runner evaluates with: the subdataset's checked-out commit.
    """
    entries = []
    for split in hidden_splits(config, spec):
        for part in ("inputs", "labels"):
            repo = config.private / "hidden" / split / part
            commit = git_out(["rev-parse", "HEAD"], repo) if _installed(repo) else None
            dsid = ledger.dataset_id(repo) if (repo / ".datalad" / "config").is_file() else None
            entries.append({"split": split, "part": part, **_version(repo, commit, dsid or None, known or {})})
    return entries


def final_selection(spec: ChallengeSpec) -> str:
    """The final selection rule in words, as :mod:`jc_datalad.standings` applies it."""
    tag = "signed `final/<label>` tags" if spec.submission.signed else "`final/<label>` tags"
    better = "highest" if spec.metrics.direction.value == "max" else "lowest"
    return (f"A team marks up to `select` submissions of a phase (see the phases) with {tag} pushed to "
            f"its repository; a team that marks none is judged on its best `select` submissions by public "
            f"{spec.metrics.primary}. The final leaderboard of a phase, written once it has ended, ranks the "
            f"teams by the {better} private {spec.metrics.primary} among their selected submissions; ties go "
            "to the earlier first-seen time, then to the team name.")


def _time(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _phase(phase: Phase, declared: Phase | None) -> dict[str, Any]:
    entry = {"name": phase.name, "start": _time(phase.start), "end": _time(phase.end), "split": phase.split,
             "per_day": phase.per_day, "total": phase.total, "select": phase.select, "extended_from": None}
    if declared is not None and declared.end != phase.end:
        entry["extended_from"] = _time(declared.end)  # an organizer override moved the end
    return entry


def clone_commands(url: str, challenge_id: str, inputs: Sequence[str]) -> list[str]:
    """What a participant types to get the challenge and its public data."""
    commands = [f"datalad clone {shlex.quote(url)} {shlex.quote(challenge_id)}", f"cd {shlex.quote(challenge_id)}"]
    if inputs:
        commands.append("datalad get " + " ".join(shlex.quote(p) for p in inputs))
    return commands


def describe(config: RunnerConfig, spec: ChallengeSpec, overrides: Sequence[dict] = (),
             known: Mapping[str, DataSize] | None = None) -> Description:
    """Everything the site's challenge pages show, read from the challenge and private datasets.

    ``known``: data sizes by commit from an earlier description, not counted again.
    """
    import scorers

    commit = git_out(["rev-parse", "HEAD"], config.challenge)
    effective = admission.effective_spec(spec, overrides)
    declared = {p.name: p for p in spec.phases}
    public = public_data(config, spec, commit, known)
    url = config.public_url or str(config.challenge)
    readme_path = config.challenge / README
    readme = readme_path.read_text(encoding="utf-8", errors="replace") if readme_path.is_file() else None
    res = spec.resources
    data: dict[str, Any] = {
        "format": FORMAT,
        "id": spec.id,
        "title": spec.title,
        "type": spec.type.value,
        "challenge": {
            "dataset_id": ledger.dataset_id(config.challenge) or None,
            "commit": commit,
            "clone_url": url,
            "clone": clone_commands(url, spec.id, [p["path"] for p in public]),
        },
        "readme": README if readme is not None else None,
        "interface": {"inputs": spec.interface.inputs, "outputs": spec.interface.outputs,
                      "format": spec.interface.format},
        "container": spec.container,
        "resources": {"time_s": res.time_s, "memory_bytes": res.memory_bytes, "cpus": res.cpus, "gpus": res.gpus,
                      "output_bytes": res.output_bytes, "processes": res.processes, "network": False},
        "metrics": {
            "scorer": spec.metrics.scorer,
            "primary": spec.metrics.primary,
            "direction": spec.metrics.direction.value,
            "columns": [{"name": c, "definition": scorers.describe(c, spec.metrics.scorer)}
                        for c in spec.metrics.columns],
        },
        "leaderboard": {"public_fraction": spec.leaderboard.public_fraction},
        "phases": [_phase(p, declared.get(p.name)) for p in effective.phases],
        "submission": {"max_file_bytes": spec.submission.max_file_bytes, "signed": spec.submission.signed,
                       "count_failed": spec.submission.count_failed,
                       "denied_paths": list(spec.denied_paths)},
        "teams": {"merge_deadline": _time(spec.teams.merge_deadline)},
        "final_selection": final_selection(spec),
        "data": {"public": public, "hidden": hidden_data(config, spec, known)},
    }
    return Description(data=data, readme=readme)


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _known_sizes(old: Any) -> dict[str, DataSize]:
    """Commit -> data size, from an earlier description (anything malformed is counted again)."""
    known: dict[str, DataSize] = {}
    try:
        for entry in [*old["data"]["public"], *old["data"]["hidden"]]:
            if all(isinstance(entry.get(k), int) for k in ("files", "bytes", "unsized")) \
                    and isinstance(entry.get("commit"), str):
                known[entry["commit"]] = DataSize(entry["files"], entry["bytes"], entry["unsized"])
    except (TypeError, KeyError, AttributeError):
        return {}
    return known


def publish(config: RunnerConfig, spec: ChallengeSpec, now: str, overrides: Sequence[dict] = ()) -> bool:
    """Write and commit the description into the results dataset when it changed; True if it did.

    ``now`` (the pass's time, ISO) becomes ``as_of`` only when something changed, so
    the file, and the results dataset, stay as they are while the challenge does.
    """
    folder = config.results / CHALLENGES / spec.id
    try:
        old = json.loads((folder / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    made = describe(config, spec, overrides, known=_known_sizes(old))
    old_readme = (folder / README).read_text(encoding="utf-8") if (folder / README).is_file() else None
    if isinstance(old, dict) and {k: v for k, v in old.items() if k != "as_of"} == made.data \
            and old_readme == made.readme:
        return False
    files: dict[str, str | None] = {f"{made.folder}/{DESCRIPTION}": _text({**made.data, "as_of": now}),
                                    f"{made.folder}/{README}": made.readme}
    return ledger.write_files(config.results, files, f"Challenge description of {spec.id} "
                                                     f"(challenge {made.data['challenge']['commit'][:12]})")

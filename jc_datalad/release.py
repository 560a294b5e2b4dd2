"""``jc challenge release-hidden``: publish the hidden data of ended phases (level c of docs/reproduce.md).

The organizer's private dataset holds more than any reader may see: the teams file, the
hidden data of phases still running, a training challenge's hidden training set. A release is
a separate DataLad dataset, ``<results>/../<challenge id>-hidden-released`` by default, holding
only ``hidden/<split>/inputs`` and ``hidden/<split>/labels`` of the splits whose every phase has
ended, copied as regular files, with ``release.json`` naming the private datasets' ids and
commits they were copied from. Releasing again adds the splits that ended since and refreshes a
split whose hidden data changed; nothing else of the private dataset is ever copied.

The ledger's ``release.json`` (:data:`INDEX`) says where the release is and which splits it
holds; the site then shows the level-(c) command on every evaluation page of those splits.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from jc_datalad import ledger, lock
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity, git, git_out
from jc_datalad.spec import load_spec

lgr = logging.getLogger(__name__)

#: In the ledger and in the release: the release's location and the splits it holds.
INDEX = "release.json"
#: The parts of a split that are released; anything else of the private dataset never is.
PARTS = ("inputs", "labels")


@dataclass(frozen=True)
class Release:
    dataset: Path
    splits: tuple[str, ...]
    added: tuple[str, ...]  #: splits copied (or refreshed) by this call

    def as_dict(self) -> dict:
        return {"dataset": str(self.dataset), "splits": list(self.splits), "added": list(self.added)}


def release_path(config: RunnerConfig, challenge_id: str) -> Path:
    return config.results.parent / f"{challenge_id}-hidden-released"


def releasable_splits(config: RunnerConfig, now: dt.datetime) -> tuple[str, ...]:
    """Splits every phase of which has ended at ``now`` (a split a running phase uses stays hidden)."""
    spec = load_spec(config.challenge)
    running = {p.split for p in spec.phases if p.end > now}
    return tuple(sorted({p.split for p in spec.phases if p.end <= now} - running))


def release_hidden(config: RunnerConfig, *, now: dt.datetime | None = None, output: Path | None = None,
                   wait: bool = False) -> Release:
    """Copy the hidden inputs and labels of every ended split into the public release dataset."""
    import datalad.api as dl

    ensure_identity()
    now = now or dt.datetime.now(dt.UTC)
    spec = load_spec(config.challenge)
    splits = releasable_splits(config, now)
    if not splits:
        raise JcError(f"no phase of {spec.id} has ended at {now:%Y-%m-%dT%H:%M:%SZ}: nothing can be released yet; "
                      "release the hidden data after the phase that uses it ends")
    target = (output or release_path(config, spec.id)).absolute()
    if not (target / ".datalad" / "config").is_file():
        if target.exists() and any(target.iterdir()):
            raise JcError(f"{target}: exists and is not a release dataset; choose another --output")
        dl.create(path=str(target), cfg_proc=["text2git"], result_renderer="disabled")
    manifest_path = target / INDEX
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    versions: dict = manifest.get("splits", {}) if isinstance(manifest.get("splits"), dict) else {}
    added = []
    for split in splits:
        found = {part: _identity(config.private / "hidden" / split / part) for part in PARTS}
        if versions.get(split) == found:
            continue
        for part in PARTS:
            dest = target / "hidden" / split / part
            if dest.exists():
                git(["rm", "-r", "--quiet", "--ignore-unmatch", "--", str(dest.relative_to(target))], target)
                shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(config.private / "hidden" / split / part, dest, symlinks=False,
                            ignore=shutil.ignore_patterns(".git", ".datalad", ".gitattributes", ".gitmodules"))
        versions[split] = found
        added.append(split)
    manifest = {"challenge": spec.id, "splits": versions}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (target / "README.md").write_text(
        f"# {spec.id}: released hidden data\n\nThe hidden inputs and labels of the splits whose phases have "
        f"ended ({', '.join(sorted(versions))}), as the organizers evaluated submissions on them. "
        "`release.json` names the private datasets and commits they were copied from. Reproduce a score "
        "with the level-(c) command on its evaluation page (docs/reproduce.md).\n", encoding="utf-8")
    if added or git_out(["status", "--porcelain"], target):
        dl.save(dataset=str(target), message=f"Release the hidden data of {', '.join(added) or 'no new split'}",
                result_renderer="disabled")
    _readable(target)
    released = tuple(sorted(versions))
    from jc_datalad.runner import start_writing

    with lock.hold(config.results, wait=wait, what="jc challenge release-hidden") as holding:
        start_writing(config, holding, lgr.info)
        ledger.write_json(config.results, INDEX, {"dataset": str(target), "splits": list(released),
                                                  "versions": versions},
                          f"Hidden data released: {', '.join(released)}")
    return Release(target, released, tuple(added))


def _identity(path: Path) -> dict:
    if not path.is_dir():
        raise JcError(f"{path}: the hidden {path.name} of this split are missing in the private dataset")
    dsid = git(["config", "-f", str(path / ".datalad" / "config"), "datalad.dataset.id"], check=False).stdout.strip()
    return {"dataset_id": dsid, "commit": git_out(["rev-parse", "HEAD"], path)}


def _readable(target: Path) -> None:
    """A release is public: everyone may read it and enter its folders."""
    for dirpath, dirnames, filenames in os.walk(target):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | (0o555 if name in dirnames else 0o444))
    target.chmod(target.stat().st_mode | 0o555)

"""The reproduce commands an evaluation page shows, by level (docs/reproduce.md).

(a) anyone, once the submission is in the public archive (the ledger's ``archive.json``);
(b) organizers and auditors holding the private dataset (the record's ``jc runner reproduce``);
(c) anyone, once the hidden data of the evaluation's split is released (``release.json``).

A command is shown only where it works for its reader: level (a) only for an evaluation the
archive holds, level (c) only for a split the release holds. Both files are the runner's own
(never a submission's), but they are read as untrusted text all the same: a path with a control
character or an id that is not an evaluation id is reported and left out.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jc_datalad.records import Evaluation, Status

ARCHIVE = "archive.json"  #: jc_datalad.archive.INDEX
RELEASE = "release.json"  #: jc_datalad.release.INDEX
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_BYTES = 16 * 2**20

WHO = {
    "a": "anyone, during the challenge: reruns the recorded steps on the public inputs and compares "
         "with the committed predictions byte for byte",
    "b": "organizers and auditors holding the private dataset: redoes the evaluation on the hidden data; "
         "the original record is never touched",
    "c": "anyone, after the hidden data's release: reruns the recorded steps on the released hidden "
         "inputs and scores them against the released labels",
}


@dataclass(frozen=True)
class Levels:
    """What the ledger says readers can reproduce."""

    archive: str | None = None
    archived: frozenset[str] = frozenset()
    release: str | None = None
    released_splits: frozenset[str] = frozenset()
    #: split -> (inputs commit, labels commit) of the released copy, where the ledger names them
    released_versions: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    problems: tuple[str, ...] = field(default=())

    def key(self, ev: Evaluation) -> tuple:
        """What an evaluation page shows of these (part of its page key)."""
        return (self.archive if ev.id in self.archived else None,
                self.release if ev.split in self.released_splits else None,
                self.released_versions.get(ev.split))

    def released_for(self, ev: Evaluation) -> bool:
        """Whether the release holds the hidden data ``ev`` was scored on: its split, and the
        inputs and labels commits its record names (an evaluation on another hidden version,
        such as a rerun on new data, cannot be reproduced from this release)."""
        if ev.split not in self.released_splits:
            return False
        version = self.released_versions.get(ev.split)
        if version is None:
            return True
        hidden = ev.hidden if isinstance(ev.hidden, dict) else {}
        for part, commit in zip(("inputs", "labels"), version, strict=True):
            recorded = hidden.get(part, {}).get("commit") if isinstance(hidden.get(part), dict) else None
            if recorded and recorded != commit:
                return False
        return True


def _path(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() and not _CONTROL.search(value) \
        and len(value) <= 4096 else None


def _load(results: Path, name: str, problems: list[str]) -> dict:
    path = results / name
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(MAX_BYTES))
    except (OSError, ValueError, RecursionError) as exc:
        problems.append(f"{path}: cannot be read ({type(exc).__name__}); no reader's reproduce command is shown")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: not a JSON object; no reader's reproduce command is shown")
        return {}
    return data


def gather_levels(results: Path) -> Levels:
    """Read ``archive.json`` and ``release.json`` of the ledger ``results``."""
    problems: list[str] = []
    archive_data = _load(results, ARCHIVE, problems)
    archive = _path(archive_data.get("archive"))
    ids = archive_data.get("evaluations", [])
    if archive_data and (archive is None or not isinstance(ids, list)):
        problems.append(f"{results / ARCHIVE}: needs 'archive' (a path or URL) and 'evaluations' (a list)")
        archive, ids = None, []
    archived = frozenset(i for i in ids if isinstance(i, str) and _SAFE_ID.fullmatch(i))
    release_data = _load(results, RELEASE, problems)
    release = _path(release_data.get("dataset"))
    splits = release_data.get("splits", [])
    if release_data and (release is None or not isinstance(splits, list)):
        problems.append(f"{results / RELEASE}: needs 'dataset' (a path or URL) and 'splits' (a list)")
        release, splits = None, []
    released = frozenset(s for s in splits if isinstance(s, str) and _SAFE_ID.fullmatch(s))
    versions: dict[str, tuple[str, str]] = {}
    raw = release_data.get("versions")
    for split in released if isinstance(raw, dict) else ():
        entry = raw.get(split) if isinstance(raw, dict) else None
        commits = [entry.get(part, {}).get("commit") if isinstance(entry, dict) and isinstance(entry.get(part), dict)
                   else None for part in ("inputs", "labels")]
        if all(isinstance(c, str) for c in commits):
            versions[split] = (commits[0], commits[1])  # type: ignore[assignment]
    return Levels(archive, archived if archive else frozenset(), release,
                  released if release else frozenset(), versions if release else {}, tuple(problems))


def commands(ev: Evaluation, levels: Levels, organizer_lines: list[str]) -> list[Mapping[str, str]]:
    """``[{level, who, command}]`` for ``ev``: each level whose command works for its reader.

    ``organizer_lines``: the record's published reproduce lines; level (b) is its
    ``jc runner reproduce`` line.
    """
    out: list[Mapping[str, str]] = []
    ran = ev.status in (Status.EVALUATED, Status.FAILED)
    archived = ran and ev.id in levels.archived and levels.archive is not None
    if archived:
        out.append({"level": "a", "who": WHO["a"],
                    "command": f"jc reproduce submission {shlex.quote(levels.archive or '')} {shlex.quote(ev.id)}"})
    line = next((x for x in organizer_lines if x.startswith("jc runner reproduce ")), None)
    if ran and line is not None:
        out.append({"level": "b", "who": WHO["b"], "command": line})
    if archived and ev.status is Status.EVALUATED and levels.released_for(ev) \
            and levels.release is not None and _SAFE_ID.fullmatch(ev.split):
        # the recorded scores over every hidden item, each to compare with (repr: the exact float)
        expect = "".join(f" --expect {shlex.quote(f'{name}={value!r}')}" for name, value in sorted(ev.metrics.items())
                         if _SAFE_ID.fullmatch(name) and isinstance(value, int | float)
                         and not isinstance(value, bool) and math.isfinite(value))
        out.append({"level": "c", "who": WHO["c"],
                    "command": f"jc reproduce score {shlex.quote(levels.archive or '')} {shlex.quote(ev.id)} "
                               f"--hidden {shlex.quote(levels.release)} --split {shlex.quote(ev.split)}{expect}"})
    return out

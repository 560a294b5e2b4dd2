"""Warnings about a valid challenge that would still surprise its organizer.

`jc challenge check` validates ``challenge.yaml`` (:mod:`jc_datalad.spec`); these checks
look past the file: is it committed (the runner applies the file in the working tree but
records the dataset's commit, and participants clone the commit), and does the public
leaderboard rest on enough hidden items to mean anything?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jc_datalad.spec import ChallengeSpec

#: A public part of at most this many items ranks teams on one or two images: noise.
FEW_PUBLIC_ITEMS = 2


@dataclass(frozen=True)
class ChallengeWarnings:
    warnings: tuple[str, ...]  #: things to fix before participants see the challenge
    notes: tuple[str, ...]  #: what could not be checked, and what would let it be

    def as_dict(self) -> dict[str, Any]:
        return {"warnings": list(self.warnings), "notes": list(self.notes)}


def check_challenge(spec_file: Path, spec: ChallengeSpec, *, private: Path | None = None,
                    default_split: str = "test") -> ChallengeWarnings:
    """Warnings for the loaded ``spec`` read from ``spec_file``.

    ``private`` is the private dataset (hidden splits under ``hidden/<split>/labels``); without
    it the size of the public part cannot be known, since the public dataset does not say how
    many hidden items there are, and a note says so.
    """
    warnings: list[str] = []
    notes: list[str] = []
    _check_committed(spec_file, warnings)
    if private is None:
        notes.append("public leaderboard size not checked: the hidden items are in the private dataset; "
                     "give --private DIR, or --config runner.yaml")
    else:
        splits = sorted({p.split for p in spec.phases} or {default_split})
        _check_public_part(spec, private, splits, warnings, notes)
    return ChallengeWarnings(tuple(warnings), tuple(notes))


def _check_committed(spec_file: Path, warnings: list[str]) -> None:
    from jc_datalad.gitutil import git

    folder = spec_file.parent
    top = git(["rev-parse", "--show-toplevel"], folder, check=False)
    if top.returncode != 0:
        warnings.append(f"{spec_file}: not in a DataLad dataset or git repository; the runner records the "
                        "challenge's commit with every evaluation: create the challenge with `jc challenge new`")
        return
    status = git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", spec_file.name], folder,
                 check=False)
    entries = [e for e in str(status.stdout).split("\0") if e]
    if not entries:
        return
    state = "untracked" if entries[0].startswith("??") else "changed and not committed"
    warnings.append(f"{spec_file}: {state}; the runner applies this file but records the dataset's last "
                    "commit, and participants clone that commit: commit it with "
                    f"`datalad save -m 'Update challenge.yaml' -d {str(top.stdout).strip()} {spec_file}`")


def _check_public_part(spec: ChallengeSpec, private: Path, splits: Sequence[str],
                       warnings: list[str], notes: list[str]) -> None:
    from jc_datalad.evaluate import public_part

    lb = spec.leaderboard
    for split in splits:
        labels = private / "hidden" / split / "labels"
        if not labels.is_dir():
            notes.append(f"public leaderboard size of split {split!r} not checked: {labels} is missing "
                         "(install the hidden data with `datalad get -n -r` in the private dataset)")
            continue
        items = tuple(sorted(p.name for p in labels.iterdir() if not p.name.startswith(".")))
        if not items:
            notes.append(f"public leaderboard size of split {split!r} not checked: {labels} holds no items "
                         "(not installed? `datalad get -n -r` in the private dataset)")
            continue
        public = public_part(items, lb.public_fraction, lb.seed)
        if len(public) <= FEW_PUBLIC_ITEMS:
            warnings.append(
                f"split {split!r}: the public leaderboard rests on {len(public)} of {len(items)} hidden "
                f"item(s) (leaderboard.public_fraction {lb.public_fraction}, seed {lb.seed}); one lucky "
                f"item decides the public ranks: raise leaderboard.public_fraction or add hidden items "
                f"(more than {FEW_PUBLIC_ITEMS} public items are needed; `jc challenge new --hidden-items N` "
                "makes more)")


def find_private(dataset: Path) -> Path | None:
    """The private dataset of the challenge at ``dataset``, from the ``runner.yaml`` that
    `jc challenge new` writes beside it, when that file names this dataset; else None."""
    from jc_datalad.config import load_config
    from jc_datalad.errors import JcError

    dataset = dataset.resolve()
    candidate = dataset.parent / "runner.yaml"
    if not candidate.is_file():
        return None
    try:
        config = load_config(candidate)
    except JcError:
        return None  # a broken runner.yaml is `jc team check`'s and the runner's to report
    return config.private if config.challenge == dataset else None
